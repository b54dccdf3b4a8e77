"""Bad input gets a clear Python exception naming the problem, never a crash
or a hang."""

import subprocess
import sys
import threading
import time

import pytest

from helpers import TEST_UNIT, package_env, recording, start_net_peer, wait_for
from smartbus.errors import AlreadyExistsError, AlreadyInitializedError, SmartBusError


@pytest.fixture
def connected(router, net_client):
    """A NET client of this process (client 9), registered with the router."""
    return net_client(9, router.port)


def test_str_payload_is_a_type_error(connected):
    with pytest.raises(TypeError, match="data must be a bytes-like object, not str"):
        connected.send_data(1, 3, 16, 1, 11, "text")
    with pytest.raises(TypeError, match="bytes-like"):
        connected.ping(16, 1, 11, "text")
    with pytest.raises(TypeError):
        connected.send_data(1, 3, 16, 1, 11, 12345)


def test_bytes_like_payloads_and_none_are_accepted(router, connected, peers):
    p = start_net_peer(peers, router, 16)
    for data in (b"abc", bytearray(b"abd"), memoryview(b"abcdef")[1:4], None, b""):
        connected.send_data(1, 3, 16, 1, 11, data)
    connected.ping(16, 1, 11)
    connected.ping(16, 1, 11, None)
    got = p.received(7)
    assert [(d[0], bytes.fromhex(d[5])) for d in got] == [
        (1, b"abc"), (1, b"abd"), (1, b"bcd"), (1, b""), (1, b""), (7, b""), (7, b"")]


def test_destination_unit_48_is_error_12(connected):
    with pytest.raises(SmartBusError) as info:
        connected.send_data(1, 3, 48, 1, 11, b"x")
    assert info.value.code == -12
    assert info.value.message == "SMARTBUS_ERR_UNITID_INVALID"
    with pytest.raises(SmartBusError) as info:
        connected.ping(48, 1, 11)
    assert info.value.code == -12
    with pytest.raises(SmartBusError) as info:
        connected.send_data(1, 3, -1, 1, 11, b"x")
    assert info.value.code == -12


def test_cmd_type_0_is_error_16(connected):
    with pytest.raises(SmartBusError) as info:
        connected.send_data(1, 0, 16, 1, 11, b"x")
    assert info.value.code == -16


def test_own_unit_is_error_11(connected):
    with pytest.raises(SmartBusError) as info:
        connected.send_data(1, 3, TEST_UNIT, 2, 11, b"x")
    assert info.value.code == -11


def test_out_of_range_fields_name_the_argument(connected):
    with pytest.raises(ValueError, match="cmd must be in 0..255"):
        connected.send_data(256, 3, 16, 1, 11, b"")
    with pytest.raises(ValueError, match="cmd_type must be in 0..255"):
        connected.send_data(1, -1, 16, 1, 11, b"")
    with pytest.raises(ValueError, match="dst_client_id must be in 0..255"):
        connected.send_data(1, 3, 16, 300, 11, b"")
    with pytest.raises(ValueError, match="dst_client_type must be in 0..255"):
        connected.send_data(1, 3, 16, 1, 256, b"")
    with pytest.raises(TypeError):
        connected.send_data("1", 3, 16, 1, 11, b"")


def test_client_id_out_of_range_is_a_value_error(net_lib):
    for bad in (-1, 256, 1000):
        with pytest.raises(ValueError, match="client_id must be in 0..255"):
            net_lib.create(bad, 11, "127.0.0.1", 8089)
    with pytest.raises(ValueError, match="master_port"):
        net_lib.create(1, 11, "127.0.0.1", 0)
    with pytest.raises(ValueError, match="master_ip"):
        net_lib.create(1, 11, "", 8089)


def test_duplicate_client_id_raises(net_lib):
    c = net_lib.create(30, 11, "127.0.0.1", 1)
    try:
        with pytest.raises(AlreadyExistsError):
            net_lib.create(30, 11, "127.0.0.1", 1)
        assert net_lib.find(30) is c
    finally:
        c.dispose()
    assert net_lib.find(30) is None
    net_lib.create(30, 11, "127.0.0.1", 1).dispose()     # the id is free again


def test_sending_before_registration_is_error_2(net_lib):
    # nothing listens on port 1: the client never registers
    c = net_lib.create(31, 11, "127.0.0.1", 1)
    try:
        with pytest.raises(SmartBusError) as info:
            c.send_data(1, 3, 16, 1, 11, b"x")
        assert info.value.code == -2
        c.activate()
        with pytest.raises(SmartBusError) as info:
            c.ping(16, 1, 11)
        assert info.value.code == -2
    finally:
        c.dispose()


