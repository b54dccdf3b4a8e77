"""The IPC client end to end: with NET clients through the real router
(data, ping, global connect events, unit learnt from the router), its
packets on the wire against the golden vectors (captured by a raw Unix
socket server), reconnection, and bad input (missing router, a path that is
not a socket, a second client, the server's IPC path options)."""

import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, events_of, needs_vectors, start_net_peer, wait_for
from fakeserver import FakeServer, head_of, ipc_packet, register_ack

N_MESSAGES = 3000
MAX_SIZE = 65536



def start_ipc_peer(peers, path, client_id=5, client_type=3, wait=True, env=None, **extra):
    p = peers(**(env or {}))
    assert p.call(op="init", kind="ipc", ipc_path=path, client_id=client_id,
                  client_type=client_type, **extra)["ok"]
    if wait:
        assert p.call(op="wait_connected", timeout=5)["ok"], "IPC peer did not connect"
    return p


class Recorder:
    """An IPC client class for this process that records its events."""

    def __init__(self):
        from smartbus.ipc import Client
        rec = self
        self.events = []
        self.lock = threading.Lock()

        class C(Client):
            def on_connect(self):
                rec.add("connect", self.unit_id)

            def on_connect_fail(self, code):
                rec.add("connect_fail", code)

            def on_disconnect(self):
                rec.add("disconnect")

            def on_data(self, head, data):
                rec.add("data", head.cmd, head.cmd_type, head.src_unit_id,
                        head.src_unit_client_id, data)

        self.cls = C

    def add(self, *ev):
        with self.lock:
            self.events.append((time.monotonic(),) + ev)

    def of(self, kind):
        with self.lock:
            return [e[2:] for e in self.events if e[1] == kind]


@pytest.fixture
def ipc_recorder():
    """Makes IPC clients in this process; disposes them at teardown."""
    from smartbus.ipc import Client
    rec = Recorder()
    yield rec
    Client.destroy()


# ---- through the router -------------------------------------------------------------


def test_ipc_and_net_exchange_data_both_ways(router, peers):
    ipc = start_ipc_peer(peers, router.ipc_path, client_id=5, client_type=3)
    net = start_net_peer(peers, router, 16)
    # both directions at once, sizes 0..64 KiB, contents and order checked
    ipc.proc.stdin.write('{"op": "send", "dst": [16, 1, 11], "count": %d, "max_size": %d}\n'
                         % (N_MESSAGES, MAX_SIZE))
    ipc.proc.stdin.flush()
    sent_net = net.call(op="send", dst=[0, 5, 3], count=N_MESSAGES, max_size=MAX_SIZE,
                        timeout=120)
    sent_ipc = ipc.replies.get(timeout=120)
    assert sent_ipc["ok"] and sent_net["ok"], (sent_ipc, sent_net)
    got_net = net.call(op="expect", count=N_MESSAGES, max_size=MAX_SIZE, timeout=120)
    got_ipc = ipc.call(op="expect", count=N_MESSAGES, max_size=MAX_SIZE, timeout=120)
    assert got_net["ok"], got_net
    assert got_ipc["ok"], got_ipc
    # heads: the IPC client sends as unit 0 (the router's), the NET one as 16
    assert got_net["first"][0][:4] == [5, 3, 0, 5]
    assert got_ipc["first"][0][:4] == [5, 3, 16, 1]
    assert router.stats()["dropped_no_route"] == 0


def test_ping_both_ways(router, peers):
    ipc = start_ipc_peer(peers, router.ipc_path)
    net = start_net_peer(peers, router, 16)
    assert ipc.call(op="ping", dst=[16, 1, 11], data="6970632d70696e67")["ok"]
    assert net.call(op="ping", dst=[0, 5, 3], data="")["ok"]

    def got(peer, cmd):
        return [d for d in peer.call(op="received")["data"] if d[0] == cmd]
    # each side sees the other's ping (cmd 7) and the answer to its own (cmd 8)
    ans = wait_for(lambda: got(ipc, 8), 5)
    assert ans and ans[0] == [8, 1, 16, 1, 8, "6970632d70696e67"]
    ping = wait_for(lambda: got(net, 7), 5)
    assert ping and ping[0] == [7, 1, 0, 5, 8, "6970632d70696e67"]
    ans = wait_for(lambda: got(net, 8), 5)
    assert ans and ans[0][:5] == [8, 1, 0, 5, 0]
    ping = wait_for(lambda: got(ipc, 7), 5)
    assert ping and ping[0][:5] == [7, 1, 16, 1, 0]


