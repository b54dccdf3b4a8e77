"""``smartbus server``: the bundled router, with the options and behaviour
of ``python -m smartbus.server`` (which builds and runs them)."""

import argparse
from typing import Any, List

from smartbus import server

NAME = "server"


def add_parser(subparsers: Any, parents: List[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(NAME, parents=parents, help="run a local SmartBus server (router)",
                              description="Run a local SmartBus server (router) until Ctrl-C "
                                          "or SIGTERM.")
    server.add_server_options(p)
    p.set_defaults(command=NAME, run=lambda args: run(p, args))


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    code: int = server.serve(parser, args)
    return code
