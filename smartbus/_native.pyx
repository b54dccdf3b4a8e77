# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The binding to the bundled SmartBus C SDK.

- ``ClientBase``: the hot methods of the NET and IPC clients (``send_data``,
  ``ping``, ``send_many``); arguments are converted to C types and the SDK
  call runs with the GIL released.  ``smartbus.net.Client`` and
  ``smartbus.ipc.Client`` subclass it in Python.
- ``EventSink``: receives the SDK's events on the SDK's callback thread in
  batches; the trampoline takes the GIL once per batch and runs the
  handlers (or hands them to the client's ``event_executor``).
- ``Router``: the local SmartBus server (run by ``smartbus.server``).
- ``decode_packet`` / ``encode_packet``: the wire codec, for tools and tests.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset, strlen

import atexit
import json
import logging
import time


def sdk_error_table():
    """The SDK's error codes (smartbus.h): a list of (code, name, description)."""
    cdef int n = 0
    cdef const smartbus_error_info *t = smartbus_error_table(&n)
    return [(t[i].code, t[i].name.decode("ascii"), t[i].description.decode("ascii"))
            for i in range(n)]


# smartbus.errors reads sdk_error_table() when it is imported, and may be the
# module that imports this one: sdk_error_table stays above this import
from smartbus.errors import SmartBusError, check

_log = logging.getLogger("smartbus")
_sdk_log = logging.getLogger("smartbus.sdk")

cdef extern from *:
    """
    #include <Python.h>
    static int sbpy_exiting = 0;
    static inline int sbpy_is_exiting(void) {
    #if PY_VERSION_HEX >= 0x030D0000
        return __atomic_load_n(&sbpy_exiting, __ATOMIC_ACQUIRE) || Py_IsFinalizing();
    #else
        return __atomic_load_n(&sbpy_exiting, __ATOMIC_ACQUIRE) || _Py_IsFinalizing();
    #endif
    }
    static inline void sbpy_set_exiting(void) {
        __atomic_store_n(&sbpy_exiting, 1, __ATOMIC_RELEASE);
    }
    /* The GIL held by a sink's callback thread from the first batch of a
     * burst to the sink's idle call (count 0): one acquisition per burst,
     * not per batch.  Other Python threads still get it at every switch
     * interval (the handlers run bytecode, which honours drop requests).
     * The thread state made by the first PyGILState_Ensure is kept between
     * bursts (PyEval_SaveThread / RestoreThread: no thread state created
     * and destroyed per burst) and released at the thread's last call. */
    static _Thread_local int sbpy_held = 0, sbpy_have_ts = 0;
    static _Thread_local PyGILState_STATE sbpy_gstate;
    static _Thread_local PyThreadState *sbpy_saved;
    static inline void sbpy_gil_hold(void) {
        if (sbpy_held) return;
        if (sbpy_have_ts) {
            PyEval_RestoreThread(sbpy_saved);
        } else {
            sbpy_gstate = PyGILState_Ensure();
            sbpy_have_ts = 1;
        }
        sbpy_held = 1;
    }
    static inline void sbpy_gil_release(void) {
        if (sbpy_held) {
            sbpy_held = 0;
            sbpy_saved = PyEval_SaveThread();
        }
    }
    /* the sink thread ends: free its thread state (left to the interpreter's
     * own cleanup once it is finalizing) */
    static inline void sbpy_gil_end(int exiting) {
        if (!sbpy_have_ts) return;
        if (!sbpy_held) {
            if (exiting) return;
            PyEval_RestoreThread(sbpy_saved);
        }
        sbpy_held = 0;
        sbpy_have_ts = 0;
        PyGILState_Release(sbpy_gstate);
    }
    """
    int sbpy_is_exiting() nogil
    void sbpy_set_exiting() nogil
    void sbpy_gil_hold() nogil
    void sbpy_gil_release() nogil
    void sbpy_gil_end(int exiting) nogil

cdef enum:
    # how long closing a sink waits for a handler that is still running
    SINK_CLOSE_TIMEOUT_MS = 5000
    # send_data / ping keep the GIL for payloads up to this size (a lock and
    # a memcpy take less than releasing and taking the GIL); larger payloads,
    # and any send that finds the client's lock busy, release it
    GIL_KEEP_MAX_BYTES = 16384

KIND_NET = SMARTBUS_KIND_NET
KIND_IPC = SMARTBUS_KIND_IPC
TEXT_ENCODING = "cp936"        # text sent to / received from IPSC (GBK)
MAX_PARAM_BYTES = SMARTBUS_MAX_FLOW_PARAM_SIZE


cdef object _error(int code):
    return check(code, raise_if_err=False)


# ---- Head ---------------------------------------------------------------------

cdef class Head:
    """Read-only view of a received packet head (the 20-byte SmartBus head).

    ``Head(raw)`` decodes 20 (or more) bytes; the SDK passes one with every
    event that carries a head.
    """

    def __init__(self, raw=None):
        cdef Py_buffer view
        if raw is None:
            self._reserved[0] = 0
            self._reserved[1] = 0
            return
        PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE)
        try:
            if view.len < SMARTBUS_PACKET_HEAD_SIZE:
                raise ValueError("a packet head needs 20 bytes, got %d" % view.len)
            _fill_head(self, <const unsigned char *>view.buf)
        finally:
            PyBuffer_Release(&view)

    @staticmethod
    cdef Head from_raw(const unsigned char *p):
        cdef Head h = Head.__new__(Head)
        _fill_head(h, p)
        return h

    def __repr__(self):
        return ("<smartbus.head.Head cmd=%d, cmd_type=%d, src_unit_client_type=%d, "
                "src_unit_id=%d, src_unit_client_id=%d, dst_unit_client_type=%d, "
                "dst_unit_id=%d, dst_unit_client_id=%d, packet_size=%d, data_length=%d>" % (
                    self.cmd, self.cmd_type, self.src_unit_client_type, self.src_unit_id,
                    self.src_unit_client_id, self.dst_unit_client_type, self.dst_unit_id,
                    self.dst_unit_client_id, self.packet_size, self.data_length))

    def __eq__(self, other):
        if not isinstance(other, Head):
            return NotImplemented
        return self._key() == (<Head>other)._key()

    def __hash__(self):
        return hash(self._key())

    def _key(self):
        return (self.cmd, self.cmd_type, self.src_unit_client_type, self.src_unit_id,
                self.src_unit_client_id, self.dst_unit_client_type, self.dst_unit_id,
                self.dst_unit_client_id, self.packet_size, self.data_length)

    @property
    def reserved(self):
        """The two reserved head bytes as received."""
        return PyBytes_FromStringAndSize(<const char *>self._reserved, 2)