def test_closed_client_raises_instead_of_crashing(net_lib):
    c = net_lib.create(32, 11, "127.0.0.1", 1)
    c.dispose()
    c.dispose()                                          # harmless
    with pytest.raises(RuntimeError, match="closed"):
        c.send_data(1, 3, 16, 1, 11, b"x")


def test_second_initialize_raises(net_lib):
    with pytest.raises(AlreadyInitializedError):
        net_lib.initialize(20)


def run_fresh(code):
    """Runs ``code`` in a fresh interpreter (the NET library is per process)."""
    return subprocess.run([sys.executable, "-c", code], env=package_env(), capture_output=True,
                          text=True, timeout=60)


def test_initialize_unit_outside_16_47_is_error_12():
    r = run_fresh(
        "from smartbus.net import Client\n"
        "from smartbus.errors import SmartBusError, NotInitializedError\n"
        "for unit in (15, 48, -1, 255):\n"
        "    try:\n"
        "        Client.initialize(unit)\n"
        "    except SmartBusError as e:\n"
        "        assert e.code == -12, e\n"
        "    else:\n"
        "        raise SystemExit('unit %d accepted' % unit)\n"
        "try:\n"
        "    Client.create(1, 11, '127.0.0.1', 8089)\n"
        "except NotInitializedError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('client created before initialize')\n"
        "Client.initialize(16)\n"
        "print('ok')\n")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_process_exits_cleanly_with_clients_connected(router):
    # clients still connected and events in flight at exit: no hang, no crash
    r = run_fresh(
        "import threading, time\n"
        "from smartbus.net import Client\n"
        "Client.initialize(18)\n"
        "ok = threading.Event()\n"
        "class C(Client):\n"
        "    def on_connect(self): ok.set()\n"
        "    def on_data(self, head, data): time.sleep(0.001)\n"
        "a = C.create(1, 11, '127.0.0.1', %d); a.activate()\n"
        "b = C.create(2, 11, '127.0.0.1', %d); b.activate()\n"
        "assert ok.wait(5)\n"
        "time.sleep(0.3)\n"
        "print('exiting', flush=True)\n" % (router.port, router.port))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "exiting"


def test_handler_exception_is_logged_not_lost(router, net_lib, net_client, peers, caplog):
    calls = []

    class Raising(recording(net_lib)):
        def on_data(self, head, data):
            calls.append(data)
            raise ValueError("boom in handler")

    net_client(33, router.port, cls=Raising)
    p = start_net_peer(peers, router, 16)
    with caplog.at_level("ERROR", logger="smartbus"):
        assert p.call(op="send", dst=[TEST_UNIT, 33, 11], count=2, max_size=8)["ok"]
        assert wait_for(lambda: len(calls) == 2, 5)
        assert wait_for(lambda: sum("boom in handler" in r.exc_text for r in caplog.records
                                    if r.exc_text) == 2, 5)


def test_executor_gets_the_handlers(router, net_lib, net_client, peers):
    from concurrent.futures import ThreadPoolExecutor
    threads = []

    class ThreadNoting(recording(net_lib)):
        def on_data(self, head, data):
            threads.append(threading.current_thread().name)

    with ThreadPoolExecutor(1, thread_name_prefix="userpool") as ex:
        c = net_client(34, router.port, cls=ThreadNoting, event_executor=ex)
        p = start_net_peer(peers, router, 16)
        assert p.call(op="send", dst=[TEST_UNIT, 34, 11], count=3, max_size=8)["ok"]
        assert wait_for(lambda: len(threads) == 3, 5)
        assert all(t.startswith("userpool") for t in threads), threads
        c.dispose()


def test_dispose_while_other_threads_send(router, net_client):
    """Closing a client while other threads are inside send_data: they get a
    clear error, the process does not crash."""
    for round_ in range(5):
        c = net_client(35, router.port)
        outcomes = []

        def hammer():
            data = memoryview(bytearray(100))
            try:
                while True:
                    try:
                        c.send_data(1, 3, 16, 1, 11, data)
                    except SmartBusError as exc:
                        assert exc.code == -7          # queue full: keep trying
            except RuntimeError as exc:
                outcomes.append(str(exc))

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.05)
        c.dispose()
        for t in threads:
            t.join(5)
            assert not t.is_alive()
        assert outcomes == ["the client is closed"] * 3
