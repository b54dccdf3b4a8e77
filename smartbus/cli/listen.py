"""``smartbus listen``: every packet the tool's client receives, one line
each on stdout (head fields and payload as text or hex), or one JSON
object per line with ``--json``."""

import argparse
import json
import queue
import sys
import time
from typing import Any, Dict, Optional

from smartbus.cli.options import (EXIT_TIMEOUT, CliError, add_connection_options, address,
                                  connect, number, own_address, seconds, server_name)

NAME = "listen"
HELP = "print the packets that arrive"
DESCRIPTION = ("Connect and print every packet the tool's client receives, one line each: "
               "time, source > destination, cmd and cmd type, length, payload (text when it "
               "is printable UTF-8, else hex).")
EXAMPLE = "smartbus listen --client 5 --json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="one JSON object per packet (src, dst, cmd, cmd_type, length, "
                        "text or null, hex)")
    p.add_argument("--hex", action="store_true", help="always show the payload in hex")
    p.add_argument("-n", "--count", type=number(1, 2**31 - 1, "--count"),
                   help="stop after this many packets")
    p.add_argument("--duration", type=seconds, metavar="SECONDS",
                   help="stop after this long (with --count: exit code %d if fewer came)"
                        % EXIT_TIMEOUT)
    add_connection_options(p)


def text_of(data: bytes) -> Optional[str]:
    """The payload as text when it is printable UTF-8, else None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def describe(head: Any, data: bytes, when: float, as_hex: bool) -> str:
    """One packet as a line of text."""
    src = address(head.src_unit_id, head.src_unit_client_id, head.src_unit_client_type)
    dst = address(head.dst_unit_id, head.dst_unit_client_id, head.dst_unit_client_type)
    text = None if as_hex else text_of(data)
    payload = text if text is not None else "hex " + data.hex()
    stamp = time.strftime("%H:%M:%S", time.localtime(when)) + ".%03d" % (when % 1 * 1000)
    return "%s %s > %s cmd %d type %d len %d: %s" % (stamp, src, dst, head.cmd, head.cmd_type,
                                                     len(data), payload)


def as_json(head: Any, data: bytes, when: float) -> Dict[str, Any]:
    """One packet as a JSON object."""
    return {"time": round(when, 6),
            "src": {"unit": head.src_unit_id, "client": head.src_unit_client_id,
                    "type": head.src_unit_client_type},
            "dst": {"unit": head.dst_unit_id, "client": head.dst_unit_client_id,
                    "type": head.dst_unit_client_type},
            "cmd": head.cmd, "cmd_type": head.cmd_type, "length": len(data),
            "text": text_of(data), "hex": data.hex()}


def run(args: argparse.Namespace) -> int:
    client = connect(args, NAME)
    out = sys.stdout
    try:
        print("listening as %s on %s (Ctrl-C to stop)" % (own_address(client), server_name(args)),
              file=sys.stderr, flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        got = 0
        while args.count is None or got < args.count:
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                break
            try:
                event = client.events.get(timeout=wait)
            except queue.Empty:
                continue
            while True:                    # all that is queued, then one flush
                kind = event[0]
                if kind == "data":
                    _, head, data = event
                    when = time.time()
                    line = (json.dumps(as_json(head, data, when), ensure_ascii=False)
                            if args.json else describe(head, data, when, args.hex))
                    out.write(line + "\n")
                    got += 1
                elif kind == "disconnect":
                    print("connection lost; reconnecting", file=sys.stderr, flush=True)
                elif kind == "connect":
                    print("connected again", file=sys.stderr, flush=True)
                if args.count is not None and got >= args.count:
                    break
                try:
                    event = client.events.get_nowait()
                except queue.Empty:
                    break
            out.flush()
    except KeyboardInterrupt:
        return 0
    finally:
        client.dispose()
    if args.count is not None and got < args.count:
        raise CliError("%d of %d packets in %g s" % (got, args.count, args.duration),
                       EXIT_TIMEOUT)
    return 0