cdef inline void _fill_head(Head h, const unsigned char *p):
    # fields as received, without validation (this is a view, not a parser)
    cdef sbw_head w
    sbw_read_head(p, &w)
    h.cmd = w.cmd
    h.cmd_type = w.cmdtype
    h.src_unit_client_type = w.src_type
    h.src_unit_id = w.src_unit
    h.src_unit_client_id = w.src_client
    h.dst_unit_client_type = w.dst_type
    h.dst_unit_id = w.dst_unit
    h.dst_unit_client_id = w.dst_client
    h._reserved[0] = w.reserved[0]
    h._reserved[1] = w.reserved[1]
    h.packet_size = w.packet_size
    h.data_length = w.datalen


# ---- events ------------------------------------------------------------------

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


cdef inline _run(ClientBase client, fn, tuple args):
    ex = client.event_executor
    if ex is None:
        fn(*args)
    else:
        ex.submit(_guarded, fn, args)


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
        self.sink = smartbus_sink_new(_trampoline, <void *>self, 0)
        if self.sink == NULL:
            raise MemoryError("cannot create the SDK event sink")
        _live_sinks.add(self)

    def close(self):
        """Stops the callback thread; pending events are discarded."""
        cdef smartbus_sink *s = self.sink
        if s == NULL:
            return
        self.sink = NULL
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
        return smartbus_sink_pending(self.sink) if self.sink != NULL else 0

    cdef void dispatch(self, const smartbus_event *evs, int count) noexcept:
        cdef int i, last_id = -1
        cdef const smartbus_event *e
        cdef ClientBase client = None
        for i in range(count):
            e = &evs[i]
            if e.type == SMARTBUS_EV_DATA:
                # the hot path: one client lookup per run of events for the same
                # client, on_data called directly (no argument tuple)
                if e.client_id != last_id:
                    client = self.clients.get(e.client_id)
                    last_id = e.client_id
                if client is None or client._c == NULL:     # unknown or closed meanwhile
                    continue
                if client.event_executor is None:
                    try:
                        client.on_data(Head.from_raw(e.head),
                                       PyBytes_FromStringAndSize(<const char *>e.data, e.size)
                                       if e.size > 0 else b"")
                    except BaseException:
                        _log.exception("smartbus: exception in event handler")
                    continue
            last_id = -1             # other events may add or remove clients
            try:
                self._event(e)
            except BaseException:
                _log.exception("smartbus: exception in event handler")

    cdef _event(self, const smartbus_event *e):
        cdef ClientBase client = self.clients.get(e.client_id)
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

    cdef _flow_event(self, ClientBase client, const smartbus_event *e):
        head = Head.from_raw(e.head) if e.head != NULL else None
        project = _text(e.project_id, strlen(e.project_id) if e.project_id != NULL else 0,
                        TEXT_ENCODING)
        text = _text(e.text, e.text_len, TEXT_ENCODING)
        if e.type == SMARTBUS_EV_FLOW_ACK:
            _run(client, client.on_flow_ack, (head, project, e.invoke_id, e.code, text))
        elif e.code == 1:
            try:
                params = json.loads(text) if text.strip() else []
            except ValueError:
                _log.error("flow %s invoke %d: result is not JSON: %r", project, e.invoke_id, text)
                _run(client, client.on_flow_error, (head, project, e.invoke_id, SMARTBUS_ERR_OTHER))
                return
            _run(client, client.on_flow_resp, (head, project, e.invoke_id, params))
        elif e.code == SMARTBUS_ERR_TIMEOUT:
            _run(client, client.on_flow_timeout, (head, project, e.invoke_id))
        else:
            if text:
                _log.warning("flow %s invoke %d failed (%d): %s", project, e.invoke_id, e.code, text)
            _run(client, client.on_flow_error, (head, project, e.invoke_id, e.code))


