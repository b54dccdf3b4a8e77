"""What the subcommands share: exit codes and one-line errors, the parser
class, the connection options (``--host``/``--port`` or ``--ipc``, the
tool's own identity, credentials, ``--timeout``), destinations
(``--to UNIT:CLIENT:TYPE``), the tool's client (its events in a queue,
connected with the errors told in words) and a live status line on
stderr."""

import argparse
import os
import queue
import sys
import time
from typing import (IO, Any, Callable, Dict, List, NamedTuple, NoReturn, Optional, Protocol,
                    Sequence, Tuple, cast)

from smartbus import _native, errors, ipc, net
from smartbus._checks import ipc_path_in_effect, span
from smartbus.version import __version__

#: exit codes of every subcommand
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3
EXIT_INTERRUPTED = 130             # Ctrl-C, as shells report SIGINT

#: the server the tool connects to unless told otherwise
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8089
#: the tool's NET unit: the last one, or the one before when the
#: destination is at the last one (a NET client cannot send to its own unit)
DEFAULT_UNIT = _native.NET_UNIT_IDS[-1]
#: the tool's client type ("monitor", NET.md §1)
DEFAULT_TYPE = 3
#: client ids tried in turn when --client is not given (a taken one is
#: refused with -10 and the next is tried); 255 means "any" in destinations
AUTO_CLIENT_IDS = range(200, 255)
DEFAULT_TIMEOUT = 5.0
#: the server answers -20 while it cannot be reached: the client retries
_UNREACHABLE = errors.SMARTBUS_ERR_ESTABLI_CONNECT


class CliError(Exception):
    """A failure to report as one line on stderr, with an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(CliError):
    """A wrong option or argument found after parsing (exit code 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, "%s: %s (see %s --help)\n" % (self.prog, message, self.prog))


# ---- values -----------------------------------------------------------------------


def number(low: int, high: int, name: str) -> Callable[[str], int]:
    """An argparse type: an int in low..high."""
    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError("%s must be an integer, got %r" % (name, text)) \
                from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError("%s must be in %d..%d, got %d"
                                             % (name, low, high, value))
        return value
    return parse


