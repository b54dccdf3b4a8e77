"""``smartbus monitor``: a live view of the bus from a router's monitoring
endpoint (smartbus.monitor, ``smartbus server --monitor``): who is
connected, per-client rates (from one refresh to the next), queue depths.
On a terminal it refreshes in place; piped, it prints plain blocks of
lines, one per refresh."""

import argparse
import json
import shutil
import sys
import time
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

from smartbus.cli.options import EXIT_ERROR, CliError, UsageError, number, seconds
from smartbus.monitor import DEFAULT_HOST, DEFAULT_PORT, parse_address

NAME = "monitor"
_CLEAR = "\x1b[H\x1b[2J"           # cursor home, clear the screen
_COLUMNS = ("CLIENT", "KIND", "PEER", "IN/S", "OUT/S", "KB IN/S", "KB OUT/S", "QUEUED",
            "STATE", "INFO")
_ROW = "%-11s %-4s %-21s %8s %8s %8s %8s %10s %-9s %s"

Rates = Dict[Tuple[Any, ...], Tuple[float, Dict[str, Any]]]
HELP = "watch the bus live (needs a router with --monitor)"
DESCRIPTION = ("Show who is connected to a router, with per-client rates and queue depths, "
               "from its monitoring endpoint (smartbus server --monitor).  Refreshes in place "
               "on a terminal; plain lines when piped.")
EXAMPLE = "smartbus monitor 127.0.0.1:%d -i 2" % DEFAULT_PORT


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", nargs="?", default="%s:%d" % (DEFAULT_HOST, DEFAULT_PORT),
                   metavar="ADDRESS", help="the endpoint: HOST:PORT, PORT or a URL "
                   "(default %s:%d)" % (DEFAULT_HOST, DEFAULT_PORT))
    p.add_argument("-i", "--interval", type=seconds, default=1.0,
                   help="seconds between refreshes (default 1)")
    p.add_argument("-n", "--count", type=number(1, 2**31 - 1, "--count"),
                   help="stop after this many refreshes (default: until Ctrl-C)")
    p.add_argument("--timeout", type=seconds, default=5.0,
                   help="seconds to wait for the endpoint (default 5)")


def endpoint_url(address: str) -> str:
    """The JSON URL of the endpoint that ``address`` names."""
    if address.startswith(("http://", "https://")):
        return address
    try:
        host, port = parse_address(address)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return "http://%s:%d/json" % ("[%s]" % host if ":" in host else host, port)


def fetch(url: str, timeout: float) -> Dict[str, Any]:
    """The endpoint's report; CliError when it cannot be read."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            doc: Dict[str, Any] = json.loads(answer.read())
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CliError("cannot read the monitor at %s: %s" % (url, reason)) from None
    if not isinstance(doc, dict) or "connections" not in doc:
        raise CliError("%s does not answer as a smartbus monitor" % url)
    return doc


def _key(conn: Dict[str, Any]) -> Tuple[Any, ...]:
    return (conn["kind"], conn["peer"], conn["registered"], conn["unit"], conn["client"])


def _per_second(now: Dict[str, Any], before: Optional[Dict[str, Any]], key: str,
                elapsed: float, kib: bool = False) -> str:
    """The rate of counter ``key`` since ``before`` (packets, or KiB)."""
    if before is None or elapsed <= 0:
        return "-"
    value = (now[key] - before[key]) / elapsed
    return "%.1f" % (value / 1024) if kib else "%.0f" % value


def render(doc: Dict[str, Any], previous: Rates, now: float) -> List[str]:
    """The lines of one refresh; ``previous`` (each connection's last
    counters and when they were read) is updated for the next one."""
    server, totals = doc["server"], doc["totals"]
    listeners = ", ".join(x for x in ("tcp %s" % server["tcp"] if server["tcp"] else "",
                                      "ipc %s" % server["ipc"] if server["ipc"] else "") if x)
    lines = ["smartbus router unit %d (%s), %s, up %s"
             % (server["unit_id"], server["version"], listeners, _duration(server["uptime"])),
             "clients %d, connections %d; routed %d packets (%d bytes); dropped %d (no route), "
             "%d (unregistered); refused %d; stalled %d"
             % (totals["clients"], totals["connections"], totals["routed_msgs"],
                totals["routed_bytes"], totals["dropped_no_route"],
                totals["dropped_unregistered"], totals["refused"],
                totals["stalled_disconnects"]),
             "", _ROW % _COLUMNS]
    seen: Rates = {}
    for c in doc["connections"]:
        key = _key(c)
        then, before = previous.get(key, (now, None))
        elapsed = now - then
        who = "%d:%d:%d" % (c["unit"], c["client"], c["type"]) if c["registered"] else "(new)"
        state = "paused" if c["paused"] else "congested" if c["congested"] else "ok"
        lines.append(_ROW % (who, c["kind"], c["peer"] or "-",
                             _per_second(c, before, "msgs_in", elapsed),
                             _per_second(c, before, "msgs_out", elapsed),
                             _per_second(c, before, "bytes_in", elapsed, kib=True),
                             _per_second(c, before, "bytes_out", elapsed, kib=True),
                             c["queued_bytes"], state, c["info"]))
        seen[key] = (now, c)
    previous.clear()
    previous.update(seen)
    return lines


def _duration(s: float) -> str:
    s = int(s)
    return "%dd%02dh%02dm" % (s // 86400, s % 86400 // 3600, s % 3600 // 60) if s >= 86400 else \
        "%dh%02dm%02ds" % (s // 3600, s % 3600 // 60, s % 60)


def run(args: argparse.Namespace) -> int:
    """Refreshes until Ctrl-C or --count; exit code 1 when the last read failed."""
    url = endpoint_url(args.address)
    tty = sys.stdout.isatty()
    previous: Rates = {}
    doc: Optional[Dict[str, Any]] = fetch(url, args.timeout)   # a first failure ends it
    shown = 0
    try:
        while True:
            if doc is not None:
                _show(render(doc, previous, time.monotonic()), tty)
            shown += 1
            if args.count is not None and shown >= args.count:
                return 0 if doc is not None else EXIT_ERROR
            time.sleep(args.interval)
            try:
                doc = fetch(url, args.timeout)
            except CliError as exc:                  # later failures: told, then retried
                print("%s; retrying" % exc, file=sys.stderr, flush=True)
                previous.clear()
                doc = None
    except KeyboardInterrupt:
        return 0


def _show(lines: List[str], tty: bool) -> None:
    if tty:
        width = shutil.get_terminal_size().columns
        sys.stdout.write(_CLEAR + "\n".join(line[:width] for line in lines) + "\n")
    else:
        sys.stdout.write("--- %s\n%s\n" % (time.strftime("%Y-%m-%d %H:%M:%S"), "\n".join(lines)))
    sys.stdout.flush()