# ---- clients ------------------------------------------------------------------

cdef inline bytes _opt_bytes(s, str name, encoding="utf-8"):
    if s is None:
        return None
    if isinstance(s, bytes):
        return s
    if isinstance(s, str):
        return (<str>s).encode(encoding)
    raise TypeError("%s must be str or bytes, not %s" % (name, type(s).__name__))


cdef inline int _check_byte(int v, str name) except -1:
    if v < 0 or v > 255:
        raise ValueError("%s must be in 0..255, got %d" % (name, v))
    return 0


cdef class ClientBase:
    """Native part of a SmartBus client: the connection in the SDK and the
    hot sending methods.  Use smartbus.net.Client or smartbus.ipc.Client."""

    def __cinit__(self, *args, **kwargs):
        self._c = NULL
        self._inflight = 0
        self.event_executor = None

    def _open(self, EventSink sink not None, int kind, int unit_id, int client_id,
              int client_type, master_ip=None, int master_port=0, slave_ip=None,
              int slave_port=0xFFFF, ipc_path=None, user=None, password=None, info=None,
              event_executor=None):
        """Creates the SDK client (not connecting yet)."""
        cdef smartbus_client_config cfg
        cdef smartbus_client *c = NULL
        if self._c != NULL:
            raise RuntimeError("client already open")
        b_master = _opt_bytes(master_ip, "master_ip")
        b_slave = _opt_bytes(slave_ip, "slave_ip")
        b_path = _opt_bytes(ipc_path, "ipc_path")
        b_user = _opt_bytes(user, "user")
        b_password = _opt_bytes(password, "password")
        b_info = _opt_bytes(info, "info")
        memset(&cfg, 0, sizeof(cfg))
        cfg.kind = kind
        cfg.unit_id = unit_id
        cfg.client_id = client_id
        cfg.client_type = client_type
        cfg.master_ip = <const char *>b_master if b_master is not None else NULL
        cfg.master_port = master_port
        cfg.slave_ip = <const char *>b_slave if b_slave is not None else NULL
        cfg.slave_port = slave_port
        cfg.ipc_path = <const char *>b_path if b_path is not None else NULL
        cfg.user = <const char *>b_user if b_user is not None else NULL
        cfg.password = <const char *>b_password if b_password is not None else NULL
        cfg.info = <const char *>b_info if b_info is not None else NULL
        rc = smartbus_client_new(&cfg, sink.sink, &c)
        if rc != 0:
            raise _error(rc)
        self._c = c
        self._sink = sink
        self.event_executor = event_executor
        sink.clients[client_id] = self

    def _activate(self):
        cdef smartbus_client *c = self._c
        cdef int rc
        if c == NULL:
            raise _closed()
        self._inflight += 1
        with nogil:
            rc = smartbus_client_start(c)
        self._inflight -= 1
        if rc != 0:
            raise _error(rc)

    def _close(self):
        """Closes the connection and frees the SDK client (idempotent)."""
        cdef smartbus_client *c = self._c
        if c == NULL:
            return
        self._c = NULL
        while self._inflight:              # another thread is inside a native call
            with nogil:
                _sleep_ms(1)
        sink = self._sink
        if sink is not None:
            for k, v in list(sink.clients.items()):
                if v is self:
                    del sink.clients[k]
        with nogil:
            smartbus_client_free(c)

    # methods, not properties: subclasses may use these names for attributes
    def is_closed(self):
        """True once the client has been closed."""
        return self._c == NULL

    def is_connected(self):
        """True while at least one link to the server is registered."""
        return self._c != NULL and smartbus_client_connected(self._c) != 0

    @property
    def access_unit_id(self):
        """Unit id of the server this client is attached to (None before)."""
        if self._c == NULL:
            return None
        u = smartbus_client_ap_unit_id(self._c)
        return None if u < 0 else u

    def stats(self):
        """Counters of the SDK client (dict)."""
        cdef smartbus_client_stats st
        if self._c == NULL:
            raise _closed()
        smartbus_client_get_stats(self._c, &st)
        return {"sent_msgs": st.sent_msgs, "sent_bytes": st.sent_bytes,
                "recv_msgs": st.recv_msgs, "recv_bytes": st.recv_bytes,
                "send_full": st.send_full, "queued_msgs": st.queued_msgs,
                "queued_bytes": st.queued_bytes}

    def send_data(self, int cmd, int cmd_type, int dst_unit_id, int dst_client_id,
                  int dst_client_type, data):
        """Sends ``data`` (bytes-like, or None for an empty payload) to one
        client on the bus.  Raises SmartBusError with the SDK error code when
        refused (e.g. -2 not connected, -7 send queue full)."""
        cdef smartbus_client *c = self._c
        cdef int rc
        # fast path: bytes, valid small ints, GIL kept (see GIL_KEEP_MAX_BYTES)
        if (c != NULL and type(data) is bytes and dst_unit_id >= 0
                and ((cmd | cmd_type | dst_client_id | dst_client_type) & ~0xFF) == 0
                and PyBytes_GET_SIZE(data) <= GIL_KEEP_MAX_BYTES):
            rc = smartbus_client_send_ex(c, cmd, cmd_type, dst_unit_id, dst_client_id,
                                         dst_client_type, PyBytes_AS_STRING(data),
                                         <int>PyBytes_GET_SIZE(data), SMARTBUS_SEND_TRYLOCK)
            if rc == 0:
                return
            if rc != SMARTBUS_ERR_WOULDBLOCK:
                raise _error(rc)
        self._send(cmd, cmd_type, dst_unit_id, dst_client_id, dst_client_type, data, False)

    def ping(self, int dst_unit_id, int dst_client_id, int dst_client_type, data=None):
        """Sends a ping; the peer's library answers it (on_data gets cmd 8)."""
        self._send(0, 0, dst_unit_id, dst_client_id, dst_client_type, data, True)

    cdef int _send(self, int cmd, int cmd_type, int dst_unit_id, int dst_client_id,
                   int dst_client_type, object data, bint ping) except -1:
        cdef smartbus_client *c
        cdef const char *buf = NULL
        cdef Py_ssize_t n = 0
        cdef Py_buffer view
        cdef bint have_view = False
        cdef int rc
        cdef int flags = SMARTBUS_SEND_PING if ping else 0
        if not ping:
            _check_byte(cmd, "cmd")
            _check_byte(cmd_type, "cmd_type")
        if dst_unit_id < 0:
            raise SmartBusError(SMARTBUS_ERR_UNITID_INVALID, "SMARTBUS_ERR_UNITID_INVALID")
        _check_byte(dst_client_id, "dst_client_id")
        _check_byte(dst_client_type, "dst_client_type")
        if type(data) is bytes:
            buf = PyBytes_AS_STRING(data)
            n = PyBytes_GET_SIZE(data)
        elif data is None:
            pass
        elif isinstance(data, str):
            raise TypeError("data must be a bytes-like object, not str (encode it first)")
        else:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            have_view = True
            buf = <const char *>view.buf
            n = view.len
        # read the client only now: acquiring a buffer can run Python code
        # (and let another thread close the client); from here to the
        # in-flight mark nothing can release the GIL
        c = self._c
        if c == NULL or n > SMARTBUS_MAX_DATA_SIZE:
            if have_view:
                PyBuffer_Release(&view)
            if c == NULL:
                raise _closed()
            raise SmartBusError(SMARTBUS_ERR_MAX_DATASIZE, "SMARTBUS_ERR_MAX_DATASIZE")
        rc = SMARTBUS_ERR_WOULDBLOCK
        if n <= GIL_KEEP_MAX_BYTES:
            # a lock and a short copy: cheaper than releasing the GIL, which
            # is released only when the client's lock is busy
            rc = smartbus_client_send_ex(c, cmd, cmd_type, dst_unit_id, dst_client_id,
                                         dst_client_type, buf, <int>n,
                                         flags | SMARTBUS_SEND_TRYLOCK)
        if rc == SMARTBUS_ERR_WOULDBLOCK:
            self._inflight += 1
            with nogil:
                rc = smartbus_client_send_ex(c, cmd, cmd_type, dst_unit_id, dst_client_id,
                                             dst_client_type, buf, <int>n, flags)
            self._inflight -= 1
        if have_view:
            PyBuffer_Release(&view)
        if rc != 0:
            raise _error(rc)
        return 0

    def send_many(self, int cmd, int cmd_type, int dst_unit_id, int dst_client_id,
                  int dst_client_type, datas):
        """Sends every payload of the sequence ``datas`` (bytes objects) to
        one destination with a single native call.  Returns how many were
        queued; raises SmartBusError if the first one is refused (a later
        refusal, e.g. a full queue, just stops the batch)."""
        cdef smartbus_client *c
        cdef Py_ssize_t count, i
        cdef const void **ptrs
        cdef int *sizes
        cdef int err = 0, done
        _check_byte(cmd, "cmd")
        _check_byte(cmd_type, "cmd_type")
        if dst_unit_id < 0:
            raise SmartBusError(SMARTBUS_ERR_UNITID_INVALID, "SMARTBUS_ERR_UNITID_INVALID")
        _check_byte(dst_client_id, "dst_client_id")
        _check_byte(dst_client_type, "dst_client_type")
        items = datas if isinstance(datas, (list, tuple)) else list(datas)
        count = len(items)
        if count == 0:
            return 0
        ptrs = <const void **>malloc(count * sizeof(void *))
        sizes = <int *>malloc(count * sizeof(int))
        if ptrs == NULL or sizes == NULL:
            free(ptrs)
            free(sizes)
            raise MemoryError()
        try:
            for i in range(count):
                d = items[i]
                if type(d) is not bytes:
                    raise TypeError("send_many: item %d must be bytes, not %s"
                                    % (i, type(d).__name__))
                ptrs[i] = PyBytes_AS_STRING(d)
                sizes[i] = <int>PyBytes_GET_SIZE(d)
            c = self._c                    # after the Python-level work (see _send)
            if c == NULL:
                raise _closed()
            self._inflight += 1
            with nogil:
                done = smartbus_client_send_many(c, cmd, cmd_type, dst_unit_id, dst_client_id,
                                                 dst_client_type, ptrs, sizes, <int>count, &err)
            self._inflight -= 1
        finally:
            free(ptrs)
            free(sizes)
        if done == 0 and err != 0:
            raise _error(err)
        return done

    def _invoke_flow(self, int server_unit_id, int process_index, bytes project_id,
                     bytes flow_id, int mode, int timeout_ms, bytes params):
        cdef smartbus_client *c = self._c
        cdef int rc
        cdef const char *p = project_id
        cdef const char *f = flow_id
        cdef const char *v = params
        cdef int vn = <int>len(params)
        if c == NULL:
            raise _closed()
        self._inflight += 1
        with nogil:
            rc = smartbus_client_invoke_flow(c, server_unit_id, process_index, p, f, mode,
                                             timeout_ms, v, vn)
        self._inflight -= 1
        if rc < 0:
            raise _error(rc)
        return rc

    def _notify(self, int server_unit_id, int process_index, bytes project_id, bytes title,
                int mode, int expires_ms, bytes txt):
        cdef smartbus_client *c = self._c
        cdef int rc
        cdef const char *p = project_id
        cdef const char *t = title
        cdef const char *v = txt
        cdef int vn = <int>len(txt)
        if c == NULL:
            raise _closed()
        self._inflight += 1
        with nogil:
            rc = smartbus_client_notify(c, server_unit_id, process_index, p, t, mode,
                                        expires_ms, v, vn)
        self._inflight -= 1
        if rc < 0:
            raise _error(rc)
        return rc

    def _flow_reply(self, bint result, int dst_unit_id, int dst_client_id, int dst_client_type,
                    bytes project_id, int invoke_id, int code, bytes text):
        """Sends a flow ack (result False) or a flow result (result True)."""
        cdef smartbus_client *c = self._c
        cdef int rc
        cdef const char *p = project_id
        cdef const char *t = text
        cdef int tn = <int>len(text)
        if c == NULL:
            raise _closed()
        self._inflight += 1
        with nogil:
            if result:
                rc = smartbus_client_flow_result(c, dst_unit_id, dst_client_id, dst_client_type,
                                                 p, invoke_id, code, t, tn)
            else:
                rc = smartbus_client_flow_ack(c, dst_unit_id, dst_client_id, dst_client_type,
                                              p, invoke_id, code, t, tn)
        self._inflight -= 1
        if rc != 0:
            raise _error(rc)

    def _on_registered(self, int access_unit_id):
        self.on_connect()


