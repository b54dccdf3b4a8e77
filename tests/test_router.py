"""The router's rules (docs/router.md), seen from its clients: registration
(credentials, a (unit, client) already registered, the NET unit range, what
counts before and after it),
routing (to one client whatever its type, dst_client 0xFF to every client of
a type but the sender, to nobody; the bytes forwarded), global connect
events exactly once, and bounded memory: back-pressure pauses a sender that
feeds a destination which stopped reading, and the stall rule disconnects
that destination.  Bare clients (helpers.raw_client) do what our clients
cannot: register a unit out of range, send chosen bytes, stop reading."""

import os
import socket
import struct
import time

import pytest

from smartbus import _native
from smartbus.errors import SmartBusError

from helpers import (TEST_UNIT, WireConn, data_packet, raw_client, registration, start_ipc_peer,
                     start_net_peer, wait_for)

BIG = 64 << 10                   # the payload of the floods


def ack_result(conn):
    """The result of the registration ack a bare client received."""
    return _native.decode_packet(conn.recv_packet(cmd=2))["result"]


def registered_raw(router, unit, client_id, client_type=11, **kwargs):
    conn = raw_client(router.port, unit, client_id, client_type, **kwargs)
    assert ack_result(conn) == 0
    return conn


def data_up_to(conn, marker_cmd, timeout=5.0):
    """The cmds of the data packets (cmdtype 3) a bare client receives up to
    and including the first with cmd ``marker_cmd``."""
    cmds = []
    while not cmds or cmds[-1] != marker_cmd:
        pkt = conn.recv_packet(timeout)
        if pkt[3] == 3:
            cmds.append(pkt[2])
    return cmds


# ---- registration -------------------------------------------------------------------


def test_credentials(short_tmp, make_router, net_client, ipc_client):
    router = make_router(user="bus", password="secret", ipc_path=os.path.join(short_tmp, "ipc"))
    cases = {9: (None, None, -4),                 # SMARTBUS_ERR_AUTHOR: no user
             10: ("nobody", "secret", -5),        # SMARTBUS_ERR_USER
             11: ("bus", "wrong", -6)}            # SMARTBUS_ERR_PWD
    refused = {cid: net_client(cid, router.port, connect=False, user=user, password=password)
               for cid, (user, password, _) in cases.items()}
    ipc = ipc_client(5, router.ipc_path, connect=False, user="bus", password="wrong")
    accepted = net_client(12, router.port, user="bus", password="secret")
    for cid, (_, _, code) in cases.items():
        assert refused[cid].log.wait("connect_fail") == [(code,)], cid
    assert ipc.log.wait("connect_fail") == [(-6,)]
    assert accepted.log.of("connect") == [(0,)]
    st = router.stats()
    assert (st["refused"], st["registered"], st["clients"]) == (4, 1, 1), st


def test_a_registered_unit_and_client_refuses_a_second_one(router, net_client):
    first = net_client(7, router.port)
    second = raw_client(router.port, TEST_UNIT, 7)
    assert ack_result(second) == -10
    try:                                        # closed once the ack is flushed
        second.recv_packet(timeout=5)
        raise AssertionError("the refused connection stayed open")
    except EOFError:
        pass
    assert first.is_connected() and first.log.of("disconnect") == []
    st = router.stats()
    assert (st["refused"], st["clients"]) == (1, 1), st


def test_a_refused_ipc_client_retries_until_the_first_leaves(router, peers):
    a = start_ipc_peer(peers, router.ipc_path, client_id=5)
    b = start_ipc_peer(peers, router.ipc_path, client_id=5, wait=False)
    # the router refuses the second (-10, already connected); it retries every 2 s
    assert wait_for(lambda: b.events("connect_fail"), 5) == [[-10]]
    assert router.stats()["clients"] == 1
    a.close()
    assert b.call(op="wait_connected", timeout=5)["ok"]
    assert router.stats()["clients"] == 1


def test_packets_after_the_registration_in_the_same_read_count_as_registered(router):
    # a vendor client may send its first heartbeats before the ack arrives:
    # here the registration and two heartbeats go in one send
    s = socket.create_connection(("127.0.0.1", router.port))
    conn = WireConn(s)
    hb = data_packet((16, 1, 11), (0, 0, 1), b"12345678", cmd=5, cmd_type=0)
    conn.send(registration(16, 1) + hb + hb)
    assert ack_result(conn) == 0
    assert conn.recv_packet(cmd=6)[20:] == b"12345678"    # the first answered ...
    st = router.stats()
    # ... and both counted as a registered client's (the second is not
    # answered: one answer per heartbeat_answer_interval)
    assert (st["heartbeats"], st["heartbeat_answers"], st["dropped_unregistered"]) == (2, 1, 0), st
    conn.close()


