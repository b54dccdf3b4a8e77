"""The IPC client end to end: with NET clients through the real router
(data, ping, global connect events, unit learnt from the router),
reconnection, its packets on the wire against the golden vectors (captured
by a bare Unix socket server), an idle link, and bad input (missing router,
a path that is not a socket, a second client, arguments)."""

import logging
import os
import shutil
import tempfile
import time

import pytest

from helpers import (PeerProcess, WireServer, exchange_both_ways, head_of, ipc_packet,
                     register_ack, start_ipc_peer, start_net_peer, wait_for)

N_MESSAGES = 3000
MAX_SIZE = 65536
#: longer than the 14 s after which a NET client drops a silent link
IDLE_S = 15.5


@pytest.fixture(scope="module", autouse=True)
def idle_link():
    """An IPC client (in a peer process) registered with a bare server that
    then sends nothing.  It starts with this module's first test so that
    its IDLE_S seconds pass while the other tests run;
    test_idle_client_stays_connected, the module's last test, waits for
    what is left and checks the link."""
    tmp = tempfile.mkdtemp(prefix="sbt")
    srv = WireServer(os.path.join(tmp, "idle"))
    peer = PeerProcess()
    try:
        assert peer.call(op="init", kind="ipc", ipc_path=srv.path, client_id=20,
                         client_type=3)["ok"]
        conn = srv.accept()
        assert len(conn.recv_packet()) == 5961
        conn.send(register_ack(5))
        assert peer.call(op="wait_connected", timeout=5)["ok"]
        yield srv, conn, peer, time.monotonic()
    finally:
        peer.close()
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)


# ---- through the router -------------------------------------------------------------


def test_ipc_and_net_exchange_data_both_ways(router, peers):
    ipc = start_ipc_peer(peers, router.ipc_path, client_id=5, client_type=3)
    net = start_net_peer(peers, router, 16)
    # both directions at once, sizes 0..64 KiB, contents and order checked
    got_ipc, got_net = exchange_both_ways(ipc, [16, 1, 11], net, [0, 5, 3], N_MESSAGES,
                                          MAX_SIZE)
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
        return [d for d in peer.received() if d[0] == cmd]
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
    assert ipc.events("connect") == [[0]]           # the router's unit, learnt
    assert ipc.call(op="unit")["unit_id"] == 0
    net = start_net_peer(peers, router, 16, client_id=2, client_type=12)
    # the IPC client hears of the newcomer (1); the NET one is told the IPC one exists (2)
    arrived = wait_for(lambda: [e for e in ipc.events("global") if e[4] == 1], 5)
    assert arrived == [[16, 2, 12, 0, 1, "unit-16"]]
    present = wait_for(lambda: [e for e in net.events("global") if e[4] == 2], 5)
    assert present == [[0, 5, 3, 0, 2, "ipc-5"]]
    # a second IPC client: reported to both (status 1), told of both (status 2)
    ipc2 = start_ipc_peer(peers, router.ipc_path, client_id=6, client_type=4, info="ipc-6")
    assert wait_for(lambda: [e for e in net.events("global") if e[:2] == [0, 6]], 5) == \
        [[0, 6, 4, 0, 1, "ipc-6"]]
    assert wait_for(lambda: [e for e in ipc.events("global") if e[:2] == [0, 6]], 5) == \
        [[0, 6, 4, 0, 1, "ipc-6"]]
    told = wait_for(lambda: (lambda e: len(e) >= 2 and e)(ipc2.events("global")), 5)
    assert sorted(told) == [[0, 5, 3, 0, 2, "ipc-5"], [16, 2, 12, 0, 2, "unit-16"]]
    time.sleep(0.3)                                   # a second copy would be here by now
    assert len(ipc.events("global")) == 2
    assert len(ipc2.events("global")) == 2
    # the IPC clients leave: the NET client hears status 0 for each
    ipc.close()
    ipc2.close()
    left = wait_for(lambda: (lambda e: len(e) >= 2 and e)(
        [e for e in net.events("global") if e[4] == 0]), 5)
    assert sorted(left) == [[0, 5, 3, 0, 0, "ipc-5"], [0, 6, 4, 0, 0, "ipc-6"]]