cdef extern from "<time.h>" nogil:
    struct timespec:
        long tv_sec
        long tv_nsec
    int nanosleep(const timespec *req, timespec *rem)


cdef inline void _sleep_ms(int ms) noexcept nogil:
    cdef timespec ts
    ts.tv_sec = ms // 1000
    ts.tv_nsec = (ms % 1000) * 1000000
    nanosleep(&ts, NULL)


cdef object _closed():
    return RuntimeError("the client is closed")


# ---- router --------------------------------------------------------------------

cdef class Router:
    """The local SmartBus server.  Binds on creation (``port`` is then the
    real port); ``run()`` serves until ``stop()`` (call it with the GIL
    released from another thread, e.g. through smartbus.server.Server)."""

    def __cinit__(self, host="127.0.0.1", int port=0, int unit_id=0, user=None,
                  password=None, ipc_path=None, size_t max_out_bytes=0,
                  int stall_timeout_ms=0):
        cdef smartbus_router_config cfg
        cdef smartbus_router *r = NULL
        cdef char err[512]
        self._r = NULL
        b_host = _opt_bytes(host, "host")
        b_user = _opt_bytes(user, "user")
        b_password = _opt_bytes(password, "password")
        b_path = _opt_bytes(ipc_path, "ipc_path")
        memset(&cfg, 0, sizeof(cfg))
        cfg.host = <const char *>b_host if b_host is not None else NULL
        cfg.port = port
        cfg.unit_id = unit_id
        cfg.user = <const char *>b_user if b_user is not None else NULL
        cfg.password = <const char *>b_password if b_password is not None else NULL
        cfg.ipc_path = <const char *>b_path if b_path is not None else NULL
        cfg.max_out_bytes = max_out_bytes
        cfg.stall_timeout_ms = stall_timeout_ms
        err[0] = 0
        rc = smartbus_router_new(&cfg, &r, err, sizeof(err))
        if rc != 0:
            msg = err.decode("utf-8", "replace") or "cannot start the router"
            if rc == SMARTBUS_ERR_UNITID_INVALID:
                raise ValueError("unit_id must be in 0..15: " + msg)
            raise OSError(msg)
        self._r = r
        self.port = smartbus_router_port(r)
        self.unit_id = unit_id

    def __dealloc__(self):
        if self._r != NULL:
            smartbus_router_free(self._r)
            self._r = NULL

    def run(self):
        """Serves until stop(); releases the GIL meanwhile."""
        cdef smartbus_router *r = self._r
        if r == NULL:
            raise RuntimeError("the router is closed")
        with nogil:
            smartbus_router_run(r)

    def stop(self):
        """Makes run() return (thread-safe)."""
        if self._r != NULL:
            smartbus_router_stop(self._r)

    def close(self):
        """Closes every connection and the listeners (after run() returned)."""
        cdef smartbus_router *r = self._r
        self._r = NULL
        if r != NULL:
            with nogil:
                smartbus_router_free(r)

    def stats(self):
        """Router counters (dict)."""
        cdef smartbus_router_stats st
        if self._r == NULL:
            raise RuntimeError("the router is closed")
        smartbus_router_get_stats(self._r, &st)
        return {"accepted": st.accepted, "registered": st.registered, "refused": st.refused,
                "closed": st.closed, "routed_msgs": st.routed_msgs,
                "routed_bytes": st.routed_bytes, "dropped_no_route": st.dropped_no_route,
                "dropped_unregistered": st.dropped_unregistered, "heartbeats": st.heartbeats,
                "stalled_disconnects": st.stalled_disconnects, "paused_reads": st.paused_reads,
                "clients": st.clients}


