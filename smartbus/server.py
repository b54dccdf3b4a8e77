"""The bundled SmartBus server (router), so the bus runs on one machine with
no IPSC installed.

In Python::

    with smartbus.server.Server(host="127.0.0.1", port=0, unit_id=0) as srv:
        print(srv.port)            # the real port when 0 was asked

From a shell::

    python -m smartbus.server --host 127.0.0.1 --port 8089 --unit-id 0
    smartbus server --port 8089 --monitor 127.0.0.1:8090      # the same, watched

The router runs on its own thread with the GIL released.  It accepts NET
clients over TCP and IPC clients over a Unix socket, registers them (checking
credentials when configured), answers heartbeats, routes every packet by its
destination, and tells clients when others connect and disconnect.  Rules
are in docs/router.md; its optional monitoring endpoint (JSON and
Prometheus text over HTTP) is smartbus.monitor.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import stat
import sys
import threading
from types import FrameType
from typing import Any, Dict, Optional, Sequence, Tuple

from smartbus import _native
from smartbus._checks import check_int, ipc_path_in_effect, seconds_to_ms, span
from smartbus.monitor import DEFAULT_HOST, DEFAULT_PORT, MonitorEndpoint, parse_address

__all__ = ["Server", "main", "add_server_options", "serve", "DEFAULT_IPC_PATH", "PASSWORD_ENV",
           "raise_open_files_limit"]

#: where IPC clients look for the server unless told otherwise
DEFAULT_IPC_PATH = _native.IPC_DEFAULT_PATH
#: the environment variable ``python -m smartbus.server`` takes the password from
PASSWORD_ENV = "SMARTBUS_PASSWORD"
_UNITS = span(_native.SERVER_UNIT_IDS)          # the unit ids a server may have
# the router's defaults, in the units of the Python arguments
_MAX_OUT = _native.ROUTER_DEFAULT_MAX_OUT_BYTES
_STALL_S = _native.ROUTER_DEFAULT_STALL_TIMEOUT_MS / 1000
_REGISTRATION_S = _native.ROUTER_DEFAULT_REGISTRATION_TIMEOUT_MS / 1000
_MAX_CONNECTIONS = _native.ROUTER_DEFAULT_MAX_CONNECTIONS
_HEARTBEAT_ANSWER_S = _native.ROUTER_DEFAULT_HEARTBEAT_ANSWER_INTERVAL_MS / 1000


class Server:
    """A SmartBus router on a background thread.

    ``port=0`` picks a free port (read it from ``.port``).  ``ipc_path``: the
    Unix socket for IPC clients (None: no IPC listener; a stale socket file
    is replaced, any other file is an error).  ``user``/``password``: when
    set, registrations must carry them (a password needs a user: ValueError
    otherwise).  ``max_out_bytes`` bounds each connection's outgoing queue
    and the size of a packet (16 MiB; 0 for the default); a peer whose queue
    reached it and is not below half of it ``stall_timeout`` seconds later
    is disconnected.  A connection that has not registered
    ``registration_timeout`` seconds after it connected is closed; beyond
    ``max_connections`` connections a newcomer is closed at once.  A
    connection's heartbeats are answered at most once per
    ``heartbeat_answer_interval`` seconds (clients keep a link whose last
    received byte is under 14 s old, so 5 s keeps idle links up while the
    router writes a fifth of the answers).  The
    password is kept by the router only: it is in no attribute, repr or log.
    ``monitor``: ``(host, port)`` of an HTTP monitoring endpoint
    (smartbus.monitor; needs prometheus_client), None for none; its real
    address is then ``monitor.address``.
    """

    _thread: Optional[threading.Thread]     # serving (start() to stop())
    monitor: Optional[MonitorEndpoint]

    def __init__(self, host: str = "127.0.0.1", port: int = 0, unit_id: int = 0,
                 user: Optional[str] = None, password: Optional[str] = None,
                 ipc_path: Optional[str] = None, max_out_bytes: int = _MAX_OUT,
                 stall_timeout: float = _STALL_S, registration_timeout: float = _REGISTRATION_S,
                 max_connections: int = _MAX_CONNECTIONS,
                 monitor: Optional[Tuple[str, int]] = None,
                 heartbeat_answer_interval: float = _HEARTBEAT_ANSWER_S) -> None:
        if not isinstance(unit_id, int) or unit_id not in _native.SERVER_UNIT_IDS:
            raise ValueError("unit_id must be in %s, got %r" % (_UNITS, unit_id))
        if not isinstance(port, int) or not -1 <= port <= 65535:
            raise ValueError("port must be in 0..65535, got %r" % (port,))
        max_out_bytes = check_int(max_out_bytes, "max_out_bytes", 0, 2**63 - 1)
        if max_out_bytes and max_out_bytes < _native.ROUTER_MIN_OUT_BYTES:
            raise ValueError("max_out_bytes must be at least %d (0 for the default), got %d"
                             % (_native.ROUTER_MIN_OUT_BYTES, max_out_bytes))
        stall_ms = seconds_to_ms(stall_timeout, "stall_timeout")
        registration_ms = seconds_to_ms(registration_timeout, "registration_timeout")
        answer_ms = seconds_to_ms(heartbeat_answer_interval, "heartbeat_answer_interval")
        if not stall_ms or not registration_ms or not answer_ms:
            raise ValueError("stall_timeout, registration_timeout and heartbeat_answer_interval "
                             "must be more than 0 s")
        max_connections = check_int(max_connections, "max_connections", 1)
        self._router = _native.Router(host, port, unit_id, user, password, ipc_path,
                                      max_out_bytes, stall_ms, registration_ms, max_connections,
                                      answer_ms)
        self.host = host
        self.port = self._router.port
        self.unit_id = unit_id
        self.ipc_path = ipc_path
        self._thread = None
        self.monitor = None
        if monitor is not None:
            try:
                self.monitor = MonitorEndpoint(self, *monitor)
            except BaseException:
                self._router.close()
                raise

    def start(self) -> Server:
        """Starts serving on a background thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._router.run, name="smartbus-router",
                                            daemon=True)
            self._thread.start()
            if self.monitor is not None:
                self.monitor.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stops serving and closes every connection (idempotent)."""
        if self.monitor is not None:
            self.monitor.close()           # first: no request is left using the router
        self._router.stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("the router thread did not stop within %s s" % timeout)
            self._thread = None
        self._router.close()

    close = stop

    def stats(self) -> dict[str, int]:
        """Router counters: registered clients, routed/dropped messages..."""
        return self._router.stats()

    def snapshot(self, timeout: float = 1.0) -> Dict[str, Any]:
        """``stats()`` and every connection (identity, peer address,
        counters, queues), taken together by the router's loop (dict:
        ``stats``, ``connections``); TimeoutError if it does not answer."""
        return self._router.snapshot(timeout)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return "<smartbus.server.Server unit %d on %s:%d%s>" % (
            self.unit_id, self.host, self.port,
            ", ipc %s" % self.ipc_path if self.ipc_path else "")


def raise_open_files_limit() -> Tuple[int, int]:
    """Raises this process's soft limit of open files to its hard limit (a
    router holds one descriptor per connection); returns (old, new) soft
    limits.  ``python -m smartbus.server`` calls it at start; an application
    that embeds Server decides for itself."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):        # e.g. an unlimited hard limit above the kernel's
        return soft, soft
    return soft, hard