def seconds(text: str) -> float:
    """An argparse type: a number of seconds, >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number of seconds: %r" % text) from None
    if not 0 <= value < 1e6:
        raise argparse.ArgumentTypeError("seconds must be in 0..1e6, got %s" % text)
    return value


class Destination(NamedTuple):
    """A destination on the bus; client 255 means every client of ``type``
    at ``unit``."""

    unit: int
    client: int
    type: int

    def __str__(self) -> str:
        return address(self.unit, self.client, self.type)


def address(unit: int, client: int, client_type: int) -> str:
    """``UNIT:CLIENT:TYPE``, the form --to takes and the tools print."""
    return "%d:%d:%d" % (unit, client, client_type)


def destination(text: str) -> Destination:
    """An argparse type: ``UNIT:CLIENT:TYPE`` (CLIENT ``*`` = 255: every
    client of that type at that unit)."""
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("destination must be UNIT:CLIENT:TYPE, got %r" % text)
    try:
        unit, client, client_type = (255 if p == "*" and i == 1 else int(p, 0)
                                     for i, p in enumerate(parts))
    except ValueError:
        raise argparse.ArgumentTypeError("destination must be UNIT:CLIENT:TYPE (numbers), got %r"
                                         % text) from None
    for name, value, top in (("unit", unit, _native.NET_UNIT_IDS[-1]), ("client", client, 255),
                             ("type", client_type, 255)):
        if not 0 <= value <= top:
            raise argparse.ArgumentTypeError("destination %s must be in 0..%d, got %d"
                                             % (name, top, value))
    return Destination(unit, client, client_type)


# ---- options ----------------------------------------------------------------------


def add_connection_options(p: argparse.ArgumentParser) -> None:
    """The options every client subcommand takes."""
    g = p.add_argument_group("connection (NET over TCP unless --ipc)")
    g.add_argument("--host", default=DEFAULT_HOST,
                   help="server address (default %s)" % DEFAULT_HOST)
    g.add_argument("--port", type=number(1, 65535, "--port"), default=DEFAULT_PORT,
                   help="server TCP port (default %d)" % DEFAULT_PORT)
    g.add_argument("--ipc", nargs="?", const="", metavar="PATH",
                   help="connect over the server's Unix socket instead (default path: $%s, "
                        "else %s)" % (_native.IPC_PATH_ENV, _native.IPC_DEFAULT_PATH))
    g.add_argument("--unit", type=number(_native.NET_UNIT_IDS[0], _native.NET_UNIT_IDS[-1],
                                         "--unit"),
                   help="this tool's NET unit, %s (default %d, or %d when the destination "
                        "is at %d)" % (span(_native.NET_UNIT_IDS), DEFAULT_UNIT,
                                       DEFAULT_UNIT - 1, DEFAULT_UNIT))
    g.add_argument("--client", type=number(0, 255, "--client"),
                   help="this tool's client id (default: the first free one of %s)"
                        % span(AUTO_CLIENT_IDS))
    g.add_argument("--type", type=number(0, 255, "--type"), default=DEFAULT_TYPE,
                   dest="client_type", metavar="TYPE", help="this tool's client type (default %d)" % DEFAULT_TYPE)
    g.add_argument("--user", default=os.environ.get("SMARTBUS_USER"),
                   help="user name for the server (default $SMARTBUS_USER)")
    g.add_argument("--password", default=os.environ.get("SMARTBUS_PASSWORD"),
                   help="password for the server (default $SMARTBUS_PASSWORD)")
    g.add_argument("--timeout", type=seconds, default=DEFAULT_TIMEOUT,
                   help="seconds to wait for the server and for answers (default %g)"
                        % DEFAULT_TIMEOUT)


def add_ipsc_options(p: argparse.ArgumentParser) -> None:
    """Where an IPSC process (or a FlowServer) is: flows and notifications."""
    p.add_argument("--server-unit", type=number(0, 15, "--server-unit"), default=0,
                   help="unit of the server the IPSC process runs at (default 0)")
    p.add_argument("--process", type=number(0, 255, "--process"), default=0,
                   help="IPSC process index (default 0)")


def add_destination_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--to", type=destination, required=True, metavar="UNIT:CLIENT:TYPE",
                   help="%s (CLIENT * = every client of TYPE at UNIT)" % what)


# ---- the tool's client ---------------------------------------------------------------


class ToolEvents:
    """Mixin for the tool's client: every event goes to ``self.events``
    (a queue of tuples: the handler's name without ``on_``, then its
    arguments), for the subcommand's main thread to take."""

    events: "queue.Queue[Tuple[Any, ...]]"

    def on_connect(self) -> None:
        self.events.put(("connect",))

    def on_connect_fail(self, error_code: int) -> None:
        self.events.put(("connect_fail", error_code))

    def on_disconnect(self) -> None:
        self.events.put(("disconnect",))

    def on_data(self, head: Any, data: bytes) -> None:
        self.events.put(("data", head, data))

    def on_flow_ack(self, head: Any, project_id: str, invoke_id: int, status_code: int,
                    msg: str) -> None:
        self.events.put(("flow_ack", invoke_id, status_code, msg))

    def on_flow_resp(self, head: Any, project_id: str, invoke_id: int, params: Any) -> None:
        self.events.put(("flow_resp", invoke_id, params))

    def on_flow_timeout(self, head: Any, project_id: str, invoke_id: int) -> None:
        self.events.put(("flow_timeout", invoke_id))

    def on_flow_error(self, head: Any, project_id: str, invoke_id: int, error_code: int) -> None:
        self.events.put(("flow_error", invoke_id, error_code))

    def on_global_connect_state_changed(self, *args: Any) -> None:
        pass


class NetTool(ToolEvents, net.Client):
    """The tool's NET client."""


class IpcTool(ToolEvents, ipc.Client):
    """The tool's IPC client."""


class Tool(Protocol):
    """What the subcommands use of their client (a NetTool or an IpcTool)."""

    events: "queue.Queue[Tuple[Any, ...]]"

    @property
    def address(self) -> Optional[Tuple[int, int, int]]: ...
    @property
    def client_id(self) -> int: ...
    @property
    def client_type(self) -> int: ...
    def activate(self) -> None: ...
    def dispose(self) -> None: ...
    def stats(self) -> Dict[str, int]: ...
    def send_data(self, cmd: int, cmd_type: int, dst_unit_id: int, dst_client_id: int,
                  dst_client_type: int, data: bytes) -> None: ...
    def ping(self, dst_unit_id: int, dst_client_id: int, dst_client_type: int,
             data: Optional[bytes] = None) -> None: ...
    def launch_flow(self, server_unit_id: int, process_index: int, project_id: str,
                    flow_id: str, mode: int, timeout: float, params: List[Any]) -> int: ...
    def notify(self, server_unit_id: int, process_index: int, project_id: str, title: str,
               mode: int, expires: float, txt: str) -> int: ...


def server_name(args: argparse.Namespace) -> str:
    """Where the options say the server is, for messages."""
    if args.ipc is not None:
        return str(ipc_path_in_effect(args.ipc or None))
    return "%s:%d" % (args.host, args.port)


