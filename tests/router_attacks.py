"""Attacks on the router, from a bare socket on loopback, each bounded in
time and in the router's memory: the fault tests (test_faults_router.py)
run them with small bounds and assert the router's promises; run as a
script, they measure the rows of issue 10's table against a router
process and print them (docs/reliability.md has the figures):

    python tests/router_attacks.py                # every row, 10 s each
    python tests/router_attacks.py --seconds 5 heartbeats_unregistered_noread

To measure another build, put it first on PYTHONPATH (the router process
imports the same smartbus as this script); ``--router-arg`` passes options
to ``python -m smartbus.server`` (an older router may not know the new ones).

Each attack returns a dict of what it saw; the router's memory is read
from /proc (Linux): ``peak_rss_mib`` is its VmHWM at the end.
"""

import argparse
import json
import os
import resource
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import ServerProcess, data_packet, registration  # noqa: E402

MIB = 1 << 20
#: an attack stops once the router holds this much (the figure is then ">=")
RSS_CAP = 1 << 30
#: the largest heartbeat payload the router ever echoed (its answers are
#: the biggest control packets a peer can make it queue)
HB_ECHO = 1024


# ---- the router under attack ------------------------------------------------------

def memory_kib(pid):
    """(VmRSS, VmHWM) of process ``pid`` in KiB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out["VmRSS"], out["VmHWM"]


def rss_mib(pid):
    return memory_kib(pid)[0] / 1024


def peak_mib(pid):
    return memory_kib(pid)[1] / 1024


def start_router(*args, nofile=None, ipc_path=None):
    """``python -m smartbus.server`` (TCP on a free loopback port, IPC on
    ``ipc_path`` if given) with ``args``; ``nofile``: its RLIMIT_NOFILE
    (soft and hard).  Returns the ready ServerProcess (``.port``,
    ``.proc.pid``)."""
    ipc = ("--ipc-path", ipc_path) if ipc_path else ("--no-ipc",)
    env = None
    if "ASAN_OPTIONS" in os.environ:    # .ci/sanitize: measure the router, not the
        # memory AddressSanitizer keeps back to catch use after free (256 MiB)
        env = {"ASAN_OPTIONS": os.environ["ASAN_OPTIONS"] + ":quarantine_size_mb=4"}
    srv = ServerProcess("--port", 0, *ipc, *map(str, args), nofile=nofile, env=env)
    srv.wait_ready()
    return srv


# ---- packets ------------------------------------------------------------------------

def heartbeat(unit, client=1, size=HB_ECHO):
    """A heartbeat (cmdtype 0, cmd 5) with a ``size``-byte payload."""
    return data_packet((unit, client, 11), (0, 0, 1), bytes(size), cmd=5, cmd_type=0)


def head(packet_size, datalen, cmd=1, cmd_type=3, src=(16, 1, 11), dst=(17, 1, 11)):
    """A bare packet head (20 bytes) announcing any sizes."""
    return struct.pack("<HBBBBBBBBHii", 0x5B15, cmd, cmd_type, src[2], src[0], src[1], dst[2],
                       dst[0], dst[1], 0, packet_size, datalen)


def connect(port, timeout=5.0, rcvbuf=None):
    """A TCP connection to the router; ``rcvbuf`` shrinks its receive
    buffer first (a peer that does not read then fills it at once)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        raise
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class Observer:
    """A registered client that only watches the global-connect events (is
    somebody gone?), without blocking."""

    def __init__(self, port, unit):
        from smartbus import _native
        self._decode = _native.decode_packet
        self.sock = connect(port)
        assert register(self.sock, unit) == 0
        self.sock.setblocking(False)
        self.buf = b""
        self.departed = set()                       # (unit, client) seen leaving

    def gone(self, unit, client=1):
        """True once the router reported (unit, client) disconnected."""
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buf += chunk
        while len(self.buf) >= 20 and len(self.buf) >= int.from_bytes(self.buf[12:16], "little"):
            size = int.from_bytes(self.buf[12:16], "little")
            pkt, self.buf = self.buf[:size], self.buf[size:]
            if pkt[2:4] == b"\x09\x01":
                g = self._decode(pkt)
                if g["status"] == 0:
                    self.departed.add((g["unit_id"], g["client_id"]))
        return (unit, client) in self.departed

    def close(self):
        self.sock.close()


