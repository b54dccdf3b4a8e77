"""asyncio clients: :class:`NetClient` and :class:`IpcClient`, over the same
SDK connections as ``smartbus.net.Client`` and ``smartbus.ipc.Client``
(same constructor arguments, same errors), with awaitable calls instead of
handlers::

    import asyncio
    from smartbus import aio, net

    async def main():
        net.Client.initialize(20)            # once per process: this process's unit
        async with aio.NetClient(1, 11, "127.0.0.1", 8089) as c:
            await c.connect(timeout=5)       # registered, or TimeoutError / SmartBusError
            c.send_data(1, 3, 21, 1, 11, b"hello")      # never blocks
            print(await c.launch_flow(0, 1, "proj1", "add", 0, 10, [1, 2]))
            async for head, data in c.messages():
                print(head.src_unit_id, data)

    asyncio.run(main())

How events reach the loop: the SDK calls the client's handlers on its
callback thread, in bursts.  The received messages of a burst are
appended to the client's inbox (a lock and a deque) under one lock (the
connections define ``on_data_batch``); the first event after the loop last
drained the inbox schedules one ``loop.call_soon_threadsafe``, and the rest
of the burst rides on it: one loop wake-up per burst, no polling.

Bounded memory: at most ``max_buffered`` messages / ``max_buffered_bytes``
bytes wait in the inbox (and as much again in the batch ``messages()`` is
handing out).  When the inbox is full the callback thread waits for
``messages()`` to take it: the SDK's sink then fills, its I/O thread stops
reading the socket and TCP back-pressure reaches the senders.  Nothing is
dropped while the loop runs.  The NET clients of a process share one
callback thread: a NET client whose messages are not consumed holds up the
events of the process's other NET clients (IPC clients have their own).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from typing import Any, Callable, Deque, Dict, List, Optional, Protocol, Set, Tuple, TypeVar, cast

from smartbus import _native, flows, ipc, net
from smartbus._checks import check_int
from smartbus.errors import (FlowError, FlowTimeout, SmartBusError, SMARTBUS_ERR_CONNECTED,
                             SMARTBUS_ERR_ESTABLI_CONNECT, SMARTBUS_ERR_TIMEOUT)
from smartbus.head import Head
from smartbus.version import __version__

__all__ = ["NetClient", "IpcClient", "FlowError", "FlowTimeout", "Message"]

#: what ``messages()`` yields: the head and the payload of one data message
Message = Tuple[Head, bytes]
#: an event for the loop: a method of the client and its arguments
_Event = Tuple[Callable[..., None], Tuple[Any, ...]]

#: default bounds of the inbox of received messages not yet taken by messages()
DEFAULT_MAX_BUFFERED = 10000
DEFAULT_MAX_BUFFERED_BYTES = 16 * 1024 * 1024
#: connect() failures after which the SDK keeps trying (link.c): no TCP
#: connection yet, or "already connected" (a previous session not yet gone)
_RETRIED_CONNECT_FAILURES = frozenset((SMARTBUS_ERR_ESTABLI_CONNECT, SMARTBUS_ERR_CONNECTED))
#: launch_flow's own deadline beyond the flow's timeout: the SDK always
#: answers by then (a result timeout at ``timeout``, a mode-1 ack timeout
#: within 5 s, flows.c); this only ends a call whose answer cannot be
#: delivered (the inbox is full and messages() is not consumed)
_FLOW_DELIVERY_SLACK_S = 10.0
#: how often a callback thread waiting for room checks that the loop still exists
_LOOP_CHECK_S = 1.0

_log = logging.getLogger("smartbus.aio")
_Client = TypeVar("_Client", bound="_AioClient")


# ---- the sync layer, as this module uses it --------------------------------------------
# Typed views of what it calls: the sync modules are not all annotated, and
# through these names mypy --strict checks every call made here.

class _SyncClient(Protocol):
    """What this module calls of a smartbus.net.Client / smartbus.ipc.Client."""

    @property
    def client_id(self) -> int: ...
    @property
    def client_type(self) -> int: ...
    @property
    def unit_id(self) -> Optional[int]: ...
    def is_connected(self) -> bool: ...
    def activate(self) -> None: ...
    def send_data(self, cmd: int, cmd_type: int, dst_unit_id: int, dst_client_id: int,
                  dst_client_type: int, data: Any) -> None: ...
    def notify(self, server_unit_id: int, process_index: int, project_id: Any, title: Any,
               mode: int, expires: float, txt: Any) -> int: ...
    def launch_flow(self, server_unit_id: int, process_index: int, project_id: Any,
                    flow_id: Any, mode: int, timeout: float, params: Any) -> int: ...
    def dispose(self) -> None: ...


_sdk_error: Callable[[int], SmartBusError] = SmartBusError
_check_int: Callable[[object, str, int], int] = check_int
_decode_text: Callable[[bytes], str] = flows.decode_text
_NO_RESULT_MODE: int = _native.FLOW_MODE_NO_RESULT


def _closed() -> RuntimeError:
    return RuntimeError("the client is closed")


class _Inbox:
    """The hand-over from the SDK's callback thread to the event loop:
    received messages (bounded) and other events (flow answers, connects:
    few), and at most one wake-up of the loop scheduled at a time.  The
    ``put_*`` methods run on the callback thread, the rest on the loop."""

    def __init__(self, max_messages: int, max_bytes: int,
                 on_wakeup: Callable[[Deque[_Event], bool], None]) -> None:
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)    # notified when messages are taken
        self._messages: Deque[Message] = collections.deque()
        self._bytes = 0
        self._events: Deque[_Event] = collections.deque()
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._on_wakeup = on_wakeup
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        # the wake-up scheduled and not yet run: set by the first put after
        # the loop drained, cleared when it runs (the one-per-burst flag)
        self._wakeup: Optional[asyncio.Handle] = None
        self._closed = False
        self.full = False          # a callback thread waits for room

    # ---- the callback thread ------------------------------------------------------

    def put_messages(self, batch: List[Message]) -> None:
        """Appends received messages in order (one lock for the batch);
        waits while the inbox is full."""
        with self._lock:
            for message in batch:
                size = len(message[1])
                if len(self._messages) >= self._max_messages or \
                        (self._messages and self._bytes + size > self._max_bytes):
                    if self._wakeup is None:     # the loop must take what is there
                        self._schedule_wakeup()
                    self._wait_for_room(size)
                if self._closed:
                    return
                self._messages.append(message)
                self._bytes += size
            if self._wakeup is None and self._messages:
                self._schedule_wakeup()

    def put_event(self, fn: Callable[..., None], *args: Any) -> None:
        """Appends ``fn(*args)``, to be run on the loop."""
        with self._lock:
            if self._closed:
                return
            self._events.append((fn, args))
            if self._wakeup is None:
                self._schedule_wakeup()

    def _wait_for_room(self, size: int) -> None:
        # the lock is held; waiting releases it (and the GIL)
        self.full = True
        while not self._closed and (len(self._messages) >= self._max_messages or (
                self._messages and self._bytes + size > self._max_bytes)):
            if not self._room.wait(_LOOP_CHECK_S) and self._loop is not None \
                    and self._loop.is_closed():
                self._abandon()
        self.full = False

    def _schedule_wakeup(self) -> None:
        # the lock is held: close() cannot run between the check and the call
        loop = self._loop
        if loop is None:               # not bound yet: nothing awaits these events
            return
        try:
            self._wakeup = loop.call_soon_threadsafe(self._run_wakeup)
        except RuntimeError:           # the loop was closed before the client
            self._abandon()

    def _abandon(self) -> None:
        # the loop is gone and will never drain the inbox: say what is lost
        _log.warning("smartbus.aio: the event loop was closed before the client; %d "
                     "messages and %d events dropped, later ones are dropped too "
                     "(close the client before its loop)", len(self._messages), len(self._events))
        self._close_locked()

    # ---- the loop ----------------------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Binds the inbox to ``loop`` (the first time) or checks it is the same."""
        with self._lock:
            if self._loop is None:
                self._loop = loop
            elif self._loop is not loop:
                raise RuntimeError("this client belongs to another event loop")

    def _run_wakeup(self) -> None:
        with self._lock:
            self._wakeup = None
            events = self._events
            if events:
                self._events = collections.deque()
            has_messages = bool(self._messages)
        self._on_wakeup(events, has_messages)

    def take_messages(self) -> Optional[Deque[Message]]:
        """Every message waiting, or None."""
        with self._lock:
            if not self._messages:
                return None
            taken = self._messages
            self._messages = collections.deque()
            self._bytes = 0
            self._room.notify()
        return taken

    def counts(self) -> Tuple[int, int]:
        """Messages waiting, and their bytes."""
        with self._lock:
            return len(self._messages), self._bytes

    def close(self) -> None:
        """Drops what waits, cancels the scheduled wake-up, releases a
        waiting callback thread; nothing is scheduled on the loop after this."""
        with self._lock:
            wakeup = self._wakeup
            self._close_locked()
        if wakeup is not None:
            wakeup.cancel()

    def _close_locked(self) -> None:
        self._closed = True
        self._wakeup = None
        self._messages.clear()
        self._events.clear()
        self._bytes = 0
        self._room.notify_all()


