"""The ``smartbus`` command (also ``python -m smartbus``): one subcommand
per module of this package, each with ``NAME``, ``HELP``, ``DESCRIPTION``,
``EXAMPLE``, ``add_arguments(parser)`` and ``run(args) -> exit code``;
what they share is in ``options``.

    smartbus server --port 8089 --monitor          # a router, watched
    smartbus listen --client 5                     # print what arrives
    smartbus send --to 47:5:3 hello                # one packet
    smartbus ping --to 47:5:3 -c 3                 # round trips
    smartbus flow --process 1 proj1 add 1 2        # launch a flow
    smartbus monitor                               # a live view of the bus

Errors are one line on stderr and a non-zero exit code (options.EXIT_*),
never a traceback; see docs/cli.md.
"""

import logging
import os
import sys
from typing import List, Optional

from smartbus.cli import demo, flow, listen, monitor, notify, ping, send, server
from smartbus.cli.options import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, CliError, Parser
from smartbus.errors import SmartBusError
from smartbus.version import __version__

__all__ = ["main", "build_parser"]

#: the subcommands, in the order --help lists them
SUBCOMMANDS = (server, send, listen, ping, flow, notify, monitor, demo)
_EXIT_BROKEN_PIPE = 141            # as if killed by SIGPIPE, like other tools in a pipe


def build_parser() -> Parser:
    """The parser of the whole command line."""
    parser = Parser(prog="smartbus", description="Tools for SmartBus: a local server, sending, "
                    "listening, pings, flows and a live view of the bus.")
    parser.add_argument("--version", action="version", version="smartbus %s" % __version__)
    common = Parser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true",
                        help="show the library's log messages on stderr")
    subparsers = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    for module in SUBCOMMANDS:
        sub = subparsers.add_parser(module.NAME, parents=[common], help=module.HELP,
                                    description=module.DESCRIPTION,
                                    epilog="example: " + module.EXAMPLE)
        module.add_arguments(sub)
        sub.set_defaults(command=module.NAME, run=module.run, parser=sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command line ``argv`` (default: sys.argv[1:]); the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    prog = "smartbus " + args.command
    logger = logging.getLogger("smartbus")
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format=prog + ": %(message)s")
    else:
        logger.addHandler(logging.NullHandler())   # the tool says what matters itself
    try:
        code: int = args.run(args)
        return code
    except CliError as exc:
        return _fail(prog, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (e.g. `smartbus listen | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _EXIT_BROKEN_PIPE
    except (SmartBusError, OSError, ValueError, TypeError, TimeoutError) as exc:
        return _fail(prog, str(exc), EXIT_ERROR)
    except Exception as exc:                        # a bug: still one line
        return _fail(prog, "unexpected error: %s: %s" % (type(exc).__name__, exc), EXIT_ERROR)


def _fail(prog: str, message: str, code: int) -> int:
    print("%s: %s" % (prog, message), file=sys.stderr, flush=True)
    return code
