"""Our NET client's packets, captured on the wire by a bare test server,
equal the golden vectors (tests/vectors) byte for byte once the bytes the
Hesong client leaves undefined are masked (we send zeros there).  The
client runs as unit 20, client 5, type 11 with user 'userA', password
'pwdB' and info 'info-C', like the captures.  Also: its send queue is
bounded when the server stops reading."""

import struct
import time

import pytest

from helpers import PeerProcess, WireServer, load_vectors, wait_for

BUILD = "sdk-x64-2015"          # our client sends the A/B layouts (NET.md §5.1)
#: the short registration ack of the captures: access point unit 3
REGISTER_ACK = bytes.fromhex("155b02000003000b14050000180000000400000000000000")


def vectors(name):
    return load_vectors(name)["vectors"]


def registered_peer(srv):
    """A peer process whose NET client registered with WireServer ``srv``:
    (peer, connection, its registration packet)."""
    peer = PeerProcess()
    assert peer.call(op="init", kind="net", unit=20, port=srv.port, client_id=5, client_type=11,
                     user="userA", password="pwdB", info="info-C")["ok"]
    conn = srv.accept(answer_heartbeats=True)
    registration = conn.recv_packet(cmd=1)
    conn.send(REGISTER_ACK)
    assert peer.call(op="wait_connected", timeout=5)["ok"]
    return peer, conn, registration


def masked(data, ranges):
    b = bytearray(data)
    for lo, hi in ranges:
        b[lo:hi] = bytes(hi - lo)
    return bytes(b)


def reserved_and_pad(packet):
    """Header reserved bytes and trailing pad: undefined in Hesong packets."""
    datalen = struct.unpack_from("<i", packet, 16)[0]
    return [(10, 12), (20 + datalen, len(packet))]


@pytest.fixture(scope="module")
def wire():
    """A registered client (peer process) talking to a WireServer."""
    with WireServer() as srv:
        peer, conn, registration = registered_peer(srv)
        try:
            yield conn, peer, registration
        finally:
            peer.close()


def test_registration(wire):
    _, _, got = wire
    vec = [v for v in vectors("registration.json")
           if v["build"] == BUILD and v["case"] == "registration"][0]
    want = bytes.fromhex(vec["hex"])
    assert len(got) == len(want) == 6025
    # header bytes 7..11 are not set by the Hesong client; the node table's
    # process pointer (469+414..469+421) varies
    undefined = [(7, 12), (469 + 414, 469 + 422)]
    assert masked(got, undefined) == masked(want, undefined)


def test_heartbeat(wire):
    conn, _, _ = wire
    got = conn.recv_packet(timeout=3, cmd=5)
    vec = [v for v in vectors("heartbeat.json")
           if v["build"] == BUILD and v["direction"] == "client->server"][0]
    want = bytes.fromhex(vec["hex"])
    assert vec["fields"]["count"] == 0
    # the send time (payload bytes 16..23) is the clock's
    undefined = [(10, 12), (36, 44)]
    assert masked(got, undefined) == masked(want, undefined)
    assert abs(struct.unpack_from("<q", got, 36)[0] - time.time()) < 5


DATA = [v for v in vectors("data.json") if v["build"] == BUILD
        and v["direction"] == "client->server"
        and v.get("case") != "negative_unit"]     # ours rejects negative units in Python


@pytest.mark.parametrize("vec", DATA, ids=lambda v: v.get("case") or "size%d" % v["call"]["size"])
def test_send_data(wire, vec):
    conn, peer, _ = wire
    want = bytes.fromhex(vec["hex"])
    h = vec["header"]
    payload = want[20:20 + h["datalen"]]
    assert peer.call(op="send_raw", cmd=h["cmd"], cmd_type=h["cmdtype"],
                     dst=[h["dst_unit"], h["dst_client"], h["dst_type"]], data=payload.hex())["ok"]
    got = conn.recv_packet(cmd=h["cmd"])
    assert masked(got, reserved_and_pad(want)) == masked(want, reserved_and_pad(want))
    assert got[20 + h["datalen"]:] == bytes(len(got) - 20 - h["datalen"])   # zero padding