def _read_password_file(path: str) -> str:
    """The password in the file ``path``: its first line (without the line
    end).  OSError or ValueError with a message that never shows the file's
    contents."""
    with open(path, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        raw = f.read(4096)
    line = raw.split(b"\n", 1)[0].rstrip(b"\r")
    if not line:
        raise ValueError("the password file %s is empty" % path)
    try:
        password = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the password file %s is not UTF-8 text" % path) from None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        print("smartbus.server: warning: the password file %s is readable by other users "
              "(chmod 600 it)" % path, file=sys.stderr)
    return password


def _password(ap: argparse.ArgumentParser,
              args: argparse.Namespace) -> Tuple[Optional[str], Optional[str]]:
    """(password, where it came from) for the command: --password-file,
    --password (with a warning), else $SMARTBUS_PASSWORD; (None, None)
    without one."""
    if args.password_file is not None:
        try:
            return _read_password_file(args.password_file), "--password-file"
        except OSError as exc:
            ap.exit(1, "smartbus.server: cannot read the password file %s: %s\n"
                    % (args.password_file, exc.strerror or exc))
        except ValueError as exc:
            ap.exit(1, "smartbus.server: %s\n" % exc)
    if args.password is not None:
        print("smartbus.server: warning: --password is visible to other users of this machine "
              "(process list, /proc); use --password-file or $%s" % PASSWORD_ENV,
              file=sys.stderr)
        return args.password, "--password"
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV], "$" + PASSWORD_ENV
    return None, None


_EPILOG = ("Credentials: with --user, registrations must carry that user name and the "
           "password (from --password-file or --password, else $%s; none: an empty "
           "one).  A password without --user is refused: registrations carry both, and a "
           "password alone would refuse every client." % PASSWORD_ENV)


