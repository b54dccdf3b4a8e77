"""A raw SmartBus server for capturing what our clients put on the wire:
plain sockets (a Unix socket or TCP on loopback), no SmartBus code.  Every
wait is bounded."""

import json
import os
import socket
import struct
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS = os.path.join(os.path.dirname(ROOT), "shared", "protocol", "vectors")
HEAD = struct.Struct("<HBBBBBBBBHii")


def vectors_dir():
    """The golden vectors: $SMARTBUS_VECTORS, else ../shared/protocol/vectors
    next to the repository (as in the project's work tree)."""
    return os.environ.get("SMARTBUS_VECTORS") or VECTORS


def load_vectors(name):
    with open(os.path.join(vectors_dir(), name), encoding="utf-8") as f:
        return json.load(f)


def ipc_packet(name, label_start):
    """The IPC vector packet whose label starts with ``label_start``."""
    for p in load_vectors(name)["packets"]:
        if p["label"].startswith(label_start):
            return p
    raise KeyError("%s: no packet labelled %r" % (name, label_start))


def head_of(pkt):
    flag, cmd, cmdtype, st, su, sc, dt, du, dc, res, size, datalen = HEAD.unpack_from(pkt)
    return {"cmd": cmd, "cmdtype": cmdtype, "src": (st, su, sc), "dst": (dt, du, dc),
            "packet_size": size, "datalen": datalen}


def register_ack(ap_unit=0, result=0, dst=(0, 0, 0)):
    """The 24-byte registration answer (IPC.md §5.3): access point unit in
    header byte 5, ack_result at offset 20."""
    return HEAD.pack(0x5B15, 2, 0, 1, ap_unit & 0xFF, 0, dst[0], dst[1], dst[2], 0, 24, 4) + \
        struct.pack("<i", result)


class Conn:
    """One accepted connection: reads whole packets."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no complete packet in time (%d bytes buffered)" % len(self.buf))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise EOFError("connection closed by the client")
            self.buf += chunk

    def recv_packet(self, timeout=5.0, skip_heartbeats=True):
        """The next packet as bytes (header + payload + padding)."""
        deadline = time.monotonic() + timeout
        while True:
            self._fill(20, deadline)
            size = head_of(self.buf)["packet_size"]
            assert size >= 20, "packet_size %d < 20" % size
            self._fill(size, deadline)
            pkt, self.buf = self.buf[:size], self.buf[size:]
            h = head_of(pkt)
            if skip_heartbeats and h["cmdtype"] == 0 and h["cmd"] == 5:
                continue
            return pkt

    def expect_nothing(self, seconds=0.3):
        """Asserts that no packet (other than heartbeats) arrives for a while."""
        try:
            pkt = self.recv_packet(seconds)
        except TimeoutError:
            return
        raise AssertionError("unexpected packet %s" % pkt.hex())

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class FakeServer:
    """Listens on a Unix socket ``path`` or, without one, on 127.0.0.1."""

    def __init__(self, path=None):
        if path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(path)
            self.port = None
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        self.path = path
        self.sock.listen(8)
        self.conns = []

    def accept(self, timeout=5.0):
        self.sock.settimeout(timeout)
        try:
            s, _ = self.sock.accept()
        except socket.timeout:
            raise TimeoutError("no client connected within %s s" % timeout) from None
        s.setblocking(True)
        c = Conn(s)
        self.conns.append(c)
        return c

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()
        if self.path:
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