def test_unit_id_is_learnt_from_the_router(short_tmp, make_router, peers, ipc_client):
    path = os.path.join(short_tmp, "ipc3")
    srv = make_router(unit_id=3, ipc_path=path)
    c = ipc_client(9, path, 5, activate=False)
    assert c.unit_id is None and c.access_unit_id is None
    c.activate()
    assert c.log.wait("connect") == [(3,)]
    assert c.unit_id == 3 and c.access_unit_id == 3 and c.is_connected()
    net = start_net_peer(peers, srv, 17)
    c.send_data(4, 3, 17, 1, 11, b"from unit 3")
    assert net.received(1) == [[4, 3, 3, 9, 11, b"from unit 3".hex()]]


def test_client_reconnects_after_a_router_restart(short_tmp, make_router, peers):
    path = os.path.join(short_tmp, "ipc")
    srv = make_router(ipc_path=path)
    a = start_ipc_peer(peers, path, client_id=5)
    b = start_ipc_peer(peers, path, client_id=6)
    srv.stop()
    assert wait_for(lambda: a.events("disconnect") and b.events("disconnect"), 5)
    srv = make_router(ipc_path=path)
    # both register again by themselves (retries every 2 s)
    assert wait_for(lambda: srv.stats()["clients"] == 2, 8), srv.stats()
    assert wait_for(lambda: len(a.events("connect")) == 2 and len(b.events("connect")) == 2, 5)
    assert a.call(op="send", dst=[0, 6, 3], count=50, max_size=4096)["ok"]
    assert b.call(op="expect", count=50, max_size=4096, timeout=10)["ok"]


# ---- on the wire: the golden vectors -------------------------------------------------


def test_packets_equal_the_ipc_vectors(short_tmp, peers):
    """Registration, data, ping, ping answer and global-connect answer, and
    the registration repeated on a new connection, as the Hesong client."""
    path = os.path.join(short_tmp, "fake")
    with WireServer(path) as srv:
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
        assert p.received(1) == [[7, 1, 0, 30, 8, b"PING1234".hex()]]

        # data from the server with Hesong-style padding
        conn.send(bytes.fromhex(ipc_packet("ipc_senddata.json", "server->client")["hex"]))
        assert p.received(2)[1] == [4, 3, 0, 30, 5, b"abcde".hex()]

        gc = "ipc_global_connect.json"
        conn.send(bytes.fromhex(ipc_packet(gc, "server -> client, cmd 9, status 1")["hex"]))
        assert conn.recv_packet().hex() == ipc_packet(gc, "client answer")["canonical_hex"]
        conn.send(bytes.fromhex(ipc_packet(gc, "cmd 9 status 0")["hex"]))
        conn.send(bytes.fromhex(ipc_packet(gc, "cmd 10 status 2")["hex"]))
        conn.expect_nothing(0.5)                      # no answer to those
        assert wait_for(lambda: len(p.events("global")) >= 3, 5)
        assert p.events("global") == [[0, 31, 4, 0, 1, "peer-info"],
                                      [2, 32, 4, 2, 0, "gc-0"],
                                      [2, 32, 4, 2, 2, "gc-2"]]

        # the server closes: the client reconnects at once and registers again
        # (at once if the link lasted 2 s; a server that drops every link
        # right after registering it is retried every 2 s, not in a tight loop)
        time.sleep(max(0.0, registered_at + 2.2 - time.monotonic()))
        conn.close()
        t0 = time.monotonic()
        conn = srv.accept(timeout=5)
        assert time.monotonic() - t0 < 1.5          # the retry would come after 2 s
        assert conn.recv_packet().hex() == ipc_packet("ipc_registration.json",
                                                      "typical")["canonical_hex"]
        assert wait_for(lambda: p.events("disconnect"), 5) == [[]]

        # a refused registration (-5) is reported and never retried
        conn.send(bytes.fromhex(ipc_packet("ipc_registration_ack.json", "reject")["hex"]))
        assert wait_for(lambda: p.events("connect_fail"), 5) == [[-5]]
        with pytest.raises(EOFError):
            conn.recv_packet(timeout=5)
        with pytest.raises(TimeoutError):
            srv.accept(timeout=2.5)