def test_heartbeats_are_answered_at_most_once_per_interval(make_router):
    # a client keeps a link whose last byte is recent (NET.md §5.4): the
    # router answers one heartbeat per interval, each with its own payload
    router = make_router(heartbeat_answer_interval=0.3)
    conn = registered_raw(router, 16, 1)
    sent = 0
    t0 = time.monotonic()
    while time.monotonic() < t0 + 1.5:
        conn.send(data_packet((16, 1, 11), (0, 0, 1), b"hb%06d" % sent, cmd=5, cmd_type=0))
        sent += 1
        time.sleep(0.02)
    elapsed = time.monotonic() - t0
    assert wait_for(lambda: router.stats()["heartbeats"] == sent, 5), router.stats()
    answers = []
    while True:
        try:
            answers.append(conn.recv_packet(0.5, cmd=6, skip_heartbeats=False)[20:])
        except TimeoutError:
            break
    st = router.stats()
    assert st["heartbeat_answers"] == len(answers), (st, answers)
    # the first heartbeat, then one every 0.3 s at the earliest
    assert answers[0] == b"hb000000", answers
    assert 2 <= len(answers) <= elapsed / 0.3 + 1, (len(answers), sent, elapsed)
    assert sent > 3 * len(answers), (sent, answers)
    assert all(a.startswith(b"hb") for a in answers) and len(set(answers)) == len(answers)
    conn.close()


def test_heartbeat_answer_interval_must_be_positive():
    from smartbus.server import Server
    for bad in (0, -1, 0.0001):
        with pytest.raises(ValueError, match="heartbeat_answer_interval"):
            Server(heartbeat_answer_interval=bad)
    with pytest.raises(TypeError, match="heartbeat_answer_interval"):
        Server(heartbeat_answer_interval=None)


def test_before_the_registration_only_a_registration_counts(router, net_client):
    me = net_client(7, router.port)
    s = socket.create_connection(("127.0.0.1", router.port))
    conn = WireConn(s)
    # a heartbeat and data before the registration: dropped, not answered
    conn.send(data_packet((16, 1, 11), (0, 0, 1), b"hb", cmd=5, cmd_type=0) +
              data_packet((16, 1, 11), (TEST_UNIT, 7, 11), b"too early", cmd=41) +
              registration(16, 1) +
              data_packet((16, 1, 11), (TEST_UNIT, 7, 11), b"in time", cmd=42))
    assert conn.recv_packet(skip_heartbeats=False)[2] == 2          # the ack comes first
    assert [(h.cmd, d) for h, d in me.log.wait("data")] == [(42, b"in time")]
    st = router.stats()
    assert (st["heartbeats"], st["dropped_unregistered"]) == (0, 2), st
    conn.close()


def test_net_units_are_16_to_47(router):
    for unit, result in ((15, -12), (48, -12), (16, 0), (47, 0)):
        conn = raw_client(router.port, unit, 1)
        assert ack_result(conn) == result, unit
        conn.close()
    assert router.stats()["refused"] == 2


# ---- routing -------------------------------------------------------------------------


def test_routing(router, net_client):
    # this process: unit 40, clients 7 and 8 of type 11, client 9 of type 12
    c7, c8 = net_client(7, router.port), net_client(8, router.port)
    c9 = net_client(9, router.port, 12)
    a = registered_raw(router, 16, 1)
    a2 = registered_raw(router, 16, 2)
    b = registered_raw(router, 17, 1)

    # to one client, whatever the type asked: every head byte kept (the
    # reserved ones too) but packet_size, and the client's padding dropped
    sent = data_packet((16, 1, 11), (17, 1, 99), b"hello", cmd=21, pad=1, reserved=b"\x12\x34")
    assert len(sent) > 25
    a.send(sent)
    assert b.recv_packet(cmd=21) == sent[:12] + struct.pack("<i", 25) + sent[16:25]

    # dst_client 0xFF: every client of that type at that unit (7 and 8, not 9)
    a.send(data_packet((16, 1, 11), (TEST_UNIT, 0xFF, 11), b"to type 11", cmd=22))
    for c in (c7, c8):
        assert [(h.cmd, d) for h, d in c.log.wait("data")] == [(22, b"to type 11")]
    # ... the marker, sent after it on the same connection, comes after it
    a.send(data_packet((16, 1, 11), (TEST_UNIT, 9, 12), b"marker", cmd=23))
    assert [(h.cmd, d) for h, d in c9.log.wait("data")] == [(23, b"marker")]

    # ... but never back to the sender
    a.send(data_packet((16, 1, 11), (16, 0xFF, 11), b"to unit 16", cmd=24))
    assert data_up_to(a2, 24) == [24]
    b.send(data_packet((17, 1, 11), (16, 1, 11), b"marker", cmd=25))
    assert data_up_to(a, 25) == [25]

    # to nobody: dropped and counted
    a.send(data_packet((16, 1, 11), (41, 1, 11), b"lost", cmd=26))
    assert wait_for(lambda: router.stats()["dropped_no_route"] == 1, 5), router.stats()
    st = router.stats()
    assert (st["routed_msgs"], st["routed_bytes"]) == (6, 5 + 2 * 10 + 6 + 10 + 6), st