class _Connection:
    """Handlers of the SDK connection under an aio client (mixed into
    subclasses of smartbus.net.Client / smartbus.ipc.Client): each hands
    its event to the client's inbox, on the SDK's callback thread."""

    def __init__(self, owner: _AioClient, *args: Any, **kwargs: Any) -> None:
        self._owner = owner
        self._inbox = owner._inbox
        super().__init__(*args, **kwargs)

    def on_data_batch(self, batch: List[Message]) -> None:
        # one call per burst (the binding's batch delivery): the burst goes
        # into the inbox under one lock
        self._inbox.put_messages(batch)

    def on_connect(self) -> None:
        self._inbox.put_event(self._owner._registered)

    def on_connect_fail(self, error_code: int) -> None:
        self._inbox.put_event(self._owner._connect_failed, error_code)

    def on_flow_ack(self, head: Optional[Head], project_id: str, invoke_id: int,
                    status_code: int, msg: str) -> None:
        self._inbox.put_event(self._owner._flow_acked, invoke_id, status_code, msg)

    def on_flow_resp(self, head: Optional[Head], project_id: str, invoke_id: int,
                     params: List[Any]) -> None:
        self._inbox.put_event(self._owner._flow_settled, invoke_id, flows.FLOW_OK, params)

    def on_flow_timeout(self, head: Optional[Head], project_id: str, invoke_id: int) -> None:
        self._inbox.put_event(self._owner._flow_settled, invoke_id, SMARTBUS_ERR_TIMEOUT, None)

    def on_flow_error(self, head: Optional[Head], project_id: str, invoke_id: int,
                      error_code: int) -> None:
        self._inbox.put_event(self._owner._flow_settled, invoke_id, error_code, None)


