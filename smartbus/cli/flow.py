"""``smartbus flow``: launches a flow on an IPSC process (or a
smartbus.ipsc.FlowServer), prints its ack on stderr and its result (the
list the flow returned, as JSON) on stdout.  Exit code 0 on a result (or,
in mode 1, on the ack), 1 when the flow failed, 3 when no answer came in
time."""

import argparse
import json
import logging
import queue
import sys
import time
from typing import Any, Dict, List

from smartbus.cli.options import (EXIT_ERROR, EXIT_TIMEOUT, CliError, UsageError,
                                  add_connection_options, add_ipsc_options, connect, number)
from smartbus.errors import SMARTBUS_ERR_TIMEOUT, SmartBusError, error_code_message
from smartbus.flows import FLOW_OK

NAME = "flow"
HELP = "launch a flow and print its result"
DESCRIPTION = ("Launch flow FLOW of project PROJECT on IPSC process --process of server unit "
               "--server-unit; print the ack on stderr and the result (JSON) on stdout.  Each "
               "PARAM is read as JSON if it is JSON, else as a string.")
EXAMPLE = "smartbus flow --process 1 proj1 add 1 2   (prints [3])"
NO_RESULT_MODE = 1                 # launch_flow mode whose flow sends no result
_GRACE = 5.0                       # seconds past --timeout before the tool stops waiting


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("project", metavar="PROJECT", help="project id")
    p.add_argument("flow", metavar="FLOW", help="flow id")
    p.add_argument("params", nargs="*", metavar="PARAM", help="the flow's parameters")
    p.add_argument("--params", dest="params_json", metavar="JSON_ARRAY",
                   help="all the parameters as one JSON array (instead of PARAMs)")
    add_ipsc_options(p)
    p.add_argument("--mode", type=number(0, 2, "--mode"), default=0,
                   help="0: wait for the result (default), 1: no result, 2: as 0")
    add_connection_options(p)


def parse_params(args: argparse.Namespace) -> List[Any]:
    """The flow's parameters from PARAMs or --params."""
    if args.params_json is not None:
        if args.params:
            raise UsageError("give PARAMs or --params, not both")
        try:
            values = json.loads(args.params_json)
        except ValueError as exc:
            raise UsageError("--params is not JSON: %s" % exc) from None
        if not isinstance(values, list):
            raise UsageError("--params must be a JSON array")
        return values
    return [_param(text) for text in args.params]


def _param(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class _FailureText(logging.Handler):
    """The text of a failed flow: the client library logs it on the
    "smartbus" logger (flows.flow_event_handler) rather than passing it
    to on_flow_error."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.texts: Dict[Any, str] = {}    # invoke id -> text

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args                 # (project, invoke id, code, text)
        if isinstance(args, tuple) and len(args) == 4 and isinstance(args[3], str):
            self.texts[args[1]] = args[3]


def run(args: argparse.Namespace) -> int:
    params = parse_params(args)
    failure = _FailureText()
    logger = logging.getLogger("smartbus")
    logger.addHandler(failure)
    client = connect(args, NAME)
    try:
        try:
            invoke = client.launch_flow(args.server_unit, args.process, args.project, args.flow,
                                        args.mode, args.timeout, params)
        except (SmartBusError, TypeError, ValueError) as exc:
            raise CliError("cannot launch the flow: %s" % exc) from None
        return _outcome(client.events, invoke, args, failure)
    finally:
        client.dispose()
        logger.removeHandler(failure)


def _outcome(events: "queue.Queue[Any]", invoke: int, args: argparse.Namespace,
             failure: _FailureText) -> int:
    """Waits for the ack and the result of ``invoke`` and reports them."""
    name = "%s/%s" % (args.project, args.flow)
    deadline = time.monotonic() + args.timeout + _GRACE
    ack_text = ""
    while True:
        try:
            event = events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise CliError("flow %s: no answer within %g s" % (name, args.timeout),
                           EXIT_TIMEOUT) from None
        kind = event[0]
        if kind not in ("flow_ack", "flow_resp", "flow_timeout", "flow_error") or \
                event[1] != invoke:
            continue
        if kind == "flow_ack":
            _, _, code, ack_text = event
            what = ack_text or error_code_message.get(code, "")
            print("ack: invoke %d of %s: %d %s" % (invoke, name, code, what), file=sys.stderr,
                  flush=True)
            if code == FLOW_OK and args.mode == NO_RESULT_MODE:
                return 0
        elif kind == "flow_resp":
            print(json.dumps(event[2], ensure_ascii=False), flush=True)
            return 0
        elif kind == "flow_timeout":
            raise CliError("flow %s: no result within %g s" % (name, args.timeout),
                           EXIT_TIMEOUT)
        else:
            code = event[2]
            why = failure.texts.get(invoke) or ack_text
            raise CliError("flow %s failed: %s%s" % (name, SmartBusError(code),
                                                      " (%s)" % why if why else ""),
                           EXIT_TIMEOUT if code == SMARTBUS_ERR_TIMEOUT else EXIT_ERROR)
