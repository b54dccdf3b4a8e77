"""``smartbus notify``: sends a notification to an IPSC process (or a
smartbus.ipsc.FlowServer); the text is an argument or stdin."""

import argparse
import sys

from smartbus.cli.options import (CliError, UsageError, add_connection_options, add_ipsc_options,
                                  connect, drain, number, seconds)
from smartbus.errors import SmartBusError

NAME = "notify"
HELP = "send a notification to an IPSC process"
DESCRIPTION = ("Send notification TITLE with TEXT (else stdin) to IPSC process --process of "
               "server unit --server-unit.")
EXAMPLE = "smartbus notify --process 1 --project proj1 alarm 'disk full'"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("title", metavar="TITLE", help="the notification's title")
    p.add_argument("text", nargs="?", metavar="TEXT",
                   help="its text (default: stdin, without its last newline)")
    p.add_argument("--project", default="", help="project id (default none)")
    add_ipsc_options(p)
    p.add_argument("--mode", type=number(0, 255, "--mode"), default=0,
                   help="notification mode (default 0)")
    p.add_argument("--expires", type=seconds, default=60.0,
                   help="seconds the notification stays valid (default 60)")
    add_connection_options(p)


def run(args: argparse.Namespace) -> int:
    if args.text is not None:
        text = args.text
    else:
        text = sys.stdin.read()
        text = text[:-1] if text.endswith("\n") else text     # as $(...) would

    if not text:
        raise UsageError("the notification's text is empty")
    client = connect(args, NAME)
    try:
        try:
            client.notify(args.server_unit, args.process, args.project, args.title, args.mode,
                          args.expires, text)
        except (SmartBusError, TypeError, ValueError) as exc:
            raise CliError("cannot send the notification: %s" % exc) from None
        drain(client, args.timeout)
    finally:
        client.dispose()
    return 0
