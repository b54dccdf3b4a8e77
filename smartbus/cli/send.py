"""``smartbus send``: data packets to one destination: the payload given as
an argument, stdin as one payload, or one packet per line of a file or of
stdin; ``--count`` repeats them and ``--rate`` paces them (load), with the
rate live on stderr."""

import argparse
import sys
import time
from typing import List

from smartbus.cli.options import (CliError, StatusLine, Tool, UsageError, add_connection_options,
                                  add_destination_option, connect, drain, number, rate)
from smartbus.errors import SMARTBUS_ERR_BUFF_FULL, SmartBusError

NAME = "send"
DEFAULT_CMD, DEFAULT_CMD_TYPE = 1, 3       # cmd type 3: "user" (NET.md §4)
_FULL_BACKOFF = 0.0005                     # seconds to wait when the send queue is full
_BURST = 1024                              # sends between two looks at the clock
MAX_RATE = 1e9                             # packets per second --rate may ask for
HELP = "send data packets"
DESCRIPTION = ("Send data packets to one destination: PAYLOAD, else stdin as one payload, or "
               "one packet per line with --lines.")
EXAMPLE = "smartbus send --to 47:5:3 hello; seq 100 | smartbus send --to 47:5:3 --lines"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_destination_option(p, "the destination")
    p.add_argument("payload", nargs="?", help="the payload (UTF-8; hex with --hex)")
    p.add_argument("--lines", nargs="?", const="-", metavar="FILE",
                   help="one packet per line of FILE (default: stdin), without the newline")
    p.add_argument("--hex", action="store_true", help="payloads are written in hex")
    p.add_argument("--cmd", type=number(0, 255, "--cmd"), default=DEFAULT_CMD,
                   help="head cmd (default %d)" % DEFAULT_CMD)
    p.add_argument("--cmd-type", type=number(1, 255, "--cmd-type"), default=DEFAULT_CMD_TYPE,
                   help="head cmd type (default %d, user)" % DEFAULT_CMD_TYPE)
    p.add_argument("-n", "--count", type=number(1, 2**31 - 1, "--count"), default=1,
                   help="send the payloads this many times (default 1)")
    p.add_argument("--rate", type=float, metavar="MSGS_PER_S",
                   help="at most this many packets per second (default: as fast as possible)")
    add_connection_options(p)


def payloads(args: argparse.Namespace) -> List[bytes]:
    """The payloads the options give, in order."""
    if args.payload is not None and args.lines is not None:
        raise UsageError("give a PAYLOAD or --lines, not both")
    if args.payload is not None:
        raw = [args.payload.encode()]
    elif args.lines is not None:
        if args.lines == "-":
            raw = _stdin().splitlines()
        else:
            with open(args.lines, "rb") as f:
                raw = f.read().splitlines()
    else:
        raw = [_stdin()]
    if not args.hex:
        return raw
    try:
        return [bytes.fromhex(r.decode("ascii")) for r in raw]
    except (UnicodeDecodeError, ValueError):
        raise UsageError("--hex: the payload is not hexadecimal") from None


def _stdin() -> bytes:
    if sys.stdin.isatty():
        print("reading from stdin (end with Ctrl-D)", file=sys.stderr, flush=True)
    return sys.stdin.buffer.read()


def run(args: argparse.Namespace) -> int:
    if args.rate is not None and not 0 < args.rate <= MAX_RATE:
        raise UsageError("--rate must be above 0 and at most %g packets/s, got %s"
                         % (MAX_RATE, args.rate))
    datas = payloads(args)
    total = len(datas) * args.count
    client = connect(args, NAME, avoid_unit=args.to.unit)
    start = time.monotonic()
    try:
        sent = _send_all(client, args, datas, total)
        drain(client, args.timeout)                  # written to the server: then counted
    finally:
        client.dispose()
    elapsed = time.monotonic() - start
    if total > 1:
        size = sum(len(d) for d in datas) * args.count
        StatusLine().done("sent %d packets (%d bytes) to %s in %.3f s, %s"
                          % (sent, size, args.to, elapsed, rate(sent, elapsed)))
    return 0


def _send_all(client: Tool, args: argparse.Namespace, datas: List[bytes], total: int) -> int:
    """Sends ``total`` packets (cycling through ``datas``), paced by
    --rate, showing progress; the number sent."""
    dst, n = args.to, len(datas)
    status = StatusLine()
    start = time.monotonic()
    sent = 0
    while sent < total:
        end = min(total, sent + _BURST)
        if args.rate is not None:               # no further ahead than the rate allows
            elapsed = time.monotonic() - start
            due = int(elapsed * args.rate) + 1
            if due <= sent:
                time.sleep(min((sent + 1) / args.rate - elapsed, 0.05))
                continue
            end = min(end, due)
        while sent < end:
            try:
                client.send_data(args.cmd, args.cmd_type, dst.unit, dst.client, dst.type,
                                 datas[sent % n])
            except SmartBusError as exc:
                if exc.code != SMARTBUS_ERR_BUFF_FULL:
                    raise CliError("packet %d of %d refused: %s" % (sent + 1, total, exc)) \
                        from None
                time.sleep(_FULL_BACKOFF)        # the queue is full: let it drain
                continue
            sent += 1
        if total > 1:
            elapsed = time.monotonic() - start
            status.update("sent %d/%d, %s" % (sent, total, rate(sent, elapsed)))
    return sent