def test_global_connect_events_on_both_sides(router, peers):
    ipc = start_ipc_peer(peers, router.ipc_path, client_id=5, client_type=3, info="ipc-5")
    assert events_of(ipc, "connect") == [[0]]        # the router's unit, learnt
    assert ipc.call(op="unit")["unit_id"] == 0
    net = start_net_peer(peers, router, 16, client_id=2, client_type=12)
    # the IPC client hears of the newcomer (1); the NET one is told the IPC one exists (2)
    arrived = wait_for(lambda: [e for e in events_of(ipc, "global") if e[4] == 1], 5)
    assert arrived == [[16, 2, 12, 0, 1, "unit-16"]]
    present = wait_for(lambda: [e for e in events_of(net, "global") if e[4] == 2], 5)
    assert present == [[0, 5, 3, 0, 2, "ipc-5"]]
    # a second IPC client: reported to both (status 1), told of both (status 2)
    ipc2 = start_ipc_peer(peers, router.ipc_path, client_id=6, client_type=4, info="ipc-6")
    assert wait_for(lambda: [e for e in events_of(net, "global") if e[:2] == [0, 6]], 5) == \
        [[0, 6, 4, 0, 1, "ipc-6"]]
    assert wait_for(lambda: [e for e in events_of(ipc, "global") if e[:2] == [0, 6]], 5) == \
        [[0, 6, 4, 0, 1, "ipc-6"]]
    told = wait_for(lambda: (lambda e: len(e) >= 2 and e)(events_of(ipc2, "global")), 5)
    assert sorted(told) == [[0, 5, 3, 0, 2, "ipc-5"], [16, 2, 12, 0, 2, "unit-16"]]
    time.sleep(0.3)                                   # nothing twice
    assert len(events_of(ipc, "global")) == 2
    assert len(events_of(ipc2, "global")) == 2
    # the IPC clients leave: the NET client hears status 0 for each
    ipc.close()
    ipc2.close()
    left = wait_for(lambda: (lambda e: len(e) >= 2 and e)(
        [e for e in events_of(net, "global") if e[4] == 0]), 5)
    assert sorted(left) == [[0, 5, 3, 0, 0, "ipc-5"], [0, 6, 4, 0, 0, "ipc-6"]]


def test_unit_id_is_learnt_from_the_router(short_tmp, peers, ipc_recorder):
    from smartbus.server import Server
    path = os.path.join(short_tmp, "ipc3")
    with Server(port=0, unit_id=3, ipc_path=path) as srv:
        c = ipc_recorder.cls.create(9, 5, ipc_path=path)
        assert c.unit_id is None and c.access_unit_id is None
        c.activate()
        assert wait_for(lambda: ipc_recorder.of("connect"), 5) == [(3,)]
        assert c.unit_id == 3 and c.access_unit_id == 3 and c.is_connected()
        net = start_net_peer(peers, srv, 17)
        c.send_data(4, 3, 17, 1, 11, b"from unit 3")
        data = wait_for(lambda: net.call(op="received")["data"], 5)
        assert data == [[4, 3, 3, 9, 11, b"from unit 3".hex()]]
        c.dispose()