# ---- codec -----------------------------------------------------------------------

_REG_LAYOUTS = {SBW_REG_NET_A: "net_a", SBW_REG_NET_C: "net_c", SBW_REG_IPC: "ipc"}
_REG_LAYOUT_IDS = {v: k for k, v in _REG_LAYOUTS.items()}
_SYS_KINDS = {7: "ping", 8: "ping_ack", 9: "global", 10: "global", 11: "invoke",
              12: "flow_result", 13: "flow_ack", 15: "notify"}


cdef dict _head_dict(const sbw_head *h):
    return {"cmd": h.cmd, "cmdtype": h.cmdtype, "src_type": h.src_type, "src_unit": h.src_unit,
            "src_client": h.src_client, "dst_type": h.dst_type, "dst_unit": h.dst_unit,
            "dst_client": h.dst_client,
            "reserved": PyBytes_FromStringAndSize(<const char *>h.reserved, 2),
            "packet_size": h.packet_size, "datalen": h.datalen}


cdef void _head_from(sbw_head *h, dict d) except *:
    memset(h, 0, sizeof(sbw_head))
    h.cmd = d.get("cmd", 0)
    h.cmdtype = d.get("cmdtype", 0)
    h.src_type = d.get("src_type", 0)
    h.src_unit = d.get("src_unit", 0)
    h.src_client = d.get("src_client", 0)
    h.dst_type = d.get("dst_type", 0)
    h.dst_unit = d.get("dst_unit", 0)
    h.dst_client = d.get("dst_client", 0)
    r = d.get("reserved", b"\0\0")
    h.reserved[0] = r[0]
    h.reserved[1] = r[1]


