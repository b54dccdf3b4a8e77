# Part of smartbus._native: event delivery.  The SDK's sinks call
# _trampoline on their callback threads with batches of events; EventSink
# dispatches them to the clients' handlers (on_data directly: the hot path;
# or, for a client whose class defines on_data_batch, each run of its data
# events as one list; the rest through the client's event_executor).  At
# interpreter exit, _shutdown stops delivery and closes every client and sink.  In the child
# of os.fork(), _after_fork_in_child closes the parent's clients and sinks
# (their SDK threads stayed in the parent).

from cpython.bytes cimport PyBytes_FromStringAndSize

import atexit
import logging
import os

cdef extern from "native/gil.h" nogil:
    int sbpy_is_exiting()
    void sbpy_set_exiting()
    void sbpy_gil_hold()
    void sbpy_gil_release()
    void sbpy_gil_end(int exiting)

cdef enum:
    # how long closing a sink waits for a handler that is still running
    SINK_CLOSE_TIMEOUT_MS = 5000

_log = logging.getLogger("smartbus")
_sdk_log = logging.getLogger("smartbus.sdk")

# every sink the SDK may still call back (a sink is freed only by close())
cdef set _live_sinks = set()


cdef void _trampoline(void *arg, const smartbus_event *evs, int count) noexcept nogil:
    # SDK callback thread: the GIL is taken at the first batch of a burst and
    # kept until the sink reports that it is idle (count 0), so a busy Python
    # thread costs one switch interval per burst, not one per batch
    if count < 0:
        sbpy_gil_end(sbpy_is_exiting())
        return
    if count == 0 or sbpy_is_exiting():
        sbpy_gil_release()
        return
    sbpy_gil_hold()
    _dispatch(arg, evs, count)


cdef void _dispatch(void *arg, const smartbus_event *evs, int count) noexcept with gil:
    # the GIL is held already (sbpy_gil_hold): "with gil" only nests
    if not sbpy_is_exiting():
        (<EventSink>arg).dispatch(evs, count)


def _guarded(fn, args):
    """Runs a handler in an event executor; an exception is logged, not lost."""
    try:
        fn(*args)
    except BaseException:
        _log.exception("smartbus: exception in event handler %r", fn)


cdef inline _run(NativeClient client, fn, tuple args):
    ex = client.event_executor
    if ex is None:
        fn(*args)
    else:
        ex.submit(_guarded, fn, args)


cdef void _deliver_batch(NativeClient client, list batch) noexcept:
    # one on_data_batch call (or one executor task) for a run of data events
    try:
        _run(client, client.on_data_batch, (batch,))
    except BaseException:
        _log.exception("smartbus: exception in event handler")


cdef inline str _text(const char *s, int n, encoding):
    if s == NULL:
        return ""
    return PyBytes_FromStringAndSize(s, n).decode(encoding, "replace")