def test_client_reconnects_after_a_router_restart(short_tmp, peers):
    from smartbus.server import Server
    path = os.path.join(short_tmp, "ipc")
    srv = Server(port=0, ipc_path=path).start()
    try:
        a = start_ipc_peer(peers, path, client_id=5)
        b = start_ipc_peer(peers, path, client_id=6)
        srv.stop()
        assert wait_for(lambda: events_of(a, "disconnect") and events_of(b, "disconnect"), 5)
        time.sleep(0.5)
        srv = Server(port=0, ipc_path=path).start()
        # both register again by themselves (retries every 2 s)
        assert wait_for(lambda: srv.stats()["clients"] == 2, 6), srv.stats()
        assert wait_for(lambda: len(events_of(a, "connect")) == 2 and
                        len(events_of(b, "connect")) == 2, 5)
        assert a.call(op="send", dst=[0, 6, 3], count=50, max_size=4096)["ok"]
        assert b.call(op="expect", count=50, max_size=4096, timeout=10)["ok"]
    finally:
        srv.stop()


# ---- on the wire: the golden vectors -------------------------------------------------


@needs_vectors
def test_packets_equal_the_ipc_vectors(short_tmp, peers):
    """Registration, data, ping, ping answer and global-connect answer, and
    the registration repeated on a new connection, as the vendor client."""
    path = os.path.join(short_tmp, "fake")
    with FakeServer(path) as srv:
        p = start_ipc_peer(peers, path, client_id=20, client_type=3, wait=False,
                           user="user1", password="pwd1", info="addinfo1")
        conn = srv.accept()
        assert conn.recv_packet().hex() == ipc_packet("ipc_registration.json",
                                                      "typical")["canonical_hex"]
        conn.send(bytes.fromhex(ipc_packet("ipc_registration_ack.json", "accept, full")["hex"]))
        registered_at = time.monotonic()
        assert p.call(op="wait_connected", timeout=5)["ok"]
        assert p.call(op="unit")["unit_id"] == 0

        assert p.call(op="send_raw", cmd=3, cmd_type=3, dst=[0, 21, 3], data=b"hello".hex())["ok"]
        assert conn.recv_packet().hex() == ipc_packet("ipc_senddata.json",
                                                      "SendData \"hello\"")["canonical_hex"]

        assert p.call(op="ping", dst=[0, 21, 3], data=b"pingdata".hex())["ok"]
        assert conn.recv_packet().hex() == ipc_packet("ipc_ping.json",
                                                      "client SendPing")["canonical_hex"]
        conn.send(bytes.fromhex(ipc_packet("ipc_ping.json", "server ping")["hex"]))
        assert conn.recv_packet().hex() == ipc_packet("ipc_ping.json",
                                                      "client automatic answer")["canonical_hex"]
        # the ping is also delivered to the application
        got = wait_for(lambda: p.call(op="received")["data"], 5)
        assert got == [[7, 1, 0, 30, 8, b"PING1234".hex()]]

        # data from the server with vendor-style padding
        conn.send(bytes.fromhex(ipc_packet("ipc_senddata.json", "server->client")["hex"]))
        got = wait_for(lambda: (lambda d: len(d) >= 2 and d)(p.call(op="received")["data"]), 5)
        assert got[1] == [4, 3, 0, 30, 5, b"abcde".hex()]

        gc = "ipc_global_connect.json"
        conn.send(bytes.fromhex(ipc_packet(gc, "server -> client, cmd 9, status 1")["hex"]))
        assert conn.recv_packet().hex() == ipc_packet(gc, "client answer")["canonical_hex"]
        conn.send(bytes.fromhex(ipc_packet(gc, "cmd 9 status 0")["hex"]))
        conn.send(bytes.fromhex(ipc_packet(gc, "cmd 10 status 2")["hex"]))
        conn.expect_nothing(0.5)                      # no answer to those
        assert wait_for(lambda: len(events_of(p, "global")) >= 3, 5)
        assert events_of(p, "global") == [[0, 31, 4, 0, 1, "peer-info"],
                                          [2, 32, 4, 2, 0, "gc-0"],
                                          [2, 32, 4, 2, 2, "gc-2"]]

        # the server closes: the client reconnects at once and registers again
        # (at once if the link lasted 2 s; a server that drops every link
        # right after registering it is retried every 2 s, not in a tight loop)
        time.sleep(max(0.0, registered_at + 2.2 - time.monotonic()))
        conn.close()
        t0 = time.monotonic()
        conn = srv.accept(timeout=5)
        assert time.monotonic() - t0 < 1.0
        assert conn.recv_packet().hex() == ipc_packet("ipc_registration.json",
                                                      "typical")["canonical_hex"]
        assert wait_for(lambda: events_of(p, "disconnect"), 5) == [[]]

        # a refused registration (-5) is reported and never retried
        conn.send(bytes.fromhex(ipc_packet("ipc_registration_ack.json", "reject")["hex"]))
        assert wait_for(lambda: events_of(p, "connect_fail"), 5) == [[-5]]
        with pytest.raises(EOFError):
            conn.recv_packet(timeout=5)
        with pytest.raises(TimeoutError):
            srv.accept(timeout=2.5)


