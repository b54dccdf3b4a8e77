"""``smartbus ping``: round trips to a client on the bus, like the system
``ping``: the destination's library answers every ping (NET.md §7); one
line per answer, then a summary with min/avg/max/p99."""

import argparse
import math
import queue
import struct
import sys
import time
from typing import Any, Dict, List

from smartbus.cli.options import (CliError, Tool, add_connection_options,
                                  add_destination_option, address, connect, number, own_address,
                                  seconds)
from smartbus.errors import SmartBusError

NAME = "ping"
PING_ANSWER = 8                    # head cmd of an answer (cmd type 1)
_MAGIC = b"sbping"                 # payloads start with it, then the sequence number
_SEQ = struct.Struct("<Q")
MIN_SIZE = len(_MAGIC) + _SEQ.size
HELP = "measure round trips to a client"
DESCRIPTION = ("Ping a client on the bus (its library answers by itself) and print the round "
               "trips, then a summary.  Exit code 0 when at least one answer came.")
EXAMPLE = "smartbus ping --to 0:10:3 -c 5 -i 0.2"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_destination_option(p, "the client to ping")
    p.add_argument("-c", "--count", type=number(1, 2**31 - 1, "--count"),
                   help="stop after this many pings (default: until Ctrl-C)")
    p.add_argument("-i", "--interval", type=seconds, default=1.0,
                   help="seconds between pings (default 1)")
    p.add_argument("-s", "--size", type=number(MIN_SIZE, 65536, "--size"), default=32,
                   help="payload bytes (default 32)")
    p.add_argument("-w", "--deadline", type=seconds,
                   help="stop after this many seconds whatever was sent; with -c, ping until "
                        "that many answers came (e.g. -c 1 -w 10: wait for a client to be up)")
    add_connection_options(p)


def percentile(sorted_values: List[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted values."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


class _Pinger:
    """The pings sent, the answers received."""

    def __init__(self, client: Tool, args: argparse.Namespace) -> None:
        self.client, self.args = client, args
        self.sent_at: Dict[int, float] = {}
        self.rtts: Dict[int, float] = {}          # seq -> seconds (first answer)

    def send(self, seq: int) -> None:
        dst = self.args.to
        payload = (_MAGIC + _SEQ.pack(seq)).ljust(self.args.size, b"\0")
        self.sent_at[seq] = time.perf_counter()
        try:
            self.client.ping(dst.unit, dst.client, dst.type, payload)
        except SmartBusError as exc:
            raise CliError("ping %d refused: %s" % (seq, exc)) from None

    def take(self, until: float, enough: float = math.inf) -> None:
        """Handles the answers that arrive until time.monotonic() ``until``,
        or until ``enough`` sequence numbers have been answered."""
        while len(self.rtts) < enough:
            left = until - time.monotonic()
            if left <= 0:
                return
            try:
                event = self.client.events.get(timeout=left)
            except queue.Empty:
                return
            if event[0] == "data":
                self._answer(event[1], event[2], time.perf_counter())

    def _answer(self, head: Any, data: bytes, now: float) -> None:
        if head.cmd != PING_ANSWER or not data.startswith(_MAGIC) or len(data) < MIN_SIZE:
            return
        seq = _SEQ.unpack_from(data, len(_MAGIC))[0]
        if seq not in self.sent_at:
            return
        rtt = now - self.sent_at[seq]
        dup = seq in self.rtts
        if not dup:
            self.rtts[seq] = rtt
        src = address(head.src_unit_id, head.src_unit_client_id, head.src_unit_client_type)
        print("%d bytes from %s: seq=%d time=%.3f ms%s" % (len(data), src, seq, rtt * 1000,
                                                           " (DUP!)" if dup else ""), flush=True)

    def all_answered(self) -> bool:
        return len(self.rtts) == len(self.sent_at)

    def summary(self, elapsed: float) -> int:
        """Prints the statistics; the exit code."""
        sent, received = len(self.sent_at), len(self.rtts)
        loss = 100.0 * (sent - received) / sent if sent else 0.0
        print("--- %s ping statistics ---" % (self.args.to,))
        print("%d sent, %d received, %.0f%% loss, time %.0f ms"
              % (sent, received, loss, elapsed * 1000))
        if received:
            ms = sorted(r * 1000 for r in self.rtts.values())
            print("rtt min/avg/max/p99 = %.3f/%.3f/%.3f/%.3f ms"
                  % (ms[0], sum(ms) / len(ms), ms[-1], percentile(ms, 0.99)))
        sys.stdout.flush()
        return 0 if received else 1


def run(args: argparse.Namespace) -> int:
    client = connect(args, NAME, avoid_unit=args.to.unit)
    pinger = _Pinger(client, args)
    start = time.monotonic()
    try:
        print("PING %s from %s, %d bytes" % (args.to, own_address(client), args.size),
              flush=True)
        if args.deadline is not None:
            _until_deadline(pinger, args, start)
        else:
            _count(pinger, args, start)
    except KeyboardInterrupt:
        pass
    finally:
        client.dispose()
    return pinger.summary(time.monotonic() - start)


def _count(pinger: _Pinger, args: argparse.Namespace, start: float) -> None:
    """-c N (or until Ctrl-C): N pings, then the last answers until all came
    or --timeout passed."""
    seq = 0
    while args.count is None or seq < args.count:
        seq += 1
        pinger.send(seq)
        if args.count is None or seq < args.count:
            pinger.take(start + seq * args.interval)
    until = time.monotonic() + args.timeout
    while not pinger.all_answered() and time.monotonic() < until:
        pinger.take(min(until, time.monotonic() + 0.05))


def _until_deadline(pinger: _Pinger, args: argparse.Namespace, start: float) -> None:
    """-w S: a ping every interval until S seconds passed, or (with -c N)
    until N of them were answered, as the system ping does."""
    end = start + args.deadline
    enough = math.inf if args.count is None else args.count
    seq = 0
    while time.monotonic() < end and len(pinger.rtts) < enough:
        seq += 1
        pinger.send(seq)
        pinger.take(min(end, start + seq * args.interval), enough)
