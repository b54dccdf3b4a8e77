"""ClientAPI: what smartbus.net.Client and smartbus.ipc.Client share over
the binding's NativeClient: the documented flow and notify methods, the
identity properties, construction and disposal, waiting for the
registration, and the default event handlers."""

from __future__ import annotations

import threading
from concurrent.futures import Executor
from typing import Any, Optional, Tuple, TypeVar, Union

from smartbus import _native, flows
from smartbus._checks import text_or_none
from smartbus.head import Head
from smartbus.utils import LoggerMixin
from smartbus.version import __version__

_Self = TypeVar("_Self", bound="ClientAPI")
#: a project or flow id, a notification title: text (sent in CP936) or bytes
IdText = Union[str, bytes]


class ClientAPI(_native.NativeClient, LoggerMixin):
    """Documented methods and handlers common to smartbus.net.Client and
    smartbus.ipc.Client.  Override the ``on_*`` handlers in a subclass; they
    run in the client's ``event_executor`` (by default one SDK thread:
    one at a time, in arrival order, never on the caller's thread).

    Batch delivery (an extension of the old API): a subclass that defines
    ``on_data_batch(self, batch)`` gets received data as lists of
    ``(head, data)`` tuples in arrival order, one call per burst (at most
    256 messages), instead of ``on_data`` calls; see :meth:`on_data`."""

    _own_sink: Optional[_native.EventSink] = None   # the sink made for this client alone
    #: the access point's unit of the last successful registration (None before)
    _registered_unit: Optional[int] = None
    #: notified when the client registers or is closed (wait_connected)
    _state_changed: Optional[threading.Condition] = None
    #: a registration event has been handled (on_connect ran)
    _connect_handled = False
    _activated = False
    _client_id: int
    _client_type: int
    _user: Optional[str]
    _password: Optional[str]
    _info: Optional[str]

    @classmethod
    def create(cls: type[_Self], *args: Any, **kwargs: Any) -> _Self:
        """Creates a client (same arguments as the constructor)."""
        return cls(*args, **kwargs)

    def _open_client(self, sink: Optional[_native.EventSink], kind: int, unit_id: int,
                     client_id: int, client_type: int, user: Any, password: Any, info: Any,
                     event_executor: Optional[Executor], **address: Any) -> None:
        """Creates the client in the SDK (not connecting yet) on ``sink``, or
        on an event sink of its own if ``sink`` is None; ``address``: the
        server's (_open's master_ip... or ipc_path).  ``user``, ``password``
        and ``info`` are kept as the old package kept them (text_or_none);
        without ``info`` the registration carries the class and version."""
        user = text_or_none(user, "user")
        password = text_or_none(password, "password")
        info = text_or_none(info, "info")
        own_sink = None
        if sink is None:
            sink = own_sink = _native.EventSink()
        try:
            self._open(sink, kind, unit_id, client_id, client_type,
                       user=user, password=password,
                       info=info or "%s %s" % (type(self).__qualname__, __version__),
                       event_executor=event_executor, **address)
        except BaseException:
            if own_sink is not None:
                own_sink.close()
            raise
        self._own_sink = own_sink
        self._state_changed = threading.Condition()
        self._client_id = client_id
        self._client_type = client_type
        self._user = user
        self._password = password
        self._info = info

    def _forget(self) -> None:
        """Removes the client from its class's registry (subclasses)."""

    def dispose(self) -> None:
        """Closes the connection and releases the client (idempotent)."""
        self._forget()
        self._close()
        sink, self._own_sink = self._own_sink, None
        if sink is not None:
            sink.close()
        self._wake_waiters()

    close = dispose

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def activate(self) -> None:
        """Starts connecting and returns at once; the client then registers,
        and reconnects by itself after a failure or a break.  Use
        :meth:`wait_connected` to wait for the registration."""
        self._activate()
        self._activated = True

    def wait_connected(self, timeout: Optional[float] = None) -> bool:
        """Waits until the client is registered with its server (after
        :meth:`activate`): returns True once it is (at once if it is
        already), False if ``timeout`` seconds pass first (None: no limit)
        or if the client is closed before or meanwhile.

        The first time, it returns once the registration event has been
        handled: after ``on_connect`` ran (with an ``event_executor``, when
        the event's turn came there).  A registration the server refuses
        for good (a wrong password...) goes to ``on_connect_fail`` and is not
        retried: give a timeout when that can happen."""
        if timeout is not None and (isinstance(timeout, bool) or
                                    not isinstance(timeout, (int, float)) or not timeout >= 0):
            raise ValueError("timeout must be None or a number of seconds >= 0, got %r"
                             % (timeout,))
        cond = self._state_changed
        if cond is None or self.is_closed():
            return False
        if not self._activated:
            raise RuntimeError("wait_connected() before activate(): the client is not connecting")
        with cond:
            cond.wait_for(lambda: self._registered() or self.is_closed(), timeout)
        return self._registered()

    def _registered(self) -> bool:
        # registered in the SDK, and the event said so to Python (the SDK's
        # state changes first: its event may still be on its way)
        return self._connect_handled and self.is_connected()

    def _wake_waiters(self) -> None:
        cond = self._state_changed
        if cond is not None:
            with cond:
                cond.notify_all()

    def _on_registered(self, access_unit_id: int) -> None:
        # the binding's registration event (in the event executor): on_connect,
        # then wait_connected() returns
        self._registered_unit = access_unit_id
        try:
            super()._on_registered(access_unit_id)
        finally:
            self._connect_handled = True
            self._wake_waiters()

    def launch_flow(self, server_unit_id: int, process_index: int, project_id: IdText,
                    flow_id: IdText, mode: int, timeout: float,
                    params: Union[list[Any], tuple[Any, ...], None]) -> int:
        """Starts flow ``flow_id`` of project ``project_id`` in IPSC process
        ``process_index`` on unit ``server_unit_id`` (0..15) and returns the
        invoke id.  ``mode`` 0 (or 2): the result comes to on_flow_resp;
        1: no result.  ``timeout`` in seconds.  ``params``: a list of simple
        values, sent as a JSON array (CP936 text, at most 32 KiB)."""
        return self._invoke_flow(*flows.invoke_args(server_unit_id, process_index, project_id,
                                                    flow_id, mode, timeout, params))

    def notify(self, server_unit_id: int, process_index: int, project_id: Optional[IdText],
               title: IdText, mode: int, expires: float, txt: Any) -> int:
        """Sends a notification to IPSC process ``process_index`` on unit
        ``server_unit_id`` and returns its id.  ``expires`` in seconds; ``txt``
        is text (sent in CP936) or, if not text, sent as JSON."""
        return self._notify(*flows.notify_args(server_unit_id, process_index, project_id, title,
                                               mode, expires, txt))

    # ---- identity (set by _open_client) ----------------------------------------

    @property
    def client_id(self) -> int:
        """This client's id, 0..255."""
        return self._client_id

    @property
    def client_type(self) -> int:
        """This client's type."""
        return self._client_type

    @property
    def address(self) -> Optional[Tuple[int, int, int]]:
        """``(unit, client_id, client_type)``: where the bus delivers to this
        client, the first three arguments of ``send_data``/``ping`` aimed
        at it.  A NET client's unit is its process's (``initialize``; the
        documented ``unit_id`` becomes the server's once registered, as in
        the old package); an IPC client's is its server's, None before it
        registers.  An extension of the old API."""
        unit = self._bus_unit()
        return None if unit is None else (unit, self._client_id, self._client_type)

    def _bus_unit(self) -> Optional[int]:
        """The unit this client is reached at on the bus (see address)."""
        raise NotImplementedError

    @property
    def user(self) -> Optional[str]:
        """The user name given (as text), or None."""
        return self._user

    @property
    def password(self) -> Optional[str]:
        """The password given (as text), or None."""
        return self._password

    @property
    def info(self) -> Optional[str]:
        """The additional info given (as text), or None.  Without it the
        registration carries the class name and our version instead."""
        return self._info

    # ---- event handlers (override) -------------------------------------------

    def on_connect(self) -> None:
        """Registered with the server."""

    def on_connect_fail(self, error_code: int) -> None:
        """Connecting or registering failed (-20: no TCP connection; -10:
        already connected, retried; other codes: refused, not retried)."""

    def on_disconnect(self) -> None:
        """The connection was lost (the client reconnects by itself)."""

    def on_data(self, head: Head, data: bytes) -> None:
        """Data arrived: ``head`` a :class:`smartbus.head.Head`, ``data`` bytes.

        Not called when the class defines ``on_data_batch(self, batch)``:
        that handler gets the messages a burst brought (a list of up to 256
        ``(head, data)`` tuples, in arrival order; other events never
        overtake them), one call per burst, which costs far less than a
        call per message.  With an ``event_executor``, each batch is one
        task.  An exception it raises is logged; the next batch still comes."""

    def on_flow_ack(self, head: Optional[Head], project_id: str, invoke_id: int,
                    status_code: int, msg: str) -> None:
        """A flow started (status 1) or could not (error code; -25 = no ack
        in time, with ``head`` None)."""

    def on_flow_resp(self, head: Optional[Head], project_id: str, invoke_id: int,
                     params: list[Any]) -> None:
        """A flow returned: ``params`` is the list it returned."""

    def on_flow_timeout(self, head: Optional[Head], project_id: str, invoke_id: int) -> None:
        """No flow result within the timeout (``head`` is None)."""

    def on_flow_error(self, head: Optional[Head], project_id: str, invoke_id: int,
                      error_code: int) -> None:
        """The flow failed (the IPSC reported ``error_code``)."""

    def on_global_connect_state_changed(self, unit_id: int, client_id: int, client_type: int,
                                        access_unit_id: int, status_code: int,
                                        info: str) -> None:
        """A client on the bus connected (1), disconnected (0) or is
        already connected (2)."""