@needs_vectors
def test_data_packets_of_sizes_0_to_9_equal_the_vectors(short_tmp, peers):
    path = os.path.join(short_tmp, "fake")
    with FakeServer(path) as srv:
        p = start_ipc_peer(peers, path, client_id=33, client_type=4, wait=False)
        conn = srv.accept()
        reg = conn.recv_packet()
        assert len(reg) == 5961 and head_of(reg)["src"] == (4, 0, 33)
        # the 24-byte answer, access point unit 5: adopted as the client's unit
        conn.send(bytes.fromhex(ipc_packet("ipc_registration_ack.json", "accept, short")["hex"]))
        assert p.call(op="wait_connected", timeout=5)["ok"]
        assert p.call(op="unit")["unit_id"] == 5
        for n in range(10):
            assert p.call(op="send_raw", cmd=0x40 + n, cmd_type=3, dst=[0, 21, 3],
                          data=b"ABCDEFGHI"[:n].hex())["ok"]
            want = ipc_packet("ipc_senddata.json", "SendData payload size %d" % n)
            assert conn.recv_packet().hex() == want["canonical_hex"], n


@needs_vectors
def test_registration_with_full_length_strings_equals_the_vector(short_tmp, peers):
    path = os.path.join(short_tmp, "fake")
    with FakeServer(path) as srv:
        start_ipc_peer(peers, path, client_id=20, client_type=3, wait=False,
                       user="U" * 64, password="P" * 128, info="A" * 256)
        conn = srv.accept()
        assert conn.recv_packet().hex() == ipc_packet("ipc_registration.json",
                                                      "user/pwd/add_info")["canonical_hex"]


def test_idle_client_stays_connected(short_tmp, ipc_recorder):
    """No heartbeat and no liveness timeout on IPC (IPC.md §5.5): a server
    that sends nothing for 15 s keeps its client."""
    path = os.path.join(short_tmp, "fake")
    with FakeServer(path) as srv:
        c = ipc_recorder.cls.create(20, 3, ipc_path=path)
        c.activate()
        conn = srv.accept()
        assert len(conn.recv_packet()) == 5961
        conn.send(register_ack(5))
        assert wait_for(lambda: ipc_recorder.of("connect"), 5)
        conn.expect_nothing(15.5)                 # not even a heartbeat
        assert c.is_connected()
        assert ipc_recorder.of("disconnect") == []
        with pytest.raises(TimeoutError):
            srv.accept(timeout=0.1)
        c.dispose()


# ---- bad input ------------------------------------------------------------------------


def test_missing_router_is_reported_once_and_retried_every_2_s(short_tmp, ipc_recorder):
    path = os.path.join(short_tmp, "ipc")
    c = ipc_recorder.cls.create(7, 3, ipc_path=path)
    t0 = time.monotonic()
    c.activate()
    assert wait_for(lambda: ipc_recorder.of("connect_fail"), 2) == [(-20,)]
    time.sleep(max(0.0, t0 + 3.0 - time.monotonic()))
    with FakeServer(path) as srv:
        conn = srv.accept(timeout=4)
        waited = time.monotonic() - t0
        # attempts at 0, 2, 4 s: the listener appeared at 3 s
        assert 3.6 <= waited <= 5.0, waited
        assert len(conn.recv_packet()) == 5961
        conn.send(register_ack(0))
        assert wait_for(lambda: ipc_recorder.of("connect"), 5) == [(0,)]
    assert ipc_recorder.of("connect_fail") == [(-20,)]     # only the first failure
    c.dispose()


