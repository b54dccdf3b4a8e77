"""Fuzzes the router's IPC socket: mutated registration and data streams
(built from the IPC golden vectors, tests/vectors/ipc_*.json) over many
Unix-socket connections, sent in random pieces, some connections read,
some never, some half-closed.  Afterwards two clients registered before the
run must still exchange a message, and the router's memory must have stayed
bounded.  test_faults_router.py runs it briefly; for a long run:

    python tests/ipc_fuzz.py --seconds 600 [--seed N]

(a router process is started for it, as in tests/router_attacks.py).
"""

import argparse
import os
import random
import shutil
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import data_packet, load_vectors  # noqa: E402
from router_attacks import peak_mib, read_packet, register, rss_mib, start_router  # noqa: E402

#: connections kept open at once
OPEN_AT_ONCE = 16


def client_packets():
    """(registrations, other packets) a client sends, from the IPC vectors."""
    regs, others = [], []
    for name in ("ipc_registration", "ipc_senddata", "ipc_ping", "ipc_remote_invoke_flow",
                 "ipc_send_notify", "ipc_global_connect"):
        for p in load_vectors(name + ".json")["packets"]:
            if p["direction"] == "client->server":
                pkt = bytes.fromhex(p["hex"])
                (regs if pkt[2:4] == b"\x01\x00" else others).append(pkt)
    return regs, others


def mutate(rng, data):
    """``data`` with a few random changes: bits, bytes, head sizes, cuts,
    repeats."""
    b = bytearray(data)
    for _ in range(rng.randrange(0, 6)):
        if not b:
            break
        kind = rng.randrange(7)
        at = rng.randrange(len(b))
        if kind == 0:
            b[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            b[at] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif kind == 2 and len(b) >= 20:                  # a size field of the first head
            field = rng.choice((12, 16))
            value = rng.choice((0, 19, 20, 6053, 6054, 1 << 20, 200 << 20, -1,
                                rng.randrange(-2**31, 2**31)))
            struct.pack_into("<i", b, field, value)
        elif kind == 3:
            del b[at:at + rng.randrange(1, 64)]
        elif kind == 4:
            b[at:at] = b[at:at + rng.randrange(1, 256)]
        elif kind == 5:                                   # a command byte
            b[min(at, 3) if len(b) > 3 else 0] = rng.randrange(20)
        else:
            b += bytes(rng.randrange(1, 4096))
    return bytes(b)


def stream(rng, regs, others):
    """One connection's bytes: usually a registration, then packets."""
    parts = [rng.choice(regs)] if rng.random() < 0.8 else []
    parts += [rng.choice(others) for _ in range(rng.randrange(0, 8))]
    return mutate(rng, b"".join(parts))


def send_in_pieces(rng, s, data):
    at = 0
    while at < len(data):
        n = rng.choice((1, 7, 20, 100, 4096, len(data)))
        try:
            s.sendall(data[at:at + n])
        except OSError:                                 # the router closed it
            return False
        at += n
    return True


def ipc_connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    return s


def fuzz(path, seconds, max_streams, seed):
    """Runs the streams against the router on ``path``; returns counts."""
    rng = random.Random(seed)
    regs, others = client_packets()
    open_conns = []
    sent = refused = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and sent < max_streams:
        try:
            s = ipc_connect(path)
        except OSError:
            refused += 1
            time.sleep(0.01)
            continue
        s.settimeout(0.2)
        send_in_pieces(rng, s, stream(rng, regs, others))
        sent += 1
        how = rng.randrange(3)
        if how == 0:                                    # read what came, then close
            try:
                s.recv(1 << 16)
            except OSError:
                pass
        elif how == 1:                                  # half-close
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        open_conns.append(s)                            # the third kind never reads
        if len(open_conns) > OPEN_AT_ONCE:
            open_conns.pop(rng.randrange(len(open_conns))).close()
    for s in open_conns:
        s.close()
    return {"streams": sent, "connect_failures": refused}


def registered(path, client):
    """An IPC connection registered as ``client`` (type 3); retried while a
    fuzzed connection the router has not yet seen close holds the id."""
    deadline = time.monotonic() + 5
    while True:
        s = ipc_connect(path)
        result = register(s, 0, client=client, client_type=3)
        if result == 0:
            return s
        s.close()
        assert result == -10 and time.monotonic() < deadline, result
        time.sleep(0.2)


def still_serves(path):
    """Two IPC clients registered now exchange a message."""
    a = registered(path, 201)
    b = registered(path, 202)
    try:
        unit = read_packet(a)[5]                        # b's arrival, from the router
        b.sendall(data_packet((unit, 202, 3), (unit, 201, 3), b"still served", cmd=42))
        while True:
            pkt = read_packet(a)
            if pkt is None or pkt[2] == 42:
                return pkt is not None and pkt[20:] == b"still served"
    finally:
        a.close()
        b.close()


def run(seconds, max_streams, seed):
    """A router process with an IPC socket in a fresh directory, fuzzed;
    returns the counts, whether it still serves and its memory."""
    tmp = tempfile.mkdtemp(prefix="sbfz")
    path = os.path.join(tmp, "ipc")
    router = start_router("--registration-timeout", 2, ipc_path=path)
    try:
        before = rss_mib(router.proc.pid)
        result = fuzz(path, seconds, max_streams, seed)
        result["router_alive"] = router.proc.poll() is None
        result["still_serves"] = result["router_alive"] and still_serves(path)
        result["rss_before_mib"] = round(before, 1)
        result["peak_rss_mib"] = round(peak_mib(router.proc.pid), 1)
        return result
    finally:
        router.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--streams", type=int, default=10**9, help="at most this many streams")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    result = run(args.seconds, args.streams, seed)
    print("seed %d: %s" % (seed, result), flush=True)
    return 0 if result["still_serves"] else 1


if __name__ == "__main__":
    sys.exit(main())