cdef class EventSink:
    """The SDK's event sink for a set of clients (one callback thread).

    Clients register themselves in ``clients`` by local client id; events for
    an id that is not there are dropped.
    """

    def __cinit__(self, global_callback=None):
        self.clients = {}
        self.global_callback = global_callback
        self._from_parent = True          # no SDK sink yet: make one
        self._sdk_sink()

    cdef smartbus_sink *_sdk_sink(self) except? NULL:
        """The SDK sink for a client being opened (NULL once closed); in the
        child of os.fork(), a new one in place of the parent's."""
        with self._lock:
            if self._from_parent:
                self.sink = smartbus_sink_new(_trampoline, <void *>self, 0)
                if self.sink == NULL:
                    raise MemoryError("cannot create the SDK event sink")
                self._from_parent = False
                _live_sinks.add(self)
            return self.sink

    cdef _register(self, int client_id, NativeClient client):
        with self._lock:
            self.clients[client_id] = client

    cdef _unregister(self, NativeClient client):
        # find and delete as one step: a client opened meanwhile may have
        # taken the id already (the callback thread only reads the dict)
        with self._lock:
            for k, v in list(self.clients.items()):
                if v is client:
                    del self.clients[k]

    cdef _forked(self):
        # in the child of os.fork(): the SDK sink's thread stayed in the
        # parent, so the sink never runs here; the SDK leaks it
        self.sink = NULL
        self._from_parent = True
        clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            (<NativeClient>client)._c = NULL
            (<NativeClient>client)._from_parent = True

    def close(self):
        """Stops the callback thread; pending events are discarded.  Clients
        still open on the sink are closed first (the SDK sink is never freed
        under a client the I/O thread still serves)."""
        cdef smartbus_sink *s
        for client in list(self.clients.values()):
            (<NativeClient>client)._close()
        with self._lock:                   # one thread frees it; pending sees NULL after
            s = self.sink
            self.sink = NULL
            self._from_parent = False      # closed for good, in a child of os.fork too
        if s == NULL:
            return
        _live_sinks.discard(self)
        with nogil:
            smartbus_sink_free(s, SINK_CLOSE_TIMEOUT_MS)

    def __dealloc__(self):
        if self.sink != NULL:
            # unreachable while the SDK can call back: the sink keeps itself
            # alive in _live_sinks until close()
            with nogil:
                smartbus_sink_free(self.sink, SINK_CLOSE_TIMEOUT_MS)
            self.sink = NULL

    @property
    def pending(self):
        """Bytes of events queued and not yet delivered."""
        with self._lock:                   # not freed meanwhile by close()
            return smartbus_sink_pending(self.sink) if self.sink != NULL else 0

    cdef void dispatch(self, const smartbus_event *evs, int count) noexcept:
        cdef int i, last_id = -1
        cdef const smartbus_event *e
        cdef NativeClient client = None
        cdef list batch = None       # data events of `client` gathered for on_data_batch
        for i in range(count):
            e = &evs[i]
            if e.type == SMARTBUS_EV_DATA:
                # the hot path: one client lookup per run of events for the same
                # client, on_data called directly (no argument tuple), or the run
                # gathered into one list for on_data_batch
                if e.client_id != last_id:
                    if batch is not None:
                        _deliver_batch(client, batch)
                        batch = None
                    client = self.clients.get(e.client_id)
                    last_id = e.client_id
                if client is None or sbpy_peek(<void **>&client._c) == NULL:  # unknown or closed
                    continue
                if client._data_batch:
                    if batch is None:
                        batch = []
                    batch.append((Head.from_raw(e.head),
                                  PyBytes_FromStringAndSize(<const char *>e.data, e.size)
                                  if e.size > 0 else b""))
                    continue
                if client.event_executor is None:
                    try:
                        client.on_data(Head.from_raw(e.head),
                                       PyBytes_FromStringAndSize(<const char *>e.data, e.size)
                                       if e.size > 0 else b"")
                    except BaseException:
                        _log.exception("smartbus: exception in event handler")
                    continue
            if batch is not None:    # arrival order: the data before this event first
                _deliver_batch(client, batch)
                batch = None
            last_id = -1             # other events may add or remove clients
            try:
                self._event(e)
            except BaseException:
                _log.exception("smartbus: exception in event handler")
        if batch is not None:
            _deliver_batch(client, batch)

    cdef _event(self, const smartbus_event *e):
        cdef NativeClient client = self.clients.get(e.client_id)
        cdef tuple gargs
        if client is None:
            return
        cdef int t = e.type
        if t == SMARTBUS_EV_DATA:
            _run(client, client.on_data, (
                Head.from_raw(e.head),
                PyBytes_FromStringAndSize(<const char *>e.data, e.size) if e.size > 0 else b""))
        elif t == SMARTBUS_EV_CONNECT:
            if e.code == 0:
                _run(client, client._on_registered, (e.unit_id,))
            else:
                _run(client, client.on_connect_fail, (e.code,))
        elif t == SMARTBUS_EV_DISCONNECT:
            _run(client, client.on_disconnect, ())
        elif t == SMARTBUS_EV_GLOBAL_CONNECT:
            # typed: Cython 3.3 loops forever inferring an untyped mixed tuple
            gargs = (e.unit_id, e.g_client_id, e.g_client_type, e.g_ap_unit_id, e.code,
                     _text(e.text, e.text_len, "utf-8"))
            if self.global_callback is not None:
                _run(client, self.global_callback, gargs)
            _run(client, client.on_global_connect_state_changed, gargs)
        elif t == SMARTBUS_EV_FLOW_ACK or t == SMARTBUS_EV_FLOW_RESULT:
            self._flow_event(client, e)
        elif t == SMARTBUS_EV_TRACE:
            msg = _text(e.text, e.text_len, "utf-8")
            if e.code:
                _sdk_log.warning("client %d: %s", e.client_id, msg)
            else:
                _sdk_log.debug("client %d: %s", e.client_id, msg)

    cdef _flow_event(self, NativeClient client, const smartbus_event *e):
        # what a flow ack or result means (decoding, which handler) is decided
        # in Python, by smartbus.flows; the binding hands it the raw fields.
        # Imported here, not at the top: smartbus.flows imports this module.
        from smartbus.flows import flow_event_handler
        head = Head.from_raw(e.head) if e.head != NULL else None
        project = <bytes>e.project_id if e.project_id != NULL else b""
        text = PyBytes_FromStringAndSize(e.text, e.text_len) if e.text != NULL else b""
        handler, args = flow_event_handler(client, e.type == SMARTBUS_EV_FLOW_RESULT, head,
                                           project, e.invoke_id, e.code, text)
        _run(client, handler, args)


def _after_fork_in_child():
    """In the child of os.fork(): the parent's clients are closed (using
    them raises RuntimeError) and their sinks never run; the SDK has closed
    their sockets here and starts a new I/O thread with the first client
    made in the child."""
    for sink in list(_live_sinks):
        (<EventSink>sink)._forked()
    _live_sinks.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _shutdown():
    """At interpreter exit: stop delivering events and release every client
    while Python is still fully alive (no callback runs after this)."""
    sbpy_set_exiting()
    for sink in list(_live_sinks):
        (<EventSink>sink).close()          # its clients first


atexit.register(_shutdown)
