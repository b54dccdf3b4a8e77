# Part of smartbus._native: NativeClient, the native half of the NET and IPC
# clients (smartbus._client.ClientAPI and the flow server's connection
# subclass it): the client in the SDK, its life cycle, and the sends.  Arguments are converted to C
# types and the SDK call runs with the GIL released, except the sends of
# small payloads (see GIL_KEEP_MAX_BYTES).  _inflight counts the calls
# using the SDK client, so that _close() does not free it under them
# (native/handle.h; with the GIL only the calls that release it count).

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdlib cimport free, malloc
from libc.string cimport memset
from posix.time cimport nanosleep, timespec

from smartbus.errors import SmartBusError

cdef enum:
    # send_data / ping keep the GIL for payloads up to this size (a lock and
    # a memcpy take less than releasing and taking the GIL); larger payloads,
    # and any send that finds the client's lock busy, release it
    GIL_KEEP_MAX_BYTES = 16384


cdef inline int _check_byte(int v, str name) except -1:
    if v < 0 or v > 255:
        raise ValueError("%s must be in 0..255, got %d" % (name, v))
    return 0


cdef inline int _check_header(int cmd, int cmd_type, int dst_unit_id, int dst_client_id,
                              int dst_client_type, bint ping) except -1:
    # the head fields of a send (a ping's cmd and cmd_type are the SDK's)
    if not ping:
        _check_byte(cmd, "cmd")
        _check_byte(cmd_type, "cmd_type")
    if dst_unit_id < 0:
        raise SmartBusError(SMARTBUS_ERR_UNITID_INVALID, "SMARTBUS_ERR_UNITID_INVALID")
    _check_byte(dst_client_id, "dst_client_id")
    _check_byte(dst_client_type, "dst_client_type")
    return 0