def test_global_events_exactly_once(router, peers):
    a = start_net_peer(peers, router, 16, client_id=3, client_type=12)
    b = start_net_peer(peers, router, 17, client_id=4, client_type=13)
    # a hears of b's arrival (status 1); b is told a is already there (status 2)
    arrived = wait_for(lambda: [e for e in a.events("global") if e[4] == 1], 5)
    assert arrived == [[17, 4, 13, 0, 1, "unit-17"]]
    present = wait_for(lambda: [e for e in b.events("global") if e[4] == 2], 5)
    assert present == [[16, 3, 12, 0, 2, "unit-16"]]
    # a's library answered b's arrival (cmd 10) before its application heard
    # of it; the router absorbs that answer, which would tell b twice that a
    # is there.  a's ping, sent after the answer, reaches b after it would.
    assert a.call(op="ping", dst=[17, 4, 13], data="")["ok"]
    assert b.received(1)[0][:3] == [7, 1, 16]
    assert b.events("global") == present
    # b leaves: a hears status 0, once
    b.close()
    left = wait_for(lambda: [e for e in a.events("global") if e[4] == 0], 5)
    assert left == [[17, 4, 13, 0, 0, "unit-17"]]
    assert a.events("global") == arrived + left


# ---- bounded memory --------------------------------------------------------------------


def flood_until_paused(router, sender, dst, limit=4096, timeout=30.0):
    """Sends BIG-byte messages numbered 0, 1, ... (first 4 bytes) from our
    client ``sender`` to ``dst`` (unit, client, type) until the router pauses
    the sender; returns how many were sent."""
    data = bytearray(BIG)
    n = 0
    deadline = time.monotonic() + timeout
    while router.stats()["paused_reads"] == 0:
        assert n < limit and time.monotonic() < deadline, \
            "%d messages sent, the router never paused the sender: %r" % (n, router.stats())
        data[:4] = n.to_bytes(4, "little")
        try:
            sender.send_data(1, 3, *dst, data)
            n += 1
        except SmartBusError as exc:               # our own queue is full: let it drain
            assert exc.code == -7, exc
            time.sleep(0.01)
    return n


def test_back_pressure_pauses_the_sender_and_loses_nothing(make_router, net_client):
    router = make_router(max_out_bytes=256 << 10, stall_timeout=60)
    slow = registered_raw(router, 16, 1, rcvbuf=4096)
    slow.pause_reading()
    live = registered_raw(router, 17, 1)
    sender, other = net_client(7, router.port), net_client(8, router.port)
    n = flood_until_paused(router, sender, (16, 1, 11))
    # the router still serves everybody else
    other.send_data(2, 3, 17, 1, 11, b"still served")
    assert live.recv_packet(cmd=2)[20:] == b"still served"
    # the destination reads again: every message arrives, in order
    slow.resume_reading()
    for i in range(n):
        pkt = slow.recv_packet(timeout=10, cmd=1)
        assert (len(pkt), int.from_bytes(pkt[20:24], "little")) == (20 + BIG, i)
    assert wait_for(lambda: sender.stats()["queued_msgs"] == 0, 10), sender.stats()
    st = router.stats()
    assert st["paused_reads"] >= 1 and st["dropped_no_route"] == 0, st
    assert st["stalled_disconnects"] == 0 and st["clients"] == 4, st


def test_stall_rule_disconnects_a_peer_that_stops_reading(make_router, net_client):
    router = make_router(max_out_bytes=256 << 10, stall_timeout=1.0)
    stalled = registered_raw(router, 16, 1, rcvbuf=4096, info="stalled")
    stalled.pause_reading()
    live = registered_raw(router, 17, 1)
    sender = net_client(7, router.port)
    flood_until_paused(router, sender, (16, 1, 11))
    # congested with no successful write for 1 s: disconnected like any other
    assert wait_for(lambda: router.stats()["stalled_disconnects"] == 1, 15), router.stats()
    gone = sender.log.wait("global", predicate=lambda e: e[:2] == (16, 1) and e[4] == 0)
    assert gone == [(16, 1, 11, 0, 0, "stalled")]
    stalled.resume_reading()
    try:
        while True:
            stalled.recv_packet(timeout=10)
    except EOFError:
        pass
    # its paused sender goes on: what it sends next arrives
    sender.send_data(2, 3, 17, 1, 11, b"after the stall")
    assert live.recv_packet(timeout=15, cmd=2)[20:] == b"after the stall"
    assert router.stats()["clients"] == 2
