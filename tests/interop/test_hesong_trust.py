"""The router's trust rules (docs/router.md) against Hesong's NET client
(build C, tests/interop/conftest.py): what the vendor client puts on the
wire where the rules look (its registration, the source triple of every
packet, when its heartbeats start), and that it keeps working when its
registration and its first heartbeats reach the router in one read.
"""

import socket
import struct
import threading
import time

import pytest

from helpers import TEST_UNIT as OUR_UNIT, WireServer, register_ack, wait_for

from .conftest import ROUTER_UNIT

pytestmark = pytest.mark.interop

HESONG = dict(unit=20, client_id=5, client_type=11)
#: the Hesong client's identity as a head carries it: (type, unit, client)
HESONG_TRIPLE = (11, 20, 5)


def src_of(pkt):
    return tuple(pkt[4:7])


def packets_in(data):
    """The (complete) packets of a byte string, in order."""
    out = []
    while len(data) >= 20:
        size = struct.unpack_from("<i", data, 12)[0]
        if size < 20 or len(data) < size:
            break
        out.append(data[:size])
        data = data[size:]
    return out


def test_every_packet_of_the_vendor_client_carries_its_registered_source(hesong):
    """Captured by a bare server: the registration first; heartbeats from
    1 s after the connection on, never before the registration; data, ping
    and global-connect answers (cmd 10) with the registered source triple,
    so the router's stamping changes no byte of what it sends."""
    with WireServer() as srv:
        t_connect = time.monotonic()
        v = hesong().start(srv.port, **HESONG)
        conn = srv.accept(answer_heartbeats=True)
        first = conn.recv_packet(skip_heartbeats=False)
        assert (first[2], first[3]) == (1, 0), "the first packet is not a registration"
        assert len(first) == 6053 and src_of(first)[0::2] == (11, 5)     # type, client
        conn.send(register_ack(ap_unit=ROUTER_UNIT))
        v.wait("connect", lambda e: e[2] == 0)
        hb = conn.recv_packet(cmd=5, skip_heartbeats=False)
        assert time.monotonic() - t_connect > 0.9                 # ~1 s after the connection
        # a global-connect event (about a client of ours): the client answers cmd 10
        from smartbus import _native
        conn.send(_native.encode_packet({
            "kind": "global", "cmd": 9, "cmdtype": 1, "src_type": 1, "src_unit": ROUTER_UNIT,
            "src_client": 0, "dst_type": 11, "dst_unit": 20, "dst_client": 5,
            "unit_id": OUR_UNIT, "client_id": 7, "client_type": 12, "ap_unit": ROUTER_UNIT,
            "status": 1, "info": b"ours"}))
        answer = conn.recv_packet(cmd=10)
        assert v.send(42, 3, (OUR_UNIT, 7, 12), b"data")["rc"] == 0
        data = conn.recv_packet(cmd=42)
        assert v.ping((OUR_UNIT, 7, 12), b"ping")["rc"] == 0
        ping = conn.recv_packet(cmd=7)
        for pkt in (hb, answer, data, ping):
            assert src_of(pkt) == HESONG_TRIPLE, pkt[:20].hex()
        assert answer[7:10] == bytes((12, OUR_UNIT, 7))          # addressed to the newcomer


class HoldingRelay:
    """A TCP relay in front of the router that holds what the client sends
    for ``hold`` seconds, then passes it on in one send: the router reads
    the registration and the heartbeats sent meanwhile together.  Then it
    relays both ways."""

    def __init__(self, router_port, hold):
        self.router_port, self.hold = router_port, hold
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held = b""                              # what went to the router at once
        self.socks = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _pipe(self, src, dst):
        try:
            while True:
                chunk = src.recv(1 << 16)
                if not chunk:
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _run(self):
        client, _ = self.listener.accept()
        router = socket.create_connection(("127.0.0.1", self.router_port))
        self.socks += [client, router]
        client.settimeout(0.05)
        deadline = time.monotonic() + self.hold
        held = b""
        while time.monotonic() < deadline:
            try:
                held += client.recv(1 << 16)
            except socket.timeout:
                pass
        client.settimeout(None)
        router.sendall(held)
        self.held = held
        threading.Thread(target=self._pipe, args=(router, client), daemon=True).start()
        self._pipe(client, router)

    def close(self):
        self.listener.close()
        for s in self.socks:
            s.close()
        self.thread.join(5)


def test_registration_and_heartbeats_in_one_read(make_router, hesong, net_client):
    """The router judges the heartbeats that follow the registration in the
    same read as a registered client's: all answered, none dropped."""
    router = make_router(unit_id=ROUTER_UNIT)
    me = net_client(7, router.port, 12)
    relay = HoldingRelay(router.port, hold=1.6)
    try:
        v = hesong().start(relay.port, **HESONG)
        v.wait("connect", lambda e: e[2] == 0, timeout=10)
        held = packets_in(relay.held)
        kinds = [(p[3], p[2]) for p in held]
        assert kinds[0] == (0, 1), kinds[:3]                  # the registration ...
        early = kinds.count((0, 5))
        assert early >= 100, "only %d heartbeats held with the registration" % early
        st = router.stats()
        assert st["dropped_unregistered"] == 0, st
        assert wait_for(lambda: router.stats()["heartbeats"] >= early, 5), router.stats()
        assert router.stats()["heartbeat_answers"] >= 1, router.stats()
        # the link works: data both ways, and it stays up
        assert v.send(42, 3, (OUR_UNIT, 7, 12), b"after the burst")["rc"] == 0
        got = me.log.wait("data", predicate=lambda e: e[0].cmd == 42, timeout=5)
        assert [d for h, d in got] == [b"after the burst"]
        time.sleep(1)
        assert not v.of("disconnect") and len(v.of("connect")) == 1
    finally:
        relay.close()