def test_a_path_that_is_not_a_socket(short_tmp, ipc_recorder, caplog):
    from smartbus.server import Server
    path = os.path.join(short_tmp, "regular")
    with open(path, "w") as f:
        f.write("keep me")
    caplog.set_level(logging.WARNING, logger="smartbus.sdk")
    c = ipc_recorder.cls.create(7, 3, ipc_path=path)
    c.activate()
    assert wait_for(lambda: ipc_recorder.of("connect_fail"), 2) == [(-20,)]
    assert wait_for(lambda: [r for r in caplog.records if path in r.getMessage()], 2)
    msg = [r.getMessage() for r in caplog.records if path in r.getMessage()][0]
    assert "cannot connect" in msg and "refused" in msg.lower(), msg
    c.dispose()
    # the router refuses it too, and never deletes it
    with pytest.raises(OSError, match="not a socket"):
        Server(port=0, ipc_path=path)
    with open(path) as f:
        assert f.read() == "keep me"


def test_one_ipc_client_per_process_and_dispose_twice(router, ipc_recorder):
    from smartbus.errors import AlreadyExistsError, NotInitializedError, SmartBusError
    from smartbus.ipc import Client
    c = ipc_recorder.cls.create(7, 3, ipc_path=router.ipc_path)
    assert Client.get() is c and Client.instance() is c
    with pytest.raises(AlreadyExistsError):
        Client.create(8, 3, ipc_path=router.ipc_path)
    assert Client.get_or_create(8, 3) is c
    # refused before the registration (-2), not queued
    with pytest.raises(SmartBusError) as e:
        c.send_data(1, 3, 0, 9, 3, b"x")
    assert e.value.code == -2
    c.activate()
    assert wait_for(lambda: c.is_connected(), 5)
    # the checks of IPC.md §4.2
    for args, code in [((1, 3, 0, 7, 3, b"x"), -11),       # to itself
                       ((1, 3, 48, 1, 3, b"x"), -12),      # unit > 47
                       ((1, 0, 0, 9, 3, b"x"), -16)]:      # cmd_type 0
        with pytest.raises(SmartBusError) as e:
            c.send_data(*args)
        assert e.value.code == code, args
    with pytest.raises(SmartBusError) as e:
        c.launch_flow(16, 0, "p", "f", 0, 1, [])
    assert e.value.code == -12
    with pytest.raises(SmartBusError) as e:
        c.notify(16, 0, "p", "t", 0, 1, "x")
    assert e.value.code == -12
    c.dispose()
    c.dispose()                                   # harmless
    Client.destroy()
    assert c.is_closed()
    with pytest.raises(NotInitializedError):
        Client.get()
    with pytest.raises(RuntimeError):
        c.send_data(1, 3, 0, 9, 3, b"x")
    # a new one may be created afterwards
    c2 = ipc_recorder.cls.create(7, 3, ipc_path=router.ipc_path)
    c2.activate()
    assert wait_for(lambda: c2.is_connected(), 5)
    c2.dispose()


def test_path_from_the_environment(router, peers):
    p = start_ipc_peer(peers, None, env={"SMARTBUS_IPC_PATH": router.ipc_path})
    assert p.call(op="unit")["unit_id"] == 0