def test_data_packets_of_sizes_0_to_9_equal_the_vectors(short_tmp, peers):
    path = os.path.join(short_tmp, "fake")
    with WireServer(path) as srv:
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


def test_registration_with_full_length_strings_equals_the_vector(short_tmp, peers):
    path = os.path.join(short_tmp, "fake")
    with WireServer(path) as srv:
        start_ipc_peer(peers, path, client_id=20, client_type=3, wait=False,
                       user="U" * 64, password="P" * 128, info="A" * 256)
        conn = srv.accept()
        assert conn.recv_packet().hex() == ipc_packet("ipc_registration.json",
                                                      "user/pwd/add_info")["canonical_hex"]


# ---- bad input ------------------------------------------------------------------------


def test_missing_router_is_reported_once_and_retried_every_2_s(short_tmp, ipc_client):
    path = os.path.join(short_tmp, "ipc")
    c = ipc_client(7, path, activate=False)
    t0 = time.monotonic()
    c.activate()
    assert c.log.wait("connect_fail", timeout=2) == [(-20,)]
    time.sleep(max(0.0, t0 + 3.0 - time.monotonic()))
    with WireServer(path) as srv:
        conn = srv.accept(timeout=4)
        waited = time.monotonic() - t0
        # attempts at 0, 2, 4 s: the listener appeared at 3 s
        assert 3.6 <= waited <= 5.9, waited
        assert len(conn.recv_packet()) == 5961
        conn.send(register_ack(0))
        assert c.log.wait("connect") == [(0,)]
    assert c.log.of("connect_fail") == [(-20,)]     # only the first failure


def test_a_path_that_is_not_a_socket(short_tmp, ipc_client, caplog):
    path = os.path.join(short_tmp, "regular")
    with open(path, "w") as f:
        f.write("keep me")
    caplog.set_level(logging.WARNING, logger="smartbus.sdk")
    c = ipc_client(7, path, connect=False)
    assert c.log.wait("connect_fail", timeout=2) == [(-20,)]
    assert wait_for(lambda: [r for r in caplog.records if path in r.getMessage()], 2)
    msg = [r.getMessage() for r in caplog.records if path in r.getMessage()][0]
    assert "cannot connect" in msg and "refused" in msg.lower(), msg
    c.dispose()
    with open(path) as f:
        assert f.read() == "keep me"


def test_one_ipc_client_per_process_and_dispose_twice(router, ipc_client):
    from smartbus.errors import AlreadyExistsError, SmartBusError
    from smartbus.ipc import Client
    c = ipc_client(7, router.ipc_path, activate=False)
    assert Client.get() is c and Client.instance() is c
    with pytest.raises(AlreadyExistsError):
        Client.create(8, 3, ipc_path=router.ipc_path)
    assert Client.get_or_create(8, 3) is c
    # refused before the registration (-2), not queued
    with pytest.raises(SmartBusError) as e:
        c.send_data(1, 3, 0, 9, 3, b"x")
    assert e.value.code == -2
    c.activate()
    assert c.connected.wait(5)
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
    assert Client.get() is None and Client.instance() is None
    with pytest.raises(RuntimeError):
        c.send_data(1, 3, 0, 9, 3, b"x")
    # a new one may be created afterwards
    c2 = ipc_client(7, router.ipc_path)
    assert c2.is_connected()


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


# ---- an idle link (keep last: see idle_link) ---------------------------------------


def test_idle_client_stays_connected(idle_link):
    """No heartbeat and no liveness timeout on IPC (IPC.md §5.5): a server
    that sends nothing for IDLE_S seconds keeps its client, which sends
    nothing either."""
    srv, conn, peer, since = idle_link
    conn.expect_nothing(max(0.0, since + IDLE_S - time.monotonic()))
    assert time.monotonic() - since >= IDLE_S
    assert peer.events("connect") == [[5]] and peer.events("disconnect") == []
    assert peer.call(op="unit")["unit_id"] == 5
    with pytest.raises(TimeoutError):              # no new connection either
        srv.accept(timeout=0.1)
