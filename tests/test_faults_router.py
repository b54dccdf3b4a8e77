"""The router against peers that misbehave, on purpose or by bad luck
(issue 10, docs/reliability.md "Router"): floods from peers that never
read, slow readers, oversized heads, silent and half-sent connections, a
registration flood, too many connections, no file descriptor left, forged
sources and forged global events, mutated streams on the IPC socket.  The
attacks are tests/router_attacks.py and tests/ipc_fuzz.py (also scripts
for long runs and measurements); the router runs as a process of its own
where its memory is measured, in this process where its counters are read.
Everything on loopback, bounded in time."""

import os
import random
import socket
import time

import pytest

from smartbus import _native

import ipc_fuzz
from helpers import TEST_UNIT, data_packet, raw_client, registration, wait_for
from router_attacks import (big_announce, client_global_event, closed_by_peer, connect,
                            fd_exhaustion, forged_source, head, heartbeat, heartbeats,
                            many_connections, peak_mib, register, registration_churn, rss_mib,
                            slow_reader, start_router)

#: what an attack may add to the router process's memory (its own queue
#: bounds are 1 MiB in these tests; Python's allocator and the read buffers
#: account for the rest)
GROWTH_MIB = 40


@pytest.fixture
def router_process():
    """Factory of router processes (``start_router``), killed at teardown."""
    made = []

    def make(*args, **kwargs):
        made.append(start_router(*args, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.kill()


def assert_bounded(router, before_mib, result):
    assert router.proc.poll() is None, "the router died: %s" % router.stderr_text()
    assert not result.get("capped"), result
    assert peak_mib(router.proc.pid) < before_mib + GROWTH_MIB, (before_mib, result)


def eof_within(sock, timeout):
    """True when the other end closes ``sock`` within ``timeout`` s (data
    received before the end is returned by the caller's own reads)."""
    return wait_for(lambda: closed_by_peer(sock), timeout, 0.02)


# ---- before the registration ----------------------------------------------------------

def test_unregistered_heartbeats_are_not_answered_and_the_peer_is_closed_in_time(make_router):
    router = make_router(registration_timeout=1.5)
    s = connect(router.port)
    try:
        t0 = time.monotonic()
        for _ in range(50):
            s.sendall(heartbeat(16) * 20)
        assert eof_within(s, 10), "the silent peer was not closed"
        # closed by the registration timeout, with nothing sent to it before
        assert 1.0 < time.monotonic() - t0 < 8
        assert s.recv(65536) == b""
    finally:
        s.close()
    st = router.stats()
    assert (st["heartbeats"], st["dropped_unregistered"]) == (0, 1000), st
    assert st["registration_timeouts"] == 1, st


def test_an_unregistered_heartbeat_flood_that_never_reads_stays_bounded(router_process):
    router = router_process("--registration-timeout", 2)
    before = rss_mib(router.proc.pid)
    result = heartbeats(router, registered=False, seconds=15)
    assert result["cut_after_s"] is not None and result["cut_after_s"] < 10, result
    assert_bounded(router, before, result)


@pytest.mark.parametrize("registered", [False, True], ids=["unregistered", "registered"])
def test_an_oversized_packet_closes_its_connection_at_once(router_process, registered):
    router = router_process("--max-out-bytes", 1 << 20)
    before = rss_mib(router.proc.pid)
    result = big_announce(router, registered, size=200 << 20, seconds=15)
    assert result["cut_after_s"] is not None and result["cut_after_s"] < 3, result
    assert result["sent_mib"] < 100, result
    assert_bounded(router, before, result)


def test_size_limits_before_and_after_the_registration(make_router):
    router = make_router(max_out_bytes=64 << 10)
    # unregistered: up to the largest registration layout (6053 bytes),
    # dropped unanswered; one byte more closes the connection
    s = connect(router.port)
    s.sendall(head(6053, 6033) + bytes(6033))
    t = connect(router.port)
    t.sendall(head(6054, 6034))
    assert eof_within(t, 5) and not closed_by_peer(s)
    assert wait_for(lambda: router.stats()["dropped_unregistered"] == 1, 5), router.stats()
    # registered: up to max_out_bytes
    a = raw_client(router.port, 16, 1)
    b = raw_client(router.port, 17, 1)
    for conn in (a, b):
        assert _native.decode_packet(conn.recv_packet(cmd=2))["result"] == 0
    biggest = data_packet((16, 1, 11), (17, 1, 11), bytes((64 << 10) - 20), cmd=42)
    a.send(biggest)
    assert b.recv_packet(cmd=42) == biggest
    a.send(head((64 << 10) + 1, (64 << 10) - 19))
    with pytest.raises(EOFError):
        a.recv_packet(timeout=5, cmd=42)
    assert router.stats()["protocol_errors"] == 2
    for conn in (s, t, a, b):
        conn.close()


# ---- silent connections, too many connections, no descriptor left ------------------------

def test_silent_and_half_sent_connections_are_closed_registered_ones_stay(make_router,
                                                                          net_client):
    router = make_router(registration_timeout=1.0)
    member = net_client(7, router.port)
    reg = registration(16, 1)
    silent = [connect(router.port) for _ in range(10)]
    half = [connect(router.port) for _ in range(10)]
    for s in half:
        s.sendall(reg[:3000])
    try:
        assert wait_for(lambda: all(closed_by_peer(s) for s in silent + half), 10), \
            router.stats()
        assert router.stats()["registration_timeouts"] == 20
        # the registered client is still there, and so is anybody who registers in time
        late = connect(router.port)
        assert register(late, 16) == 0
        time.sleep(1.5)
        assert not closed_by_peer(late) and member.is_connected()
        late.close()
    finally:
        for s in silent + half:
            s.close()


def test_a_thousand_silent_connections_go_after_the_registration_timeout(router_process):
    router = router_process("--registration-timeout", 2)
    result = many_connections(router, 1000, wait=20)
    assert result["closed_by_router"] == result["opened"] == 1000, result
    assert result["last_closed_after_s"] < 15, result


def test_newcomers_beyond_max_connections_are_closed_at_once(make_router):
    router = make_router(max_connections=4)
    held = [connect(router.port) for _ in range(4)]
    try:
        assert wait_for(lambda: router.stats()["accepted"] == 4, 5)
        extra = connect(router.port)
        assert eof_within(extra, 5), "the fifth connection was not closed"
        assert router.stats()["rejected_connections"] == 1
        extra.close()
        held.pop().close()
        assert wait_for(lambda: router.stats()["closed"] == 1, 5), router.stats()
        newcomer = connect(router.port)
        assert register(newcomer, 16) == 0
        newcomer.close()
    finally:
        for s in held:
            s.close()


def test_no_descriptor_left_a_newcomer_is_closed_registered_clients_are_served(router_process):
    # 64 descriptors in all for the router process: Python and the router
    # take some, the rest fill with silent connections
    router = router_process("--registration-timeout", 4, nofile=64)
    result = fd_exhaustion(router, idle=100, registration_wait=6)
    assert result["idle_opened"] > 30, result
    assert result["newcomer"]["got"] == "closed" and result["newcomer"]["after_s"] < 2, result
    assert result["newcomer_later"]["got"] == "ack 0", result
    assert result["registered_still_served"], result
    assert router.proc.poll() is None


# ---- peers that do not read ------------------------------------------------------------

def test_a_registered_heartbeat_flood_that_never_reads_is_cut(router_process):
    # every heartbeat answered (1 ms interval): the router's own packets
    # fill the peer's queue, which stays within its budget until the stall
    # rule cuts the peer
    router = router_process("--max-out-bytes", 1 << 20, "--stall-timeout", 2,
                            "--heartbeat-answer-interval", 0.001)
    before = rss_mib(router.proc.pid)
    result = heartbeats(router, registered=True, seconds=20)
    assert result["cut_after_s"] is not None and result["cut_after_s"] < 15, result
    assert_bounded(router, before, result)


def test_a_registered_heartbeat_flood_costs_no_memory_by_default(router_process):
    # one answer per 5 s (the default interval): nothing piles up for a
    # peer that never reads, and it is not cut (it is only a fast sender)
    router = router_process("--max-out-bytes", 1 << 20, "--stall-timeout", 2)
    before = rss_mib(router.proc.pid)
    result = heartbeats(router, registered=True, seconds=4)
    assert result["cut_after_s"] is None and result["sent_mib"] > 1, result
    assert_bounded(router, before, result)


def test_a_reader_slower_than_its_backlog_is_cut_a_fast_one_is_not(router_process):
    router = router_process("--max-out-bytes", 1 << 20, "--stall-timeout", 2)
    before = rss_mib(router.proc.pid)
    # fed 64 KiB messages as fast as it reads; reads 16 KiB every 0.25 s:
    # it cannot drain half its 1 MiB bound within 2 s
    slow = slow_reader(router, seconds=20, read_bytes=16 << 10)
    assert slow["cut_after_s"] is not None and slow["cut_after_s"] < 15, slow
    assert slow["read_mib"] > 0, slow                       # it did read: progress, too slow
    assert_bounded(router, before, slow)
    # the same, reading whatever is there every 0.05 s: never cut
    fast = slow_reader(router, seconds=6, read_bytes=4 << 20, read_every=0.05)
    assert fast["cut_after_s"] is None and fast["read_mib"] > 5, fast


def test_a_peer_that_never_reads_is_cut_by_its_budget_in_a_registration_flood(make_router,
                                                                              net_client):
    # the smallest bound and a stall timeout longer than the test: what cuts
    # the peer is the budget (2 x 16 KiB + 64 KiB) of the global events
    # queued to it, one per arrival and departure of the flood
    router = make_router(max_out_bytes=16 << 10, stall_timeout=120)
    stalled = connect(router.port, rcvbuf=4096)
    member = net_client(7, router.port)
    try:
        assert register(stalled, 16) == 0
        deadline = time.monotonic() + 60
        n = registration_churn(router.port, lambda: router.stats()["stalled_disconnects"] > 0
                               or time.monotonic() > deadline)
        assert router.stats()["stalled_disconnects"] == 1, (n, router.stats())
        # the member heard of every arrival; the router serves it still
        assert member.is_connected()
        a = raw_client(router.port, 17, 1)
        assert _native.decode_packet(a.recv_packet(cmd=2))["result"] == 0
        a.send(data_packet((17, 1, 11), (TEST_UNIT, 7, 11), b"still served", cmd=42))
        assert [d for h, d in member.log.wait("data")] == [b"still served"]
        a.close()
    finally:
        stalled.close()


# ---- impersonation ------------------------------------------------------------------------

def test_a_forged_source_triple_is_stamped_with_the_sender(make_router):
    router = make_router()
    result = forged_source(router)
    assert result["seen_as"] == result["real"] == [16, 1, 11], result


def test_an_ipc_client_speaks_with_the_router_unit(make_router, short_tmp, net_client):
    router = make_router(unit_id=3, ipc_path=os.path.join(short_tmp, "ipc"))
    me = net_client(7, router.port)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(router.ipc_path)
    try:
        assert register(s, 9, client=4, client_type=3) == 0        # unit: the router's
        s.sendall(data_packet((9, 5, 12), (TEST_UNIT, 7, 11), b"from ipc", cmd=42))
        (h, d), = me.log.wait("data")
        assert (h.src_unit_id, h.src_unit_client_id, h.src_unit_client_type, d) == \
            (3, 4, 3, b"from ipc")
    finally:
        s.close()


def test_a_client_cannot_send_global_connect_events(make_router, net_client):
    router = make_router()
    assert client_global_event(router) == {"forged_events_delivered": 0}
    assert wait_for(lambda: router.stats()["clients"] == 0, 5)
    # nor to one of our clients: its application hears only the router
    me = net_client(7, router.port)
    other = raw_client(router.port, 17, 1)
    forger = raw_client(router.port, 16, 1)
    for conn in (other, forger):
        assert _native.decode_packet(conn.recv_packet(cmd=2))["result"] == 0
    assert me.log.wait("global", 2) and len(me.log.of("global")) == 2   # 17 and 16 arrived
    fake = _native.encode_packet({
        "kind": "global", "cmd": 9, "cmdtype": 1, "src_type": 1, "src_unit": 0,
        "src_client": 0, "dst_type": 11, "dst_unit": TEST_UNIT, "dst_client": 7,
        "unit_id": 17, "client_id": 1, "client_type": 11, "ap_unit": 0, "status": 0,
        "info": b"forged"})
    forger.send(fake + data_packet((16, 1, 11), (TEST_UNIT, 7, 11), b"marker", cmd=42))
    assert [d for h, d in me.log.wait("data")] == [b"marker"]
    assert [e[4] for e in me.log.of("global")] == [1, 1], me.log.of("global")
    st = router.stats()
    assert st["dropped_forged"] == 2 and st["routed_msgs"] == 2, st
    for conn in (other, forger):
        conn.close()


# ---- the IPC socket, fuzzed ----------------------------------------------------------------

def test_mutated_streams_on_the_ipc_socket_leave_the_router_serving_and_bounded():
    seed = random.randrange(2**32)
    result = ipc_fuzz.run(seconds=10, max_streams=1500, seed=seed)
    assert result["router_alive"] and result["still_serves"], (seed, result)
    assert result["streams"] >= 200, (seed, result)
    assert result["peak_rss_mib"] < result["rss_before_mib"] + GROWTH_MIB, (seed, result)