_DECODE_ERRORS = {-1: "truncated packet", -2: "bad head flag", -3: "bad sizes", -5: "bad layout"}


def decode_packet(data):
    """Decodes one whole packet into a dict: the head fields (cmd, cmdtype,
    src_type, src_unit, src_client, dst_type, dst_unit, dst_client, reserved,
    packet_size, datalen), ``pad``, ``payload``, ``kind`` and the fields of
    that kind.  Raises ValueError for a malformed packet."""
    cdef const uint8_t[::1] mv
    cdef sbw_head h
    cdef sbw_register reg
    cdef sbw_heartbeat hb
    cdef sbw_global g
    cdef sbw_invoke inv
    cdef sbw_flow_reply fr
    cdef sbw_notify nt
    cdef int ap = 0, rc
    cdef int32_t result = 0
    raw = bytes(data)
    mv = raw
    n = len(raw)
    if n == 0:
        raise ValueError("empty packet")
    rc = sbw_get_head(&mv[0], n, &h)
    if rc != SBW_OK:
        raise ValueError(_DECODE_ERRORS.get(rc, "malformed packet"))
    if h.packet_size > n:
        raise ValueError("truncated packet: %d of %d bytes" % (n, h.packet_size))
    d = _head_dict(&h)
    d["pad"] = h.packet_size - SBW_HEAD_SIZE - h.datalen
    payload = raw[SBW_HEAD_SIZE:SBW_HEAD_SIZE + h.datalen]
    d["payload"] = payload
    cdef const uint8_t *p = &mv[0] + SBW_HEAD_SIZE
    cdef size_t plen = h.datalen
    kind = "data"
    if h.cmdtype == 0:
        kind = "internal"
        if h.cmd == 1:
            rc = sbw_get_register(&mv[0], n, &reg)
            if rc != SBW_OK:
                raise ValueError(_DECODE_ERRORS.get(rc, "bad registration"))
            kind = "register"
            d.update(layout=_REG_LAYOUTS[reg.layout], client_type=reg.client_type,
                     unit_id=reg.unit_id, client_id=reg.client_id, conn_index=reg.conn_index,
                     user=reg.user, password=reg.password, info=reg.info,
                     version=reg.version, pid=reg.pid, ap_unit=reg.ap_unit)
        elif h.cmd == 2:
            rc = sbw_get_register_ack(&mv[0], n, &ap, &result)
            if rc != SBW_OK:
                raise ValueError("bad registration ack")
            kind = "register_ack"
            d.update(ap_unit=ap, result=result, node_size=h.datalen - 4)
        elif h.cmd == 5 or h.cmd == 6:
            rc = sbw_get_heartbeat(&mv[0], n, &hb)
            if rc != SBW_OK:
                raise ValueError("bad heartbeat")
            kind = "heartbeat" if h.cmd == 5 else "heartbeat_ack"
            d.update(layout="old" if hb.layout == SBW_HB_OLD else "new", counter=hb.counter,
                     resend=hb.resend, send_time=hb.send_time, return_time=hb.return_time)
    elif h.cmdtype == SMARTBUS_CMDTYPE_SYSTEM and h.cmd in _SYS_KINDS:
        kind = _SYS_KINDS[h.cmd]
        if kind == "global":
            if sbw_get_global(p, plen, &g) != SBW_OK:
                raise ValueError("global connect payload must be 281 bytes, got %d" % plen)
            d.update(unit_id=g.unit_id, client_id=g.client_id, client_type=g.client_type,
                     ap_unit=g.ap_unit, status=g.status, info=g.info,
                     inner=_head_dict(&g.inner))
            d["inner"]["reserved"] = payload[10:12]
        elif kind == "invoke":
            if sbw_get_invoke(p, plen, &inv) != SBW_OK:
                raise ValueError("bad flow invoke payload")
            d.update(project_id=inv.project, flow_id=inv.flow, mode=inv.mode,
                     channel=inv.channel, invoke_id=inv.invoke_id,
                     params=PyBytes_FromStringAndSize(inv.params, inv.params_len))
        elif kind == "flow_ack" or kind == "flow_result":
            rc = sbw_get_flow_ack(p, plen, &fr) if kind == "flow_ack" else sbw_get_flow_result(p, plen, &fr)
            if rc != SBW_OK:
                raise ValueError("bad %s payload" % kind)
            d.update(project_id=fr.project, invoke_id=fr.invoke_id, channel=fr.channel,
                     code=fr.code, text=PyBytes_FromStringAndSize(fr.text, fr.text_len))
        elif kind == "notify":
            if sbw_get_notify(p, plen, &nt) != SBW_OK:
                raise ValueError("bad notify payload")
            d.update(project_id=nt.project, mode=nt.mode, notify_id=nt.notify_id,
                     expires=nt.expires, title=nt.title,
                     params=PyBytes_FromStringAndSize(nt.params, nt.params_len))
    d["kind"] = kind
    return d


