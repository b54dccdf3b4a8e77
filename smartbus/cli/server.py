"""``smartbus server``: the bundled router, with the options and behaviour
of ``python -m smartbus.server`` (which builds and runs them)."""

import argparse

from smartbus import server

NAME = "server"
HELP = "run a local SmartBus server (router)"
DESCRIPTION = "Run a local SmartBus server (router) until Ctrl-C or SIGTERM."
EXAMPLE = "smartbus server --port 8089 --monitor 127.0.0.1:8090"

add_arguments = server.add_server_options


def run(args: argparse.Namespace) -> int:
    return server.serve(args.parser, args)