def add_server_options(ap: argparse.ArgumentParser) -> None:
    """Adds the router's options to the argparse parser ``ap`` (this
    module's command line and ``smartbus server``); ``serve`` runs them."""
    ap.add_argument("--host", default="127.0.0.1", help="TCP address (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8089, help="TCP port, 0 = any free (default 8089)")
    ap.add_argument("--unit-id", type=int, default=0, help="this server's unit id, " + _UNITS)
    ap.add_argument("--user", help="require this user name in registrations")
    secret = ap.add_mutually_exclusive_group()
    secret.add_argument("--password-file", metavar="PATH",
                        help="require the password on the first line of PATH")
    secret.add_argument("--password",
                        help="require this password (visible to other users in the process "
                             "list: prefer --password-file or $%s)" % PASSWORD_ENV)
    default_ipc = ipc_path_in_effect()
    ap.add_argument("--ipc-path", default=default_ipc,
                    help="Unix socket for IPC clients (default: $%s, else %s; now %s)"
                         % (_native.IPC_PATH_ENV, DEFAULT_IPC_PATH, default_ipc))
    ap.add_argument("--no-ipc", action="store_true", help="no IPC (Unix socket) listener")
    ap.add_argument("--registration-timeout", type=float, default=_REGISTRATION_S,
                    metavar="SECONDS", help="close connections not registered this long after "
                    "they connected (default %g)" % _REGISTRATION_S)
    ap.add_argument("--max-connections", type=int, default=_MAX_CONNECTIONS, metavar="N",
                    help="close newcomers at once beyond N connections (default %d)"
                         % _MAX_CONNECTIONS)
    ap.add_argument("--max-out-bytes", type=int, default=_MAX_OUT, metavar="N",
                    help="bound of each connection's queue, and the largest packet "
                         "(default %d)" % _MAX_OUT)
    ap.add_argument("--stall-timeout", type=float, default=_STALL_S, metavar="SECONDS",
                    help="disconnect a peer whose queue reached the bound and is not below "
                         "half of it this long after (default %g)" % _STALL_S)
    ap.add_argument("--heartbeat-answer-interval", type=float, default=_HEARTBEAT_ANSWER_S,
                    metavar="SECONDS",
                    help="answer a connection's heartbeats at most once per this interval "
                         "(default %g; clients drop a link silent for 14 s)" % _HEARTBEAT_ANSWER_S)
    ap.add_argument("--monitor", nargs="?", const="%s:%d" % (DEFAULT_HOST, DEFAULT_PORT),
                    type=_monitor_address, metavar="HOST:PORT",
                    help="serve JSON at / and Prometheus text at /metrics over HTTP (alone: "
                         "%s:%d; a port alone: on %s; needs prometheus_client)"
                         % (DEFAULT_HOST, DEFAULT_PORT, DEFAULT_HOST))
    if ap.epilog is None:
        ap.epilog = _EPILOG


def _monitor_address(text: str) -> Tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m smartbus.server``: runs the router until SIGINT/SIGTERM."""
    ap = argparse.ArgumentParser(prog="python -m smartbus.server",
                                 description="Run a local SmartBus server (router).")
    add_server_options(ap)
    return serve(ap, ap.parse_args(argv))


def serve(ap: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Runs the router configured by ``args`` (parsed by ``ap``, which
    add_server_options filled) until SIGINT/SIGTERM; the exit code."""
    if args.unit_id not in _native.SERVER_UNIT_IDS:
        ap.error("--unit-id must be in " + _UNITS)
    if not 0 <= args.port <= 65535:
        ap.error("--port must be in 0..65535")
    password, source = _password(ap, args)
    if password and not args.user:
        ap.error("a password (%s) needs --user: registrations carry both, and a password "
                 "alone would refuse every client" % source)
    raise_open_files_limit()
    try:
        server = Server(args.host, args.port, args.unit_id, args.user, password,
                        None if args.no_ipc else args.ipc_path, args.max_out_bytes,
                        args.stall_timeout, args.registration_timeout, args.max_connections,
                        monitor=args.monitor,
                        heartbeat_answer_interval=args.heartbeat_answer_interval)
    except ValueError as exc:
        ap.error(str(exc))
    except (OSError, ImportError) as exc:
        print("smartbus.server: %s" % exc, file=sys.stderr)
        return 1
    done = threading.Event()

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server.start()
    ipc = "" if args.no_ipc else ", ipc %s" % args.ipc_path
    if server.monitor is not None:
        ipc += ", monitor %s" % server.monitor.url
    print("smartbus router unit %d listening on %s:%d%s" % (args.unit_id, args.host, server.port,
                                                            ipc), flush=True)
    while not done.wait(0.5):
        pass
    server.stop()
    print("smartbus router stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
