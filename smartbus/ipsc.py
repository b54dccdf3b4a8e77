"""A stand-in for an IPSC flow-engine process: serve flows and notifications
from Python, so that flow-calling code can be developed and tested without
an IPSC (and flow-like requests can be served by Python code)::

    from smartbus.ipsc import FlowServer

    fs = FlowServer(process_index=1)          # ipc_path as for smartbus.ipc.Client

    @fs.flow("proj1", "add")
    def add(*params):                         # the JSON array sent by launch_flow
        return [sum(params)]                  # a list: the flow's return values

    @fs.notification(project_id="proj1")      # filters optional: project_id, title
    def got(project_id, title, mode, expires, text):
        print(title, text)

    with fs:                                  # start(); stop() on exit
        fs.wait_connected(5)
        ...         # callers: launch_flow(<router unit>, 1, "proj1", "add", mode, timeout, [1, 2])

How it attaches: an IPC connection to the local router (the ``ipc_path``
keyword, else ``$SMARTBUS_IPC_PATH``, else ``/tmp/smartbus_ipc``) as client
type 2 (IPSC) with client id ``process_index``, at the router's unit id.  A
caller therefore uses ``launch_flow(<router unit>, process_index, ...)``.
It is a connection of its own, beside any ``smartbus.ipc.Client`` of the
process; since every IPC client of a router has the router's unit id, its
``process_index`` must differ from the client ids of the other IPC clients
of that router (a duplicate is refused with -10 and retried).

What it answers (decided semantics):

* Every flow invoke (cmd 11) is acknowledged at once (flow ack, cmd 13,
  code 1, message "ok"), before the handler runs.  For modes 0 and 2 the
  list the handler returns is sent as the flow result (cmd 12): JSON text in
  CP936, at most 32 KiB.  For mode 1 the handler runs and nothing more is
  sent.
* Unknown project/flow: a single flow ack with code -23
  (SMARTBUS_ERR_DEST_NONEXIST) and message ``unknown flow 'proj/flow'``.
* Parameters that are not a JSON array: a single flow ack with code -1
  (SMARTBUS_ERR_ARGUMENT) and a message saying why.
* A handler that raises, returns something other than a list or tuple, or
  returns values that cannot be sent as JSON: after the prompt ack 1, a
  second flow ack with code -99 (SMARTBUS_ERR_OTHER) and message
  ``ExcType: text``, and no result.  Our clients turn it into
  ``on_flow_error(head, project_id, invoke_id, -99)`` and log the message;
  a vendor client ignores a second ack and reports a timeout.
* A handler slower than the caller's timeout: the caller sees
  ``on_flow_timeout``; the late result is ignored by the caller.
* While stopping, new invokes get a single ack -99 ``flow server is
  stopping``.

Handlers (flows and notifications) run in a worker pool
(``concurrent.futures.ThreadPoolExecutor`` of ``max_workers`` threads), so a
slow flow blocks neither the acks nor other flows.  Notifications (cmd 15)
go to every handler whose filters match, with ``project_id`` and ``title``
as str (decoded from CP936), ``mode`` (int), ``expires`` in seconds (float)
and ``text`` (str, CP936).  A notification handler's exception is logged.

``start(timeout=None)`` connects in the background (with a timeout: waits
for the registration, else TimeoutError); ``wait_connected(timeout)`` and
``connected`` tell whether it is registered.  ``stop(timeout=5.0)`` refuses
new requests, waits (at most ``timeout`` seconds) for the running handlers
and for their answers to leave, then closes the connection and its event
sink; a stopped FlowServer is not started again (make a new one).
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any, Callable, Optional, TypeVar, Union

from smartbus import _native, flows
from smartbus._checks import check_int, check_ipc_path
from smartbus.errors import (SMARTBUS_ERR_ARGUMENT, SMARTBUS_ERR_DEST_NONEXIST, SMARTBUS_ERR_OTHER,
                             SmartBusError)
from smartbus.head import Head
from smartbus.utils import LoggerMixin
from smartbus.version import __version__

__all__ = ["FlowServer", "IPSC_CLIENT_TYPE"]

#: the client type of an IPSC process on the bus
IPSC_CLIENT_TYPE = _native.CLIENT_TYPE_IPSC

# the packets a flow server answers (cmd type system) and their decoders
_DECODERS = {_native.CMD_INVOKE_FLOW: _native.decode_invoke,
             _native.CMD_NOTIFY: _native.decode_notify}


#: a flow handler: ``handler(*params)`` returns the flow's values
FlowHandler = Callable[..., Union[list[Any], tuple[Any, ...]]]
#: a notification handler: ``handler(project_id, title, mode, expires, text)``
NotificationHandler = Callable[[str, str, int, float, str], Any]
_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def _describe(exc: BaseException) -> str:
    return "%s: %s" % (type(exc).__name__, exc)


class _FlowServerConnection(_native.NativeClient):
    """The IPC connection of a FlowServer; the SDK's event sink calls these
    handlers on its callback thread."""

    def __init__(self, server: FlowServer) -> None:
        self._server = server

    def on_data(self, head: Head, data: bytes) -> None:
        self._server._on_packet(head, data)

    def on_connect(self) -> None:
        self._server._on_connect(True)

    def on_connect_fail(self, error_code: int) -> None:
        self._server._on_connect_fail(error_code)

    def on_disconnect(self) -> None:
        self._server._on_connect(False)

    def on_global_connect_state_changed(self, *args: Any) -> None:
        pass

    def on_flow_ack(self, *args: Any) -> None:
        pass

    on_flow_resp = on_flow_timeout = on_flow_error = on_flow_ack


class FlowServer(LoggerMixin):
    """Serves flows and notifications as IPSC process ``process_index``
    (0..255) of the local router.  See the module documentation."""

    def __init__(self, process_index: int = 0, ipc_path: Optional[str] = None,
                 max_workers: int = 8, user: Optional[str] = None,
                 password: Optional[str] = None, info: Optional[str] = None) -> None:
        self._process_index = check_int(process_index, "process_index", 0, 255)
        self._ipc_path = check_ipc_path(ipc_path)
        self._max_workers = check_int(max_workers, "max_workers", 1, 1024)
        self._user, self._password = user, password
        self._info = info or "smartbus.ipsc.FlowServer %s" % __version__
        self._flows: dict[tuple[str, str], FlowHandler] = {}
        # (project_id or None, title or None, handler)
        self._notifications: list[tuple[Optional[str], Optional[str], NotificationHandler]] = []
        self._lock = threading.Lock()
        self._running: set[concurrent.futures.Future[Any]] = set()   # handlers not finished
        self._connection: Optional[_FlowServerConnection] = None
        self._sink: Optional[_native.EventSink] = None
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._stopping = False
        self._connected = threading.Event()

    # ---- registration of handlers ------------------------------------------

    def flow(self, project_id: str, flow_id: str) -> Callable[[_Handler], _Handler]:
        """Decorator: ``handler(*params)`` serves flow ``flow_id`` of project
        ``project_id`` and returns a list (the flow's return values)."""
        key = (flows.check_flow_id(project_id, "project_id"),
               flows.check_flow_id(flow_id, "flow_id"))

        def register(fn: _Handler) -> _Handler:
            self.add_flow(key[0], key[1], fn)
            return fn
        return register

    def add_flow(self, project_id: str, flow_id: str, handler: FlowHandler) -> None:
        """Registers (or replaces) the handler of a flow."""
        if not callable(handler):
            raise TypeError("handler must be callable")
        key = (flows.check_flow_id(project_id, "project_id"),
               flows.check_flow_id(flow_id, "flow_id"))
        with self._lock:
            self._flows[key] = handler

    def remove_flow(self, project_id: str, flow_id: str) -> None:
        """Unregisters a flow (KeyError if it was not registered)."""
        with self._lock:
            del self._flows[(project_id, flow_id)]

    def notification(self, project_id: Optional[str] = None,
                     title: Optional[str] = None) -> Callable[[_Handler], _Handler]:
        """Decorator: ``handler(project_id, title, mode, expires, text)`` gets
        the notifications that match the given filters (None: any)."""
        def register(fn: _Handler) -> _Handler:
            self.add_notification(fn, project_id, title)
            return fn
        return register

    def add_notification(self, handler: NotificationHandler, project_id: Optional[str] = None,
                         title: Optional[str] = None) -> None:
        """Registers a notification handler with optional filters."""
        if not callable(handler):
            raise TypeError("handler must be callable")
        with self._lock:
            self._notifications.append((project_id, title, handler))

    # ---- life cycle ------------------------------------------------------------

    @property
    def process_index(self) -> int:
        return self._process_index

    @property
    def connected(self) -> bool:
        """True while registered with the router."""
        connection = self._connection
        return connection is not None and connection.is_connected()

    @property
    def unit_id(self) -> Optional[int]:
        """The router's unit id (learnt at registration), or None."""
        connection = self._connection
        return None if connection is None else connection.access_unit_id

    def start(self, timeout: Optional[float] = None) -> FlowServer:
        """Connects in the background and returns self.  With ``timeout``
        (seconds), waits for the registration and raises TimeoutError if it
        does not happen in time."""
        with self._lock:
            if self._connection is None:
                if self._stopping:
                    raise RuntimeError("the flow server was stopped")
                sink = _native.EventSink()
                connection = _FlowServerConnection(self)
                try:
                    connection._open(sink, _native.KIND_IPC, 0, self._process_index,
                                     IPSC_CLIENT_TYPE, ipc_path=self._ipc_path, user=self._user,
                                     password=self._password, info=self._info)
                except BaseException:
                    sink.close()
                    raise
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self._max_workers, thread_name_prefix="smartbus-flow")
                self._sink, self._connection = sink, connection
                connection._activate()
        if timeout is not None and not self.wait_connected(timeout):
            raise TimeoutError("flow server %d: not registered with the router at %s within %s s"
                               % (self._process_index, self._ipc_path or "the default IPC path",
                                  timeout))
        return self

    def wait_connected(self, timeout: Optional[float] = 5.0) -> bool:
        """Waits until registered with the router; returns True if so."""
        return self._connected.wait(timeout)

    def stop(self, timeout: Optional[float] = 5.0) -> None:
        """Refuses new requests, waits at most ``timeout`` seconds for the
        running handlers, then closes the connection (idempotent)."""
        with self._lock:
            self._stopping = True
            running = list(self._running)
        me = threading.current_thread()
        if running and not me.name.startswith("smartbus-flow"):
            done, left = concurrent.futures.wait(running, timeout)
            if left:
                self.logger.warning("flow server %d: %d handler(s) still running after %s s",
                                    self._process_index, len(left), timeout)
        with self._lock:
            connection, sink, pool = self._connection, self._sink, self._pool
            self._connection = self._sink = self._pool = None
        if connection is not None:
            connection._close()        # the SDK flushes the last answers first (bounded linger)
        if sink is not None:
            sink.close()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self._connected.clear()

    close = stop

    def __enter__(self) -> FlowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return "<smartbus.ipsc.FlowServer process %d, %d flow(s)%s>" % (
            self._process_index, len(self._flows), ", connected" if self.connected else "")

    # ---- events (SDK callback thread) ----------------------------------------------

    def _on_connect(self, up: bool) -> None:
        if up:
            self.logger.info("flow server %d registered (unit %s)", self._process_index,
                             self.unit_id)
            self._connected.set()
        else:
            self.logger.info("flow server %d: connection lost", self._process_index)
            self._connected.clear()

    def _on_connect_fail(self, error_code: int) -> None:
        self.logger.warning("flow server %d: cannot register with the router (%d)",
                            self._process_index, error_code)

    def _on_packet(self, head: Head, data: bytes) -> None:
        if head.cmd_type != _native.CMDTYPE_SYSTEM or head.cmd not in _DECODERS:
            return                          # pings and application data: not ours
        try:
            d = _DECODERS[head.cmd](data)   # the payload, read by the SDK's codec
        except ValueError as exc:
            self.logger.warning("flow server %d: malformed packet from %d/%d/%d: %s",
                                self._process_index, head.src_unit_client_type,
                                head.src_unit_id, head.src_unit_client_id, exc)
            return
        if head.cmd == _native.CMD_INVOKE_FLOW:
            self._on_invoke(head, d)
        else:
            self._on_notify(d)

    def _reply(self, head: Head, project: bytes, invoke_id: int, result: bool, code: int,
               text: Union[str, bytes]) -> None:
        """Sends a flow ack (result False) or result to the invoker; a
        connection gone meanwhile is logged, not raised."""
        connection = self._connection
        try:
            if connection is None:
                raise RuntimeError("the flow server is stopped")
            connection._flow_reply(result, head.src_unit_id, head.src_unit_client_id,
                                   head.src_unit_client_type, project, invoke_id, code,
                                   flows.encode_message(text))
        except (SmartBusError, RuntimeError) as exc:
            self.logger.warning("flow server %d: cannot answer invoke %d of %d/%d/%d: %s",
                                self._process_index, invoke_id, head.src_unit_client_type,
                                head.src_unit_id, head.src_unit_client_id, exc)

    def _on_invoke(self, head: Head, d: dict[str, Any]) -> None:
        project_b, invoke_id, mode = d["project_id"], d["invoke_id"], d["mode"]
        project, flow = flows.decode_text(project_b), flows.decode_text(d["flow_id"])
        with self._lock:
            handler = self._flows.get((project, flow))
            stopping = self._stopping
        if stopping:
            self._reply(head, project_b, invoke_id, False, SMARTBUS_ERR_OTHER,
                        "flow server is stopping")
            return
        if handler is None:
            self._reply(head, project_b, invoke_id, False, SMARTBUS_ERR_DEST_NONEXIST,
                        "unknown flow '%s/%s'" % (project, flow))
            return
        try:
            params = flows.invoke_params(d["params"])
        except ValueError as exc:
            self._reply(head, project_b, invoke_id, False, SMARTBUS_ERR_ARGUMENT,
                        "params are not a JSON array: %s" % exc)
            return
        self._reply(head, project_b, invoke_id, False, flows.FLOW_OK, "ok")
        self._submit(self._run_flow, head, project_b, project, flow, invoke_id, mode, handler,
                     params)

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            pool = self._pool
            if pool is None:
                return
            try:
                fut = pool.submit(fn, *args)
            except RuntimeError:            # shut down meanwhile
                return
            self._running.add(fut)
        fut.add_done_callback(self._done)

    def _done(self, fut: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._running.discard(fut)

    def _run_flow(self, head: Head, project_b: bytes, project: str, flow: str, invoke_id: int,
                  mode: int, handler: FlowHandler, params: list[Any]) -> None:
        try:
            payload = flows.encode_result(mode, handler(*params))
        except BaseException as exc:
            self.logger.error("flow %s/%s (invoke %d) failed: %s", project, flow, invoke_id,
                              _describe(exc), exc_info=True)
            self._reply(head, project_b, invoke_id, False, SMARTBUS_ERR_OTHER, _describe(exc))
            if not isinstance(exc, Exception):
                raise
            return
        if payload is not None:
            self._reply(head, project_b, invoke_id, True, flows.FLOW_OK, payload)

    def _on_notify(self, d: dict[str, Any]) -> None:
        project, title = flows.decode_text(d["project_id"]), flows.decode_text(d["title"])
        with self._lock:
            if self._stopping:
                return
            handlers = [fn for p, t, fn in self._notifications
                        if (p is None or p == project) and (t is None or t == title)]
        if not handlers:
            self.logger.debug("notification %s/%s: no handler", project, title)
            return
        args = (project, title, d["mode"], d["expires"] / 1000.0, flows.decode_text(d["params"]))
        for fn in handlers:
            self._submit(self._run_notification, fn, args)

    def _run_notification(self, fn: NotificationHandler,
                          args: tuple[str, str, int, float, str]) -> None:
        try:
            fn(*args)
        except Exception:
            self.logger.exception("notification handler %r failed", fn)