class _NetConnection(_Connection, net.Client):
    pass


class _IpcConnection(_Connection, ipc.Client):
    pass


class _PendingFlow:
    """A launch_flow call waiting for its answer."""

    __slots__ = ("future", "project_id", "invoke_id", "no_result", "detail")

    def __init__(self, future: asyncio.Future[List[Any]], project_id: str, invoke_id: int,
                 no_result: bool) -> None:
        self.future = future
        self.project_id = project_id
        self.invoke_id = invoke_id
        self.no_result = no_result
        self.detail: Optional[str] = None      # what a failed ack said

    def settle(self, code: int, values: Optional[List[Any]]) -> None:
        if self.future.done():
            return
        if code == flows.FLOW_OK:
            self.future.set_result(values if values is not None else [])
        elif code == SMARTBUS_ERR_TIMEOUT:
            self.future.set_exception(FlowTimeout(self.project_id, self.invoke_id, self.detail))
        else:
            self.future.set_exception(FlowError(code, self.project_id, self.invoke_id,
                                                self.detail))


class _AioClient:
    """What NetClient and IpcClient share: the awaitable API over one SDK
    connection.  Use it from the event loop it was first used on."""

    _sync: _SyncClient          # the SDK connection, set by the subclass's constructor

    def __init__(self, max_buffered: int, max_buffered_bytes: int) -> None:
        self._inbox = _Inbox(_check_int(max_buffered, "max_buffered", 1),
                             _check_int(max_buffered_bytes, "max_buffered_bytes", 1),
                             self._wakeup)
        self._ready: Deque[Message] = collections.deque()     # taken, not yet yielded
        self._message_waiters: Set[asyncio.Future[None]] = set()
        self._connect_waiters: Set[asyncio.Future[None]] = set()
        self._flows: Dict[int, _PendingFlow] = {}
        self._last_connect_failure: Optional[int] = None
        self._closing = False
        # set by close(): the release's end, and the thread that runs it
        self._release: Optional[Tuple[asyncio.Future[None], threading.Thread]] = None

    def _default_info(self) -> str:
        return "%s %s" % (type(self).__qualname__, __version__)

    # ---- identity and state ------------------------------------------------------------

    @property
    def client_id(self) -> int:
        """This client's id, 0..255."""
        return self._sync.client_id

    @property
    def client_type(self) -> int:
        """This client's type."""
        return self._sync.client_type

    @property
    def unit_id(self) -> Optional[int]:
        """NET: this process's unit; IPC: the server's, once registered (None before)."""
        return self._sync.unit_id

    def is_connected(self) -> bool:
        """True while registered with the server."""
        return self._sync.is_connected()

    def is_closed(self) -> bool:
        """True once close() has begun."""
        return self._closing

    @property
    def buffered(self) -> Tuple[int, int]:
        """Received messages waiting for messages(), and their bytes."""
        return self._inbox.counts()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, bound to this client at its first use; raises
        RuntimeError once the client is closed, or on another loop."""
        if self._closing:
            raise _closed()
        loop = asyncio.get_running_loop()
        self._inbox.bind(loop)
        return loop

    # ---- connecting -------------------------------------------------------------------

    async def connect(self, timeout: Optional[float] = 10.0) -> None:
        """Connects and waits until the client is registered.  Raises
        :class:`TimeoutError` after ``timeout`` seconds (None: no limit; the
        error names the last failure, and the client goes on trying until
        closed), or :class:`~smartbus.errors.SmartBusError` at once if the
        server refuses the registration.  Once registered, the client
        reconnects by itself."""
        loop = self._running_loop()
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
            raise ValueError("timeout must be a number of seconds >= 0 or None, got %r"
                             % (timeout,))
        if self._sync.is_connected():
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._connect_waiters.add(waiter)
        timer = None if timeout is None else \
            loop.call_later(timeout, self._connect_timed_out, waiter, timeout)
        try:
            self._sync.activate()
            await waiter
        finally:
            self._connect_waiters.discard(waiter)
            if timer is not None:
                timer.cancel()

    def _connect_timed_out(self, waiter: asyncio.Future[None], timeout: float) -> None:
        if waiter.done():
            return
        code = self._last_connect_failure
        exc = TimeoutError("%s %d not registered within %g s%s" % (
            type(self).__name__, self.client_id, timeout,
            "" if code is None else "; last failure: %s" % _sdk_error(code)))
        if code is not None:
            exc.__cause__ = _sdk_error(code)
        waiter.set_exception(exc)

    def _registered(self) -> None:
        self._last_connect_failure = None
        for waiter in self._connect_waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _connect_failed(self, code: int) -> None:
        self._last_connect_failure = code
        if code in _RETRIED_CONNECT_FAILURES:
            return
        for waiter in self._connect_waiters:
            if not waiter.done():
                waiter.set_exception(_sdk_error(code))

    # ---- sending -----------------------------------------------------------------------

    def send_data(self, cmd: int, cmd_type: int, dst_unit_id: int, dst_client_id: int,
                  dst_client_type: int, data: Any) -> None:
        """Queues ``data`` (bytes-like, or None) for one client on the bus and
        returns at once, as the sync client's send_data (same arguments,
        same SmartBusError codes: -2 not registered, -7 send queue full)."""
        if self._closing:
            raise _closed()
        self._sync.send_data(cmd, cmd_type, dst_unit_id, dst_client_id, dst_client_type, data)

    def notify(self, server_unit_id: int, process_index: int, project_id: Any, title: Any,
               mode: int, expires: float, txt: Any) -> int:
        """Sends a notification and returns its id (as the sync client's notify)."""
        if self._closing:
            raise _closed()
        return self._sync.notify(server_unit_id, process_index, project_id, title, mode,
                                 expires, txt)

    # ---- flows -------------------------------------------------------------------------

    async def launch_flow(self, server_unit_id: int, process_index: int, project_id: str,
                          flow_id: str, mode: int, timeout: float,
                          params: Optional[List[Any]]) -> List[Any]:
        """Starts a flow (arguments as the sync client's launch_flow) and
        returns the list it returned.  Raises
        :class:`~smartbus.errors.FlowTimeout` when no result came within
        ``timeout`` seconds, :class:`~smartbus.errors.FlowError` when the
        flow could not start or failed (``code``, ``detail``).  Mode 1 (no
        result): returns ``[]`` once the flow started."""
        loop = self._running_loop()
        invoke_id = self._sync.launch_flow(server_unit_id, process_index, project_id, flow_id,
                                           mode, timeout, params)
        future: asyncio.Future[List[Any]] = loop.create_future()
        # the answer cannot overtake this: it is handled by a later loop callback
        pending = self._flows[invoke_id] = _PendingFlow(
            future, project_id if isinstance(project_id, str) else _decode_text(bytes(project_id)),
            invoke_id, int(mode) == _NO_RESULT_MODE)
        guard = loop.call_later(float(timeout) + _FLOW_DELIVERY_SLACK_S, self._flow_undelivered,
                                pending)
        try:
            return await future
        finally:
            guard.cancel()
            self._flows.pop(invoke_id, None)

    def _flow_acked(self, invoke_id: int, code: int, msg: str) -> None:
        pending = self._flows.get(invoke_id)
        if pending is None:
            return
        if code != flows.FLOW_OK:
            pending.detail = msg or ("not acknowledged" if code == SMARTBUS_ERR_TIMEOUT else None)
        # with a result to come, a failed ack is followed by the result event
        if pending.no_result:
            pending.settle(code, None)

    def _flow_settled(self, invoke_id: int, code: int, values: Optional[List[Any]]) -> None:
        pending = self._flows.get(invoke_id)
        if pending is not None:
            pending.settle(code, values)

    def _flow_undelivered(self, pending: _PendingFlow) -> None:
        pending.detail = "its answer was not delivered: %s" % (
            "the client's inbox is full, consume messages()" if self._inbox.full
            else "the event loop or the SDK's callback thread is overloaded")
        pending.settle(SMARTBUS_ERR_TIMEOUT, None)

    # ---- receiving ---------------------------------------------------------------------

    def messages(self) -> _Messages:
        """An async iterator of the data messages received, ``(head, data)``
        in arrival order; it ends when the client is closed.  Several
        iterators share one stream (each message goes to one of them)."""
        return _Messages(self)

    def _wakeup(self, events: Deque[_Event], has_messages: bool) -> None:
        # on the loop: the one callback per burst (_Inbox._run_wakeup)
        for fn, args in events:
            fn(*args)
        if has_messages:
            self._wake_message_waiters()

    def _wake_message_waiters(self) -> None:
        for waiter in self._message_waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _next_message(self) -> Message:
        while True:
            if self._ready:
                return self._ready.popleft()
            if self._closing:
                raise StopAsyncIteration
            taken = self._inbox.take_messages()
            if taken is not None:
                self._ready = taken
                continue
            waiter: asyncio.Future[None] = self._running_loop().create_future()
            self._message_waiters.add(waiter)
            try:
                await waiter
            finally:
                self._message_waiters.discard(waiter)

    # ---- closing -----------------------------------------------------------------------

    async def close(self) -> None:
        """Closes the connection (what was sent still leaves, for at most
        the SDK's linger of 2 s) and waits until it is released.  Pending
        ``connect``/``launch_flow`` calls raise RuntimeError, ``messages()``
        iterators end; received messages not yet taken are dropped.
        Idempotent.  The release runs on a thread of its own, so the loop
        never blocks; the thread ends with it."""
        loop = asyncio.get_running_loop()      # any loop: its own may be closed already
        if self._release is None:
            self._closing = True
            self._inbox.close()
            self._ready.clear()
            for waiter in list(self._connect_waiters) + [p.future for p in self._flows.values()]:
                if not waiter.done():
                    waiter.set_exception(_closed())
            self._wake_message_waiters()
            released: asyncio.Future[None] = loop.create_future()
            # not a daemon: at interpreter exit, what was sent is flushed first
            self._release = released, threading.Thread(
                target=self._dispose, args=(loop, released), name="smartbus-aio-close")
            self._release[1].start()
        released, thread = self._release
        await asyncio.shield(released)
        thread.join()                  # it has done its work: this waits for its exit only

    def _dispose(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]) -> None:
        # on the closing thread: dispose() waits for the send queue to flush
        try:
            self._sync.dispose()
        finally:
            try:
                loop.call_soon_threadsafe(_set_done, done)
            except RuntimeError:        # the loop is closed already (close() was cancelled)
                pass

    async def __aenter__(self: _Client) -> _Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Messages:
    """The async iterator of :meth:`NetClient.messages` / :meth:`IpcClient.messages`."""

    def __init__(self, client: _AioClient) -> None:
        self._client = client

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> Message:
        return await self._client._next_message()