def read_packet(s, timeout=5.0):
    """One packet from a blocking socket: bytes, or None at end of stream."""
    s.settimeout(timeout)
    buf = b""
    while len(buf) < 20 or len(buf) < int.from_bytes(buf[12:16], "little"):
        need = 20 if len(buf) < 20 else int.from_bytes(buf[12:16], "little")
        chunk = s.recv(need - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def register(s, unit, client=1, client_type=11):
    """Sends a registration on ``s`` and returns the ack's result."""
    s.sendall(registration(unit, client, client_type))
    ack = read_packet(s)
    assert ack is not None and ack[2] == 2, "no registration ack"
    return struct.unpack_from("<i", ack, 20)[0]


def closed_by_peer(s):
    """True when the other end closed ``s`` (or reset it); never blocks."""
    timeout = s.gettimeout()
    s.setblocking(False)
    try:
        return s.recv(65536, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        s.settimeout(timeout)


# ---- floods -------------------------------------------------------------------------

def flood(router, s, chunk, seconds, read_bytes=0, read_every=0.25, cap=RSS_CAP):
    """Sends ``chunk`` on ``s`` as fast as the socket takes it for at most
    ``seconds``, reading ``read_bytes`` every ``read_every`` s (0: never),
    until the router closes ``s`` or holds ``cap`` bytes.  Returns what was
    seen: the router's peak RSS, when (s after the start) it closed the
    connection (None: never), whether the cap stopped the attack, bytes
    sent and read."""
    pid = router.proc.pid
    s.setblocking(False)
    t0 = time.monotonic()
    next_read = t0 + read_every
    sent = got = 0
    cut_after = None
    capped = False
    view = memoryview(chunk)
    pos = 0
    while True:
        now = time.monotonic()
        if now - t0 >= seconds:
            break
        if rss_mib(pid) * MIB >= cap:
            capped = True
            break
        try:
            n = s.send(view[pos:])
            sent += n
            pos = (pos + n) % len(chunk)
        except BlockingIOError:
            select.select([], [s], [], 0.01)
        except OSError:
            cut_after = now - t0
            break
        if read_bytes and now >= next_read:
            next_read += read_every
            try:
                data = s.recv(read_bytes)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data == b"":
                cut_after = now - t0
                break
            got += len(data or b"")
        if closed_by_peer(s) and cut_after is None:
            cut_after = time.monotonic() - t0
            break
    return {"peak_rss_mib": round(peak_mib(pid), 1), "cut_after_s": cut_after and
            round(cut_after, 2), "capped": capped, "elapsed_s": round(time.monotonic() - t0, 2),
            "sent_mib": round(sent / MIB, 1), "read_mib": round(got / MIB, 1)}


def heartbeats(router, registered, seconds=10.0, read_bytes=0, unit=16, cap=RSS_CAP):
    """A peer (registered or not) that sends heartbeats with the largest
    echoed payload as fast as it can and reads ``read_bytes`` every 0.25 s
    (0: never)."""
    s = connect(router.port, rcvbuf=None if read_bytes else 4096)
    try:
        if registered:
            assert register(s, unit) == 0
        chunk = heartbeat(unit) * 64
        return flood(router, s, chunk, seconds, read_bytes, cap=cap)
    finally:
        s.close()


def big_announce(router, registered, size=200 * MIB, seconds=10.0, unit=16, cap=RSS_CAP):
    """A peer (registered or not) that announces one ``size``-byte packet
    and streams its bytes."""
    s = connect(router.port)
    try:
        if registered:
            assert register(s, unit) == 0
        s.sendall(head(size, size - 20))
        return flood(router, s, bytes(MIB), seconds, cap=cap)
    finally:
        s.close()


def slow_reader(router, seconds=10.0, read_bytes=64 << 10, read_every=0.25, cap=RSS_CAP):
    """A registered peer (16/1) that reads ``read_bytes`` every
    ``read_every`` s while another (17/1) floods it with 64 KiB messages (as
    fast as the router takes them); a third (18/1) watches for its
    departure."""
    dst = connect(router.port, rcvbuf=256 << 10)
    src = connect(router.port)
    watch = None
    try:
        assert register(dst, 16) == 0 and register(src, 17) == 0
        watch = Observer(router.port, 18)
        dst.setblocking(False)
        src.setblocking(False)
        chunk = data_packet((17, 1, 11), (16, 1, 11), bytes(64 << 10)) * 4
        pid = router.proc.pid
        t0 = time.monotonic()
        next_read = t0
        view, pos = memoryview(chunk), 0
        cut_after = None
        got = 0
        while time.monotonic() - t0 < seconds and rss_mib(pid) * MIB < cap:
            try:
                pos = (pos + src.send(view[pos:])) % len(chunk)
            except BlockingIOError:
                select.select([], [src], [], 0.01)
            if time.monotonic() >= next_read:
                next_read += read_every
                try:
                    got += len(dst.recv(read_bytes))
                except (BlockingIOError, ConnectionError):
                    pass
                if watch.gone(16):
                    cut_after = time.monotonic() - t0
                    break
        return {"peak_rss_mib": round(peak_mib(pid), 1), "cut_after_s": cut_after and
                round(cut_after, 2), "read_mib": round(got / MIB, 1)}
    finally:
        for s in (src, dst, watch):
            if s is not None:
                s.close()


# ---- connections ----------------------------------------------------------------------

def registration_churn(port, until, first_unit=20):
    """Registers and disconnects clients (units ``first_unit``..47, every
    client id) one after the other until ``until()`` is true; returns how
    many registered.  Each arrival and departure is a global event for
    every registered client."""
    n = 0
    while not until():
        unit = first_unit + (n // 256) % (48 - first_unit)
        s = connect(port)
        try:
            assert register(s, unit, n % 256) == 0
        finally:
            s.close()
        n += 1
    return n


def many_connections(router, count=1000, wait=8.0, half_sent=True):
    """``count`` connections that stay silent (half of them, with
    ``half_sent``, after the first 3000 bytes of a registration); returns
    how many the router closed within ``wait`` seconds and when the last
    one went, and its peak RSS."""
    socks = []
    reg = registration(16, 1)
    t0 = time.monotonic()
    for i in range(count):
        try:
            s = connect(router.port, timeout=2)
        except OSError:
            break
        if half_sent and i % 2:
            s.sendall(reg[:3000])
        socks.append(s)
    opened = len(socks)
    closed_at = {}
    while time.monotonic() - t0 < wait and len(closed_at) < opened:
        for i, s in enumerate(socks):
            if i not in closed_at and closed_by_peer(s):
                closed_at[i] = time.monotonic() - t0
        time.sleep(0.1)
    for s in socks:
        s.close()
    return {"opened": opened, "closed_by_router": len(closed_at),
            "last_closed_after_s": round(max(closed_at.values()), 2) if closed_at else None,
            "peak_rss_mib": round(peak_mib(router.proc.pid), 1)}


def newcomer(port, timeout=5.0):
    """What a new connection that registers gets: "ack N" (the result),
    "closed" (a clean close), or "no answer" within ``timeout``; and after
    how long."""
    t0 = time.monotonic()
    try:
        s = connect(port, timeout=timeout)
    except OSError as exc:
        return {"got": "connect failed: %s" % exc, "after_s": round(time.monotonic() - t0, 2)}
    try:
        s.sendall(registration(16, 9))
        try:
            ack = read_packet(s, timeout)
        except socket.timeout:
            return {"got": "no answer", "after_s": round(time.monotonic() - t0, 2)}
        except OSError:
            ack = None
        got = "closed" if ack is None else "ack %d" % struct.unpack_from("<i", ack, 20)[0]
        return {"got": got, "after_s": round(time.monotonic() - t0, 2)}
    finally:
        s.close()


def fd_exhaustion(router, idle=1100, registration_wait=8.0):
    """With the router's open-files limit low (start it with ``nofile``):
    two registered clients, then ``idle`` silent connections, then a
    newcomer; after ``registration_wait`` s (silent connections timed out)
    another newcomer.  The registered clients exchange a message at the
    end."""
    a, b = connect(router.port), connect(router.port)
    socks = []
    try:
        assert register(a, 16) == 0 and register(b, 17) == 0
        read_packet(a)                                      # b's arrival (cmd 9)
        failures = 0
        while len(socks) < idle and failures < 3:    # a full backlog makes connect() wait
            try:
                socks.append(connect(router.port, timeout=3))
            except OSError:
                failures += 1
        first = newcomer(router.port)
        time.sleep(registration_wait)
        second = newcomer(router.port)
        b.sendall(data_packet((17, 1, 11), (16, 1, 11), b"still served", cmd=42))
        served = False
        while True:
            pkt = read_packet(a, 5)
            if pkt is None or pkt[2] == 42:
                served = pkt is not None and pkt[20:] == b"still served"
                break
        return {"idle_opened": len(socks), "newcomer": first, "newcomer_later": second,
                "registered_still_served": served}
    finally:
        for s in socks + [a, b]:
            s.close()


# ---- impersonation ------------------------------------------------------------------------

def forged_source(router):
    """Registered 16/1 sends data with 17/1's source triple to 18/1; what
    source does 18/1 see?"""
    a, b, c = (connect(router.port) for _ in range(3))
    try:
        for s, unit in ((a, 16), (b, 17), (c, 18)):
            assert register(s, unit) == 0
        a.sendall(data_packet((17, 1, 11), (18, 1, 11), b"from 17, honestly", cmd=42))
        while True:
            pkt = read_packet(c)
            if pkt is None or pkt[2] == 42:
                break
        src = None if pkt is None else (pkt[5], pkt[6], pkt[4])
        return {"sent_as": [17, 1, 11], "real": [16, 1, 11], "seen_as": src and list(src)}
    finally:
        for s in (a, b, c):
            s.close()


def client_global_event(router):
    """Registered 16/1 sends 18/1 a cmd 9 "17/1 disconnected" (17/1 is
    registered), then a marker; does 18/1 get the event?"""
    from smartbus import _native
    a, b, c = (connect(router.port) for _ in range(3))
    try:
        for s, unit in ((a, 16), (b, 17), (c, 18)):
            assert register(s, unit) == 0
        fake = _native.encode_packet({
            "kind": "global", "cmd": 9, "cmdtype": 1, "src_type": 1, "src_unit": 0,
            "src_client": 0, "dst_type": 11, "dst_unit": 18, "dst_client": 1, "unit_id": 17,
            "client_id": 1, "client_type": 11, "ap_unit": 0, "status": 0, "info": b"forged"})
        a.sendall(fake + data_packet((16, 1, 11), (18, 1, 11), b"marker", cmd=42))
        events = []
        while True:
            pkt = read_packet(c)
            if pkt is None or pkt[2] == 42:
                break
            if pkt[3] == 1 and pkt[2] == 9:
                events.append(_native.decode_packet(pkt)["info"])
        return {"forged_events_delivered": sum(1 for e in events if e == b"forged")}
    finally:
        for s in (a, b, c):
            s.close()


# ---- the table ------------------------------------------------------------------------------

ROWS = {
    "heartbeats_unregistered_noread":
        ("unregistered peer: heartbeats, never reads",
         lambda r, sec: heartbeats(r, False, sec)),
    "heartbeats_unregistered_slowread":
        ("unregistered peer: heartbeats, reads 64 KiB / 0.25 s",
         lambda r, sec: heartbeats(r, False, sec, read_bytes=64 << 10)),
    "heartbeats_registered_noread":
        ("registered peer: heartbeats, never reads",
         lambda r, sec: heartbeats(r, True, sec)),
    "heartbeats_registered_slowread":
        ("registered peer: heartbeats, reads 64 KiB / 0.25 s",
         lambda r, sec: heartbeats(r, True, sec, read_bytes=64 << 10)),
    "slow_reader_routed":
        ("registered peer fed 64 KiB messages, reads 64 KiB / 0.25 s",
         lambda r, sec: slow_reader(r, sec)),
    "big_packet_unregistered":
        ("unregistered peer announces a 200 MiB packet and sends it",
         lambda r, sec: big_announce(r, False, seconds=sec)),
    "big_packet_registered":
        ("registered peer announces a 200 MiB packet and sends it",
         lambda r, sec: big_announce(r, True, seconds=sec)),
    "idle_connections":
        ("1,000 connections: 500 silent, 500 half-sent registrations",
         lambda r, sec: many_connections(r, 1000, wait=sec)),
    "forged_source":
        ("registered client sends with another client's source triple",
         lambda r, sec: forged_source(r)),
    "client_global_event":
        ("registered client sends a cmd 9 'client X disconnected'",
         lambda r, sec: client_global_event(r)),
}
#: the row run against a router whose open-files limit is 1024
NOFILE_ROW = ("fd_exhaustion", "RLIMIT_NOFILE 1024: 1,100 silent connections, then a newcomer")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rows", nargs="*", help="rows to run (default: all): %s"
                    % ", ".join(list(ROWS) + [NOFILE_ROW[0]]))
    ap.add_argument("--seconds", type=float, default=10.0, help="bound of each attack")
    ap.add_argument("--router-arg", action="append", default=[],
                    help="an option for the router process (repeat)")
    ap.add_argument("--json", action="store_true", help="one JSON object per row")
    args = ap.parse_args(argv)
    rows = args.rows or list(ROWS) + [NOFILE_ROW[0]]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:                     # the attacks open more than 1,000 sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    for name in rows:
        if name == NOFILE_ROW[0]:
            title = NOFILE_ROW[1]
            router = start_router(*args.router_arg, nofile=1024)
            run = lambda r, sec: fd_exhaustion(r, registration_wait=sec)  # noqa: E731
        else:
            title, run = ROWS[name]
            router = start_router(*args.router_arg)
        try:
            result = run(router, args.seconds)
            result["router_alive"] = router.proc.poll() is None
        finally:
            router.kill()
        if args.json:
            print(json.dumps(dict(row=name, **result)), flush=True)
        else:
            print("| %s | %s |" % (title, ", ".join("%s %s" % kv for kv in result.items())),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
