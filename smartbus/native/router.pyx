# Part of smartbus._native: Router, the local SmartBus server of the C SDK
# (run on a thread of its own by smartbus.server), and its snapshots for
# monitoring (smartbus.monitor).

from libc.stdlib cimport free, malloc
from libc.string cimport memset

cdef enum:
    SNAPSHOT_ROOM = 64            # connections a first snapshot() call makes room for

#: the smallest per-connection queue bound a router accepts (0: the default)
ROUTER_MIN_OUT_BYTES = SMARTBUS_ROUTER_MIN_OUT_BYTES
#: the router's defaults, for the arguments left 0
ROUTER_DEFAULT_MAX_OUT_BYTES = SMARTBUS_ROUTER_DEFAULT_MAX_OUT_BYTES
ROUTER_DEFAULT_STALL_TIMEOUT_MS = SMARTBUS_ROUTER_DEFAULT_STALL_TIMEOUT_MS
ROUTER_DEFAULT_REGISTRATION_TIMEOUT_MS = SMARTBUS_ROUTER_DEFAULT_REGISTRATION_TIMEOUT_MS
ROUTER_DEFAULT_MAX_CONNECTIONS = SMARTBUS_ROUTER_DEFAULT_MAX_CONNECTIONS
ROUTER_DEFAULT_HEARTBEAT_ANSWER_INTERVAL_MS = SMARTBUS_ROUTER_DEFAULT_HEARTBEAT_ANSWER_INTERVAL_MS


cdef class Router:
    """The local SmartBus server.  Binds on creation (``port`` is then the
    real port); ``run()`` serves until ``stop()`` (call it with the GIL
    released from another thread, e.g. through smartbus.server.Server)."""

    def __cinit__(self, host="127.0.0.1", int port=0, int unit_id=0, user=None,
                  password=None, ipc_path=None, size_t max_out_bytes=0,
                  int stall_timeout_ms=0, int registration_timeout_ms=0,
                  int max_connections=0, int heartbeat_answer_interval_ms=0):
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
        cfg.registration_timeout_ms = registration_timeout_ms
        cfg.max_connections = max_connections
        cfg.heartbeat_answer_interval_ms = heartbeat_answer_interval_ms
        err[0] = 0
        rc = smartbus_router_new(&cfg, &r, err, sizeof(err))
        if rc != 0:
            msg = err.decode("utf-8", "replace") or "cannot start the router"
            if rc == SMARTBUS_ERR_UNITID_INVALID:
                raise ValueError("unit_id must be in %d..%d: %s" % (
                    SERVER_UNIT_IDS.start, SERVER_UNIT_IDS.stop - 1, msg))
            if rc == SMARTBUS_ERR_ARGUMENT:
                raise ValueError(msg)
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
        cdef smartbus_router *r = <smartbus_router *>sbpy_enter_attached(<void **>&self._r,
                                                                        &self._inflight)
        if r != NULL:
            smartbus_router_stop(r)
            sbpy_leave_attached(&self._inflight)

    def close(self):
        """Closes every connection and the listeners (after run() returned;
        waits for snapshot() calls of other threads)."""
        cdef smartbus_router *r = <smartbus_router *>sbpy_take(<void **>&self._r)
        if r != NULL:
            while sbpy_busy(&self._inflight):
                with nogil:
                    _sleep_ms(1)
            with nogil:
                smartbus_router_free(r)

    def stats(self):
        """Router counters (dict)."""
        cdef smartbus_router_stats st
        cdef smartbus_router *r = <smartbus_router *>sbpy_enter_attached(<void **>&self._r,
                                                                        &self._inflight)
        if r == NULL:
            raise RuntimeError("the router is closed")
        smartbus_router_get_stats(r, &st)
        sbpy_leave_attached(&self._inflight)
        return _stats_dict(&st)

    def snapshot(self, double timeout=1.0):
        """The counters (``stats``) and every connection (``connections``: a
        list of dicts), copied together by the router's loop; thread-safe.
        TimeoutError when the loop does not answer within ``timeout`` s."""
        cdef smartbus_router *r
        cdef smartbus_router_stats st
        cdef smartbus_router_conn *conns = NULL
        cdef int cap = SNAPSHOT_ROOM, n
        cdef int timeout_ms
        if not 0 <= timeout <= 3600:
            raise ValueError("timeout must be 0..3600 seconds, got %r" % timeout)
        timeout_ms = <int>(timeout * 1000)
        r = <smartbus_router *>sbpy_enter(<void **>&self._r, &self._inflight)
        if r == NULL:
            raise RuntimeError("the router is closed")
        try:
            while True:
                free(conns)
                conns = <smartbus_router_conn *>malloc(cap * sizeof(smartbus_router_conn))
                if conns == NULL:
                    raise MemoryError()
                with nogil:
                    n = smartbus_router_snapshot(r, &st, conns, cap, timeout_ms)
                if n == SMARTBUS_ERR_TIMEOUT:
                    raise TimeoutError("the router did not answer within %s s" % timeout)
                if n < 0:
                    raise _error(n)
                if n <= cap:
                    break
                cap = n + SNAPSHOT_ROOM       # more connections than room: again
            return {"stats": _stats_dict(&st),
                    "connections": [_conn_dict(&conns[i]) for i in range(n)]}
        finally:
            free(conns)
            sbpy_leave(&self._inflight)


cdef dict _stats_dict(const smartbus_router_stats *st):
    return {"accepted": st.accepted, "registered": st.registered, "refused": st.refused,
            "closed": st.closed, "routed_msgs": st.routed_msgs,
            "routed_bytes": st.routed_bytes, "dropped_no_route": st.dropped_no_route,
            "dropped_unregistered": st.dropped_unregistered, "heartbeats": st.heartbeats,
            "stalled_disconnects": st.stalled_disconnects, "paused_reads": st.paused_reads,
            "clients": st.clients, "registration_timeouts": st.registration_timeouts,
            "rejected_connections": st.rejected_connections,
            "protocol_errors": st.protocol_errors, "dropped_forged": st.dropped_forged,
            "heartbeat_answers": st.heartbeat_answers}


cdef dict _conn_dict(smartbus_router_conn *c):
    return {"registered": bool(c.registered), "kind": "ipc" if c.ipc else "net",
            "type": c.type, "unit": c.unit, "client": c.client,
            "peer": c.peer.decode("utf-8", "replace"),
            "info": c.info.decode("utf-8", "replace"),
            "paused": bool(c.paused), "congested": bool(c.congested),
            "msgs_in": c.msgs_in, "bytes_in": c.bytes_in,
            "msgs_out": c.msgs_out, "bytes_out": c.bytes_out,
            "queued_bytes": c.queued_bytes, "buffered_bytes": c.buffered_bytes,
            "connected_for": c.connected_ms / 1000.0}
