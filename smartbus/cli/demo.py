"""``smartbus demo``: ``python -m smartbus.demo``, a SmartBus in one process."""

import argparse
from typing import Any, List

from smartbus import demo

NAME = "demo"


def add_parser(subparsers: Any, parents: List[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(NAME, parents=parents, help="show a SmartBus at work, in one process",
                              description=(demo.__doc__ or "").split("\n\n", 1)[-1].strip())
    p.set_defaults(command=NAME, run=run)


def run(args: argparse.Namespace) -> int:
    code: int = demo.main()
    return code