class NetClient(_AioClient):
    """An asyncio NET client: a TCP connection to a SmartBus server.  The
    arguments are those of ``smartbus.net.Client`` (no ``event_executor``:
    events go to the loop), and the process's unit is set the same way,
    once: ``smartbus.net.Client.initialize(unit_id)``.  Keyword-only:
    ``max_buffered`` / ``max_buffered_bytes`` bound the inbox of messages
    received and not yet taken by :meth:`messages`."""

    def __init__(self, client_id: int, client_type: int, master_ip: str, master_port: int,
                 slave_ip: Optional[str] = None, slave_port: Optional[int] = None,
                 user: Optional[str] = None, password: Optional[str] = None,
                 info: Optional[str] = None, *, max_buffered: int = DEFAULT_MAX_BUFFERED,
                 max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES) -> None:
        super().__init__(max_buffered, max_buffered_bytes)
        self._sync = cast(_SyncClient, _NetConnection(
            self, client_id, client_type, master_ip, master_port, slave_ip, slave_port, user,
            password, info or self._default_info()))


class IpcClient(_AioClient):
    """An asyncio IPC client: the Unix socket to the SmartBus server on this
    host, one per process (it is the process's ``smartbus.ipc.Client``
    singleton while it is open).  The arguments are those of
    ``smartbus.ipc.Client`` (no ``event_executor``), plus ``max_buffered``
    and ``max_buffered_bytes`` as for :class:`NetClient`."""

    def __init__(self, client_id: int, client_type: int, user: Optional[str] = None,
                 password: Optional[str] = None, info: Optional[str] = None, lib_path: str = "",
                 ipc_path: Optional[str] = None, *, max_buffered: int = DEFAULT_MAX_BUFFERED,
                 max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES) -> None:
        super().__init__(max_buffered, max_buffered_bytes)
        self._sync = cast(_SyncClient, _IpcConnection(
            self, client_id, client_type, user, password, info or self._default_info(), lib_path,
            ipc_path=ipc_path))
