"""Writes the seed corpus of fuzz/router_stream.c into a directory: every
packet of the golden vectors (tests/vectors) alone, each client
registration followed by each packet, and streams that fill the router's
queues (data floods and heartbeat floods, sized so that the harness picks
the mode "registered first, nobody reads").

    python fuzz/seeds_router_stream.py DIR
"""

import glob
import hashlib
import json
import os
import struct
import sys

VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests",
                       "vectors")
#: the harness's modes, from the input length (fuzz/router_stream.c)
MODE_PREREGISTERED, MODE_NOBODY_READS = 2, 4


def vector_packets():
    """(packets, client registrations) of every vector file, as bytes."""
    packets, registrations = [], []
    for path in sorted(glob.glob(os.path.join(VECTORS, "*.json"))):
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        for v in doc.get("vectors", []) + doc.get("packets", []):
            if not v.get("hex"):
                continue
            pkt = bytes.fromhex(v["hex"].replace(" ", ""))
            packets.append(pkt)
            if pkt[2:4] == b"\x01\x00" and str(v.get("direction")).startswith("client"):
                registrations.append(pkt)
    return packets, registrations


def packet(cmd, cmd_type, src, dst, payload):
    """A client packet: head (flag, cmd, cmdtype, src/dst type-unit-client,
    reserved, sizes) and payload, no padding."""
    return struct.pack("<HBBBBBBBBHii", 0x5B15, cmd, cmd_type, src[2], src[0], src[1], dst[2],
                       dst[0], dst[1], 0, 20 + len(payload), len(payload)) + payload


def with_mode(stream, mode):
    """``stream`` padded with zero-length-payload data packets to no
    destination, then zero bytes, until its length selects ``mode`` (bits
    of the length modulo 8)."""
    stream += packet(1, 3, (17, 1, 11), (40, 9, 11), b"")
    while len(stream) % 8 != mode:
        stream += b"\0"
    return stream


def seeds():
    packets, registrations = vector_packets()
    out = set(packets)
    for reg in registrations:
        for pkt in packets:
            out.add(reg + pkt)
    me, net_helper, ipc_helper = (17, 1, 11), (16, 1, 11), (3, 2, 3)
    flood_mode = MODE_PREREGISTERED | MODE_NOBODY_READS
    for size in (100, 1000, 4000):
        for dst in (net_helper, ipc_helper, (16, 0xFF, 11)):
            data = packet(1, 3, me, dst, bytes(size)) * (40000 // (size + 20))
            out.add(with_mode(data, flood_mode))
    heartbeats = packet(5, 0, me, (3, 0, 1), bytes(1024)) * 40
    out.add(with_mode(heartbeats, flood_mode))
    return out


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: python fuzz/seeds_router_stream.py DIR")
    os.makedirs(argv[1], exist_ok=True)
    made = seeds()
    for seed in made:
        with open(os.path.join(argv[1], hashlib.sha1(seed).hexdigest()), "wb") as f:
            f.write(seed)
    print("%d seeds in %s" % (len(made), argv[1]))


if __name__ == "__main__":
    main(sys.argv)