def connect(args: argparse.Namespace, purpose: str, avoid_unit: Optional[int] = None) -> Tool:
    """The tool's client, registered with the server the options name
    (CliError otherwise, within --timeout).  ``purpose``: the subcommand,
    sent as the client's info; ``avoid_unit``: a destination unit, which a
    NET client's own unit must not be.  Without --client the first free id
    of AUTO_CLIENT_IDS is taken."""
    deadline = time.monotonic() + args.timeout
    ids: Sequence[int] = AUTO_CLIENT_IDS if args.client is None else [args.client]
    info = "smartbus %s %s (pid %d)" % (purpose, __version__, os.getpid())
    if args.ipc is not None and args.unit is not None:
        raise UsageError("--unit is for NET clients: an IPC client has its server's unit")
    for client_id in ids:
        client = _open(args, client_id, info, avoid_unit)
        # not wait_connected(): the refusal's code decides what comes next
        code = _registration(client, deadline)
        if code == 0:
            return client
        client.dispose()
        if code == errors.SMARTBUS_ERR_CONNECTED and args.client is None:
            continue                                 # taken: the next id
        if code is None or code == _UNREACHABLE:
            why = "unreachable" if code == _UNREACHABLE else "no registration answer"
            raise CliError("cannot connect to the SmartBus server at %s within %g s (%s)"
                           % (server_name(args), args.timeout, why), EXIT_TIMEOUT)
        if code == errors.SMARTBUS_ERR_CONNECTED:
            raise CliError("client id %d is taken on the server at %s: choose another --client"
                           % (client_id, server_name(args)))
        raise CliError("the server at %s refused the registration: %s"
                       % (server_name(args), errors.SmartBusError(code)))
    raise CliError("client ids %s are all taken on the server at %s: choose one with --client"
                   % (span(AUTO_CLIENT_IDS), server_name(args)))


def _open(args: argparse.Namespace, client_id: int, info: str,
          avoid_unit: Optional[int]) -> Tool:
    """A new client of the tool, connecting."""
    credentials = {"user": args.user, "password": args.password, "info": info}
    made: Tool
    try:
        if args.ipc is not None:
            made = IpcTool.create(client_id, args.client_type,
                                  ipc_path=args.ipc or None, **credentials)
        else:
            if not net.Client.is_initialized():
                unit = args.unit
                if unit is None:
                    unit = DEFAULT_UNIT - 1 if avoid_unit == DEFAULT_UNIT else DEFAULT_UNIT
                net.Client.initialize(unit)
            made = NetTool.create(client_id, args.client_type,
                                  args.host, args.port, **credentials)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    client = cast(Tool, made)
    client.events = queue.Queue()          # before activate(): the first event goes there
    client.activate()
    return client


def _registration(client: Tool, deadline: float) -> Optional[int]:
    """0 once registered, else the last failure code before the deadline
    (None: no answer at all)."""
    code = None
    while True:
        left = deadline - time.monotonic()
        try:
            event = client.events.get(timeout=max(left, 0.0)) if left > 0 else None
        except queue.Empty:
            event = None
        if event is None:
            return code
        if event[0] == "connect":
            return 0
        if event[0] == "connect_fail":
            code = int(event[1])
            if code != _UNREACHABLE:
                return code


def own_address(client: Tool) -> str:
    """The tool's address on the bus, ``UNIT:CLIENT:TYPE``."""
    where = client.address
    return address(*where) if where else address(-1, client.client_id, client.client_type)


def drain(client: Tool, timeout: float) -> None:
    """Waits until the client's send queue has been written (CliError if it
    makes no progress for ``timeout`` seconds), so that closing loses nothing."""
    last, stuck_since = -1, time.monotonic()
    while True:
        queued = client.stats()["queued_msgs"]
        if queued == 0:
            return
        now = time.monotonic()
        if queued != last:
            last, stuck_since = queued, now
        elif now - stuck_since > timeout:
            raise CliError("%d message(s) still queued: the server took none for %g s"
                           % (queued, timeout))
        time.sleep(0.005)


# ---- output -------------------------------------------------------------------------


class StatusLine:
    """A live status line on stderr: rewritten in place on a terminal,
    else printed as a plain line at most every ``interval`` seconds; the
    first update shows after one interval (short runs show none)."""

    def __init__(self, stream: Optional[IO[str]] = None, interval: float = 1.0) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._interval = interval if not self._tty else 0.2
        self._next = time.monotonic() + self._interval
        self._width = 0

    def due(self) -> bool:
        """True when an update would be shown now."""
        return time.monotonic() >= self._next

    def update(self, text: str) -> None:
        """Shows ``text`` if an update is due."""
        if self.due():
            self._show(text, final=False)
            self._next = time.monotonic() + self._interval

    def done(self, text: str) -> None:
        """Shows ``text`` as the last line."""
        self._show(text, final=True)

    def _show(self, text: str, final: bool) -> None:
        if self._tty:
            pad = " " * max(0, self._width - len(text))
            self._stream.write("\r" + text + pad + ("\n" if final else ""))
            self._width = 0 if final else len(text)
        else:
            self._stream.write(text + "\n")
        self._stream.flush()


def rate(count: float, elapsed: float) -> str:
    """``count / elapsed`` per second, for people."""
    return "%.0f/s" % (count / elapsed) if elapsed > 0 else "-"