cdef inline void _put_cstr(char *dst, size_t size, s) except *:
    b = s if isinstance(s, bytes) else str(s).encode("utf-8")
    cdef Py_ssize_t n = min(len(b), <Py_ssize_t>size - 1)
    memcpy(dst, <const char *>b, n)
    dst[n] = 0


def encode_packet(dict d):
    """Encodes a packet from a dict shaped like decode_packet's result
    (``kind`` picks the layout; undefined bytes are written as zeros; a
    non-zero ``pad`` selects the client padding rule)."""
    cdef sbw_head h
    cdef sbw_register reg
    cdef sbw_heartbeat hb
    cdef sbw_global g
    cdef sbw_invoke inv
    cdef sbw_flow_reply fr
    cdef sbw_notify nt
    cdef int n
    kind = d.get("kind", "data")
    _head_from(&h, d)
    cdef int client_rule = 1 if d.get("pad", 0) else 0
    payload = d.get("payload", b"") or b""
    cdef Py_ssize_t cap = SBW_HEAD_SIZE + 8192 + len(payload) + len(d.get("params", b"")) \
        + len(d.get("text", b""))
    out = PyBytes_FromStringAndSize(NULL, cap)
    cdef uint8_t *o = <uint8_t *>PyBytes_AS_STRING(out)
    if kind == "register":
        memset(&reg, 0, sizeof(reg))
        reg.layout = _REG_LAYOUT_IDS[d["layout"]]
        reg.client_type = d["client_type"]
        reg.unit_id = d.get("unit_id", 0)
        reg.client_id = d["client_id"]
        reg.conn_index = d.get("conn_index", 0)
        _put_cstr(reg.user, 65, d.get("user", b""))
        _put_cstr(reg.password, 129, d.get("password", b""))
        _put_cstr(reg.info, 257, d.get("info", b""))
        _put_cstr(reg.version, 21, d.get("version", b""))
        reg.pid = d.get("pid", 0)
        reg.ap_unit = d.get("ap_unit", -1)
        n = sbw_put_register(o, cap, &reg)
    elif kind == "register_ack":
        h.src_unit = <uint8_t>(d.get("ap_unit", h.src_unit) & 0xFF)
        n = sbw_put_register_ack(o, cap, &h, d["result"], d.get("node_size", 0))
    elif kind == "heartbeat" or kind == "heartbeat_ack":
        hb.layout = SBW_HB_OLD if d.get("layout", "old") == "old" else SBW_HB_NEW
        hb.counter = d.get("counter", 0)
        hb.resend = d.get("resend", 0)
        hb.send_time = d.get("send_time", 0)
        hb.return_time = d.get("return_time", 0)
        n = sbw_put_heartbeat(o, cap, &h, &hb)
    elif kind == "global":
        memset(&g, 0, sizeof(g))
        _head_from(&g.inner, d.get("inner", {}))
        g.unit_id = d["unit_id"]
        g.client_id = d["client_id"]
        g.client_type = d["client_type"]
        g.ap_unit = d["ap_unit"]
        g.status = d["status"]
        _put_cstr(g.info, 257, d.get("info", b""))
        n = sbw_put_global(o, cap, &h, &g, client_rule)
    elif kind == "invoke":
        memset(&inv, 0, sizeof(inv))
        _put_cstr(inv.project, 33, d["project_id"])
        _put_cstr(inv.flow, 33, d["flow_id"])
        inv.mode = d.get("mode", 0)
        inv.channel = d.get("channel", -1)
        inv.invoke_id = d["invoke_id"]
        params = d.get("params", b"")
        inv.params = params
        inv.params_len = len(params)
        n = sbw_put_invoke(o, cap, &h, &inv, client_rule)
    elif kind == "flow_ack" or kind == "flow_result":
        memset(&fr, 0, sizeof(fr))
        _put_cstr(fr.project, 33, d.get("project_id", b""))
        fr.invoke_id = d["invoke_id"]
        fr.channel = d.get("channel", -1)
        fr.code = d.get("code", 1)
        text = d.get("text", b"")
        fr.text = text
        fr.text_len = len(text)
        if kind == "flow_ack":
            n = sbw_put_flow_ack(o, cap, &h, &fr, client_rule)
        else:
            n = sbw_put_flow_result(o, cap, &h, &fr, client_rule)
    elif kind == "notify":
        memset(&nt, 0, sizeof(nt))
        _put_cstr(nt.project, 33, d.get("project_id", b""))
        nt.mode = d.get("mode", 0)
        nt.notify_id = d["notify_id"]
        nt.expires = d.get("expires", 0)
        _put_cstr(nt.title, 102, d.get("title", b""))
        params = d.get("params", b"")
        nt.params = params
        nt.params_len = len(params)
        n = sbw_put_notify(o, cap, &h, &nt, client_rule)
    else:
        n = sbw_put_packet(o, cap, &h, <const char *>payload, len(payload), client_rule)
    if n < 0:
        raise ValueError("cannot encode %s packet (%d)" % (kind, n))
    return out[:n]


# ---- process exit ------------------------------------------------------------------

def _shutdown():
    """At interpreter exit: stop delivering events and release every client
    while Python is still fully alive (no callback runs after this)."""
    sbpy_set_exiting()
    for sink in list(_live_sinks):
        for client in list((<EventSink>sink).clients.values()):
            try:
                client._close()
            except BaseException:
                pass
        (<EventSink>sink).close()


atexit.register(_shutdown)