cdef class NativeClient:
    """Native half of a SmartBus client: the client in the SDK and the hot
    sending methods.  Use smartbus.net.Client or smartbus.ipc.Client."""

    def __cinit__(self, *args, **kwargs):
        self._c = NULL
        self._inflight = 0
        self._from_parent = False
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
        rc = smartbus_client_new(&cfg, sink._sdk_sink(), &c)
        if rc != 0:
            raise _error(rc)
        self._c = c
        self._sink = sink
        self.event_executor = event_executor
        # data events go to on_data_batch, a burst at a time, when the class
        # defines it (see EventSink.dispatch); decided once, here
        self._data_batch = callable(getattr(type(self), "on_data_batch", None))
        sink._register(client_id, self)

    def _activate(self):
        cdef smartbus_client *c = self._enter_native()
        cdef int rc
        with nogil:
            rc = smartbus_client_start(c)
        self._leave_native(rc)

    def _close(self):
        """Closes the connection and frees the SDK client (idempotent).  A
        caller racing with another one returns once the SDK client is freed
        (its sink may then be closed: never under a live client)."""
        cdef smartbus_client *c
        with self._close_lock:
            c = <smartbus_client *>sbpy_take(<void **>&self._c)
            if c == NULL:                      # closed already
                return
            while sbpy_busy(&self._inflight):  # another thread is inside a native call
                with nogil:
                    _sleep_ms(1)
            with nogil:
                smartbus_client_free(c)
            sink = self._sink
            if sink is not None:
                sink._unregister(self)

    # methods, not properties: subclasses may use these names for attributes
    def is_closed(self):
        """True once the client has been closed."""
        return sbpy_peek(<void **>&self._c) == NULL

    def is_connected(self):
        """True while at least one link to the server is registered."""
        cdef smartbus_client *c = <smartbus_client *>sbpy_enter_attached(<void **>&self._c,
                                                                        &self._inflight)
        if c == NULL:
            return False
        connected = smartbus_client_connected(c) != 0
        sbpy_leave_attached(&self._inflight)
        return connected

    @property
    def access_unit_id(self):
        """Unit id of the server this client is attached to (None before)."""
        cdef smartbus_client *c = <smartbus_client *>sbpy_enter_attached(<void **>&self._c,
                                                                        &self._inflight)
        if c == NULL:
            return None
        u = smartbus_client_ap_unit_id(c)
        sbpy_leave_attached(&self._inflight)
        return None if u < 0 else u

    def stats(self):
        """Counters of the SDK client (dict)."""
        cdef smartbus_client_stats st
        smartbus_client_get_stats(self._enter_attached(), &st)
        sbpy_leave_attached(&self._inflight)
        return {"sent_msgs": st.sent_msgs, "sent_bytes": st.sent_bytes,
                "recv_msgs": st.recv_msgs, "recv_bytes": st.recv_bytes,
                "send_full": st.send_full, "queued_msgs": st.queued_msgs,
                "queued_bytes": st.queued_bytes, "direct_msgs": st.direct_msgs}

    def send_data(self, int cmd, int cmd_type, int dst_unit_id, int dst_client_id,
                  int dst_client_type, data):
        """Sends ``data`` (bytes-like, or None for an empty payload) to one
        client on the bus.  Raises SmartBusError with the SDK error code when
        refused (e.g. -2 not connected, -7 send queue full)."""
        cdef smartbus_client *c
        cdef int rc
        # fast path: bytes, valid small ints, GIL kept (see GIL_KEEP_MAX_BYTES);
        # counted in flight only on a free-threaded build (handle.h)
        if (type(data) is bytes and dst_unit_id >= 0
                and ((cmd | cmd_type | dst_client_id | dst_client_type) & ~0xFF) == 0
                and PyBytes_GET_SIZE(data) <= GIL_KEEP_MAX_BYTES):
            c = <smartbus_client *>sbpy_enter_attached(<void **>&self._c, &self._inflight)
            if c != NULL:
                rc = smartbus_client_send_ex(c, cmd, cmd_type, dst_unit_id, dst_client_id,
                                             dst_client_type, PyBytes_AS_STRING(data),
                                             <int>PyBytes_GET_SIZE(data), SMARTBUS_SEND_TRYLOCK)
                sbpy_leave_attached(&self._inflight)
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
        _check_header(cmd, cmd_type, dst_unit_id, dst_client_id, dst_client_type, ping)
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
        # count in and read the client only now: acquiring a buffer can run
        # Python code (and let another thread close the client)
        c = <smartbus_client *>sbpy_enter(<void **>&self._c, &self._inflight)
        if c == NULL or n > SMARTBUS_MAX_DATA_SIZE:
            if have_view:
                PyBuffer_Release(&view)
            if c == NULL:
                raise _closed(self)
            sbpy_leave(&self._inflight)
            raise SmartBusError(SMARTBUS_ERR_MAX_DATASIZE, "SMARTBUS_ERR_MAX_DATASIZE")
        rc = SMARTBUS_ERR_WOULDBLOCK
        if n <= GIL_KEEP_MAX_BYTES:
            # a lock and a short copy: cheaper than releasing the GIL, which
            # is released only when the client's lock is busy
            rc = smartbus_client_send_ex(c, cmd, cmd_type, dst_unit_id, dst_client_id,
                                         dst_client_type, buf, <int>n,
                                         flags | SMARTBUS_SEND_TRYLOCK)
        if rc == SMARTBUS_ERR_WOULDBLOCK:
            with nogil:
                rc = smartbus_client_send_ex(c, cmd, cmd_type, dst_unit_id, dst_client_id,
                                             dst_client_type, buf, <int>n, flags)
        sbpy_leave(&self._inflight)
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
        _check_header(cmd, cmd_type, dst_unit_id, dst_client_id, dst_client_type, False)
        items = datas if isinstance(datas, (list, tuple)) else list(datas)
        count = len(items)
        # an empty batch still goes to the SDK: its checks answer as for any other
        ptrs = <const void **>malloc((count or 1) * sizeof(void *))
        sizes = <int *>malloc((count or 1) * sizeof(int))
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
            c = self._enter_native()       # after the Python-level work (see _send)
            with nogil:
                done = smartbus_client_send_many(c, cmd, cmd_type, dst_unit_id, dst_client_id,
                                                 dst_client_type, ptrs, sizes, <int>count, &err)
            sbpy_leave(&self._inflight)
        finally:
            free(ptrs)
            free(sizes)
        if done == 0 and err != 0:
            raise _error(err)
        return done

    cdef smartbus_client *_enter_native(self) except NULL:
        """The SDK client, for a call made without the GIL: marked in flight
        until _leave_native, so that _close() waits for the call."""
        cdef smartbus_client *c = <smartbus_client *>sbpy_enter(<void **>&self._c,
                                                               &self._inflight)
        if c == NULL:
            raise _closed(self)
        return c

    cdef int _leave_native(self, int rc) except -1:
        """Ends a call begun with _enter_native; raises for an error code."""
        sbpy_leave(&self._inflight)
        if rc < 0:
            raise _error(rc)
        return rc

    cdef int _request(self, _request_call call, int server_unit_id, int process_index,
                      bytes project_id, bytes name, int mode, int time_ms,
                      bytes data) except -1:
        # a flow invoke or a notification: the SDK returns its id (> 0)
        cdef const char *p = project_id
        cdef const char *n = name
        cdef const char *v = data
        cdef int vn = <int>len(data)
        cdef smartbus_client *c = self._enter_native()
        cdef int rc
        with nogil:
            rc = call(c, server_unit_id, process_index, p, n, mode, time_ms, v, vn)
        return self._leave_native(rc)

    cdef smartbus_client *_enter_attached(self) except NULL:
        """The SDK client, for a short call made with the GIL held (ended by
        sbpy_leave_attached): the same guard, where there is no GIL."""
        cdef smartbus_client *c = <smartbus_client *>sbpy_enter_attached(<void **>&self._c,
                                                                        &self._inflight)
        if c == NULL:
            raise _closed(self)
        return c

    def _invoke_flow(self, int server_unit_id, int process_index, bytes project_id,
                     bytes flow_id, int mode, int timeout_ms, bytes params):
        return self._request(smartbus_client_invoke_flow, server_unit_id, process_index,
                             project_id, flow_id, mode, timeout_ms, params)

    def _notify(self, int server_unit_id, int process_index, bytes project_id, bytes title,
                int mode, int expires_ms, bytes txt):
        return self._request(smartbus_client_notify, server_unit_id, process_index,
                             project_id, title, mode, expires_ms, txt)

    def _flow_reply(self, bint result, int dst_unit_id, int dst_client_id, int dst_client_type,
                    bytes project_id, int invoke_id, int code, bytes text):
        """Sends a flow ack (result False) or a flow result (result True)."""
        cdef const char *p = project_id
        cdef const char *t = text
        cdef int tn = <int>len(text)
        cdef smartbus_client *c = self._enter_native()
        cdef int rc
        with nogil:
            if result:
                rc = smartbus_client_flow_result(c, dst_unit_id, dst_client_id, dst_client_type,
                                                 p, invoke_id, code, t, tn)
            else:
                rc = smartbus_client_flow_ack(c, dst_unit_id, dst_client_id, dst_client_type,
                                              p, invoke_id, code, t, tn)
        self._leave_native(rc)

    def _on_registered(self, int access_unit_id):
        self.on_connect()


def _invoke_ids_start_at(int first):
    """Tests only: the next invoke id of this process is ``first`` (the
    vendor client counts from 1, as the golden vectors were captured); 0
    goes back to a random start (the default)."""
    smartbus_invoke_ids_start_at(first)


cdef inline void _sleep_ms(int ms) noexcept nogil:
    cdef timespec ts
    ts.tv_sec = ms // 1000
    ts.tv_nsec = (ms % 1000) * 1000000
    nanosleep(&ts, NULL)


cdef object _closed(NativeClient client):
    if client._from_parent:
        return RuntimeError("the client was created in the parent process (os.fork); "
                            "create a new one in the child")
    return RuntimeError("the client is closed")
