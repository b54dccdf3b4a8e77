"""``smartbus demo``: ``python -m smartbus.demo``, a SmartBus in one process."""

import argparse

from smartbus import demo

NAME = "demo"
HELP = "show a SmartBus at work, in one process"
DESCRIPTION = (demo.__doc__ or "").split("\n\n", 1)[-1].strip()
EXAMPLE = "smartbus demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    code: int = demo.main()
    return code