def test_ping(wire):
    conn, peer, _ = wire
    for case in ("ping_packet", "ping_packet_empty"):
        vec = [v for v in vectors("ping.json") if v["build"] == BUILD and v["case"] == case][0]
        want = bytes.fromhex(vec["hex"])
        h = vec["header"]
        assert peer.call(op="ping", dst=[h["dst_unit"], h["dst_client"], h["dst_type"]],
                         data=want[20:20 + h["datalen"]].hex())["ok"]
        got = conn.recv_packet(cmd=7)
        assert masked(got, reserved_and_pad(want)) == masked(want, reserved_and_pad(want))


def test_ping_answer(wire):
    conn, _, _ = wire
    for case in ("ping_from_server", "empty_ping_from_server"):
        vec = [v for v in vectors("ping.json") if v["build"] == BUILD and v["case"] == case][0]
        cb = vec["client_callbacks"][0]
        conn.send(bytes.fromhex(cb["head"]) + bytes.fromhex(cb["data"] or ""))
        want = bytes.fromhex(vec["client_reply_hex"])
        got = conn.recv_packet(cmd=8)
        assert masked(got, reserved_and_pad(want)) == masked(want, reserved_and_pad(want))


GLOBAL = [v for v in vectors("global_connect_reply.json") if v["build"] == BUILD]


@pytest.mark.parametrize("vec", GLOBAL, ids=lambda v: v["in_answer_to"])
def test_global_connect_answer(wire, vec):
    conn, _, _ = wire
    trigger = [v for v in vectors("global_connect.json")
               if v["build"] == BUILD and v["case"] == vec["in_answer_to"]][0]
    conn.send(bytes.fromhex(trigger["hex"]))
    want = bytes.fromhex(vec["hex"])
    got = conn.recv_packet(cmd=10)
    # outer and inner reserved, the pad byte, and the add_info field after
    # its NUL (stale memory in the Hesong client)
    info_end = 45 + want[45:301].index(0)
    undefined = [(10, 12), (30, 32), (info_end, 301), (301, 302)]
    assert masked(got, undefined) == masked(want, undefined)


def test_delivery_filter_follows_the_hesong_client(wire):
    """data_to_client.json: the packets a server sends to client (unit 20,
    client 5, type 11) and which of them the Hesong client delivered."""
    conn, peer, _ = wire
    before = len(peer.received())
    expected = []
    for vec in vectors("data_to_client.json"):
        if vec["build"] != BUILD or vec["case"] == "registration_ack_again":
            continue
        conn.send(bytes.fromhex(vec["hex"]))
        for effect in vec["client_effect"]:
            if effect["ev"] == "recv_cb":
                head = bytes.fromhex(effect["head"])
                expected.append([head[2], head[3], effect["data"] or ""])
    marker = bytes.fromhex("155b63030200040b1405000018000000040000006d61726b")   # "mark"
    conn.send(marker)
    got = wait_for(lambda: (lambda d: d[-1][5] == "6d61726b" and d)(
        peer.received()[before:] or [[0] * 6]), 20)
    assert got, "the marker did not arrive"
    assert [[d[0], d[1], d[5]] for d in got[:-1]] == expected
    assert len(expected) >= 10


def test_send_queue_is_bounded():
    """A server that stops reading: the client's queue fills and sends are
    refused with -7 instead of growing memory."""
    with WireServer() as srv:
        peer, conn, _ = registered_peer(srv)
        try:
            conn.pause_reading()
            # 64 KiB messages: the 64 MiB bound is reached after ~1,000 plus
            # what the sockets hold
            r = peer.call(op="fill", dst=[0, 2, 2], size=65536, limit=20000, timeout=60)
            assert r["ok"] and r["error_code"] == -7, r
            assert r["sent"] < 20000
            assert r["queued_bytes"] <= 64 << 20
        finally:
            conn.close()            # else closing the client lingers 2 s on its full queue
            peer.close()