def test_bad_arguments(short_tmp, monkeypatch):
    from smartbus.ipc import Client
    from smartbus.ipsc import FlowServer
    for bad in [dict(client_id=256, client_type=3), dict(client_id=-1, client_type=3),
                dict(client_id=5, client_type=1), dict(client_id=5, client_type=256)]:
        with pytest.raises(ValueError):
            Client(**bad)
    long_path = os.path.join(short_tmp, "x" * 120)
    with pytest.raises(ValueError, match="limit is 107"):
        Client(5, 3, ipc_path=long_path)
    with pytest.raises(ValueError, match="limit is 107"):
        FlowServer(0, ipc_path=long_path)
    monkeypatch.setenv("SMARTBUS_IPC_PATH", long_path)
    with pytest.raises(ValueError, match="limit is 107"):
        Client(5, 3)
    with pytest.raises(ValueError):
        Client(5, 3, ipc_path="")
    assert Client._instance is None               # nothing left behind


def test_duplicate_client_id_is_refused_and_retried(router, peers):
    a = start_ipc_peer(peers, router.ipc_path, client_id=5)
    b = start_ipc_peer(peers, router.ipc_path, client_id=5, wait=False)
    # the router refuses the second (-10, already connected); it retries every 2 s
    assert wait_for(lambda: events_of(b, "connect_fail"), 5) == [[-10]]
    assert router.stats()["clients"] == 1
    a.close()
    assert b.call(op="wait_connected", timeout=5)["ok"]
    assert router.stats()["clients"] == 1


def test_stale_socket_replaced_and_live_one_kept(short_tmp, ipc_recorder):
    from smartbus.server import Server
    path = os.path.join(short_tmp, "ipc")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()                                     # a stale socket file stays behind
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    with Server(port=0, ipc_path=path):
        c = ipc_recorder.cls.create(7, 3, ipc_path=path)
        c.activate()
        assert wait_for(lambda: c.is_connected(), 5)
        # a second server on the same path is refused; the first keeps serving
        with pytest.raises(OSError, match="in use"):
            Server(port=0, ipc_path=path)
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        c.dispose()
        c = ipc_recorder.cls.create(7, 3, ipc_path=path)
        c.activate()
        assert wait_for(lambda: c.is_connected(), 5)
        c.dispose()
    assert not os.path.exists(path)               # removed by the server that made it


def run_cli(*args, env=None):
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = ROOT + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    env = full_env
    return subprocess.Popen([sys.executable, "-m", "smartbus.server", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def first_line(proc, timeout=10):
    out = []
    t = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    assert out, "the server printed nothing within %s s" % timeout
    return out[0]


def stop_cli(proc, timeout=10):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("the server did not stop on SIGTERM")
    return proc.returncode


def test_cli_ipc_path_options(short_tmp, ipc_recorder):
    path = os.path.join(short_tmp, "cli")
    proc = run_cli("--port", "0", "--ipc-path", path)
    try:
        line = first_line(proc)
        assert line.startswith("smartbus router unit 0 listening on 127.0.0.1:")
        assert line.rstrip().endswith("ipc %s" % path)
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        c = ipc_recorder.cls.create(7, 3, ipc_path=path)
        c.activate()
        assert wait_for(lambda: ipc_recorder.of("connect"), 5) == [(0,)]
        c.dispose()
    finally:
        assert stop_cli(proc) == 0
    assert not os.path.exists(path)

    # the default path follows $SMARTBUS_IPC_PATH, like the clients'
    proc = run_cli("--port", "0", env={"SMARTBUS_IPC_PATH": path})
    try:
        assert first_line(proc).rstrip().endswith("ipc %s" % path)
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        assert stop_cli(proc) == 0

    # --no-ipc: no socket at all
    proc = run_cli("--port", "0", "--ipc-path", path, "--no-ipc")
    try:
        line = first_line(proc)
        assert "listening" in line and "ipc" not in line
        assert not os.path.exists(path)
    finally:
        assert stop_cli(proc) == 0

    # a regular file is an error and is left alone
    with open(path, "w") as f:
        f.write("data")
    proc = run_cli("--port", "0", "--ipc-path", path)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("the server did not refuse a regular file")
    assert proc.returncode == 1
    assert "not a socket" in err
    with open(path) as f:
        assert f.read() == "data"
