# cython: language_level=3
"""Declarations of smartbus._native: the part of the bundled C SDK's API
(vendor/smartbus-sdk/include) that the binding uses, and the layouts of its
extension types, for `cimport` from other Cython code."""

cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t


cdef extern from "smartbus.h" nogil:
    enum:
        SMARTBUS_PACKET_HEAD_SIZE
        SMARTBUS_MAX_DATA_SIZE
        SMARTBUS_MAX_FLOW_PARAM_SIZE
        SMARTBUS_FLOW_MODE_NORESULT
        MAX_GLOBAL_SMART_NODE
        MIN_SMARTBUS_NETCLI_UNITID
        MAX_SMARTBUS_NETCLI_UNITID_NUM
        SMARTBUS_CMDTYPE_INTERNAL
        SMARTBUS_CMDTYPE_SYSTEM
        SMARTBUS_CMD_REGISTER
        SMARTBUS_CMD_REGISTER_ACK
        SMARTBUS_CMD_HEARTBEAT
        SMARTBUS_CMD_HEARTBEAT_ACK
        SMARTBUS_SYSCMD_PING
        SMARTBUS_SYSCMD_PING_ACK
        SMARTBUS_SYSCMD_GLOBAL_CONNECT
        SMARTBUS_SYSCMD_GLOBAL_CONNECT_ANSWER
        SMARTBUS_SYSCMD_INVOKE_FLOW
        SMARTBUS_SYSCMD_FLOW_RESULT
        SMARTBUS_SYSCMD_FLOW_ACK
        SMARTBUS_SYSCMD_NOTIFY
        SMARTBUS_NODECLI_TYPE_IPSC
        SMARTBUS_ERR_UNITID_INVALID
        SMARTBUS_ERR_MAX_DATASIZE
        SMARTBUS_ERR_TIMEOUT
        SMARTBUS_ERR_ARGUMENT


cdef extern from "smartbus_ipccli_interface.h" nogil:
    const char *SMARTBUS_IPC_DEFAULT_PATH
    const char *SMARTBUS_IPC_PATH_ENV


cdef extern from "smartbus_wire.h" nogil:
    enum:
        SBW_OK
        SBW_ESHORT
        SBW_EFLAG
        SBW_ESIZE
        SBW_EFORMAT
        SBW_HEAD_SIZE
        SBW_REG_NET_A
        SBW_REG_NET_C
        SBW_REG_IPC
        SBW_HB_OLD
        SBW_HB_NEW
        SBW_GLOBAL_PAYLOAD

    ctypedef enum sbw_padding:
        SBW_PAD_NONE
        SBW_PAD_CLIENT

    ctypedef struct sbw_head:
        uint8_t cmd, cmdtype
        uint8_t src_type, src_unit, src_client
        uint8_t dst_type, dst_unit, dst_client
        uint8_t reserved[2]
        int32_t packet_size
        int32_t datalen

    ctypedef struct sbw_register:
        int layout
        uint8_t client_type, unit_id, client_id
        uint8_t conn_index
        char user[65]
        char password[129]
        char info[257]
        char version[21]
        int64_t pid
        int32_t ap_unit

    ctypedef struct sbw_heartbeat:
        int layout
        int64_t counter, resend, send_time, return_time

    ctypedef struct sbw_global:
        sbw_head inner
        uint8_t unit_id, client_id, client_type, ap_unit, status
        char info[257]

    ctypedef struct sbw_invoke:
        char project[33]
        char flow[33]
        uint8_t mode
        int32_t channel
        int32_t invoke_id
        const char *params
        int32_t params_len

    ctypedef struct sbw_flow_reply:
        char project[33]
        int32_t invoke_id, channel
        int32_t code
        const char *text
        int32_t text_len

    ctypedef struct sbw_notify:
        char project[33]
        uint8_t mode
        int32_t notify_id
        int32_t expires
        char title[102]
        const char *params
        int32_t params_len

    void sbw_read_head(const uint8_t *p, sbw_head *h)
    int sbw_get_head(const uint8_t *p, size_t n, sbw_head *h)
    int sbw_put_packet(uint8_t *out, size_t cap, sbw_head *h, const void *payload, int32_t len,
                       sbw_padding padding)
    int sbw_put_register(uint8_t *out, size_t cap, const sbw_register *r)
    int sbw_get_register(const uint8_t *p, size_t n, sbw_register *r)
    int sbw_put_register_ack(uint8_t *out, size_t cap, const sbw_head *h, int32_t result,
                             int node_size)
    int sbw_get_register_ack(const uint8_t *p, size_t n, int *ap_unit, int32_t *result)
    int sbw_put_heartbeat(uint8_t *out, size_t cap, sbw_head *h, const sbw_heartbeat *hb)
    int sbw_get_heartbeat(const uint8_t *p, size_t n, sbw_heartbeat *hb)
    int sbw_put_global(uint8_t *out, size_t cap, sbw_head *h, const sbw_global *g,
                       sbw_padding padding)
    int sbw_get_global(const uint8_t *payload, size_t len, sbw_global *g)
    int sbw_put_invoke(uint8_t *out, size_t cap, sbw_head *h, const sbw_invoke *v,
                       sbw_padding padding)
    int sbw_get_invoke(const uint8_t *payload, size_t len, sbw_invoke *v)
    int sbw_put_flow_ack(uint8_t *out, size_t cap, sbw_head *h, const sbw_flow_reply *r,
                         sbw_padding padding)
    int sbw_put_flow_result(uint8_t *out, size_t cap, sbw_head *h, const sbw_flow_reply *r,
                            sbw_padding padding)
    int sbw_get_flow_ack(const uint8_t *payload, size_t len, sbw_flow_reply *r)
    int sbw_get_flow_result(const uint8_t *payload, size_t len, sbw_flow_reply *r)
    int sbw_put_notify(uint8_t *out, size_t cap, sbw_head *h, const sbw_notify *v,
                       sbw_padding padding)
    int sbw_get_notify(const uint8_t *payload, size_t len, sbw_notify *v)


cdef extern from "smartbus_ext.h" nogil:
    enum:
        SMARTBUS_EV_CONNECT
        SMARTBUS_EV_DISCONNECT
        SMARTBUS_EV_DATA
        SMARTBUS_EV_FLOW_ACK
        SMARTBUS_EV_FLOW_RESULT
        SMARTBUS_EV_GLOBAL_CONNECT
        SMARTBUS_EV_TRACE
        SMARTBUS_KIND_NET
        SMARTBUS_KIND_IPC

    ctypedef struct smartbus_event:
        int type
        int client_id
        int code
        int unit_id
        int invoke_id
        int g_client_id, g_client_type, g_ap_unit_id
        const unsigned char *head
        const unsigned char *data
        int size
        const char *project_id
        const char *text
        int text_len

    ctypedef void (*smartbus_batch_cb)(void *arg, const smartbus_event *events, int count)

    ctypedef struct smartbus_sink:
        pass
    smartbus_sink *smartbus_sink_new(smartbus_batch_cb cb, void *arg, size_t max_queued_bytes)
    void smartbus_sink_free(smartbus_sink *sink, int timeout_ms)
    size_t smartbus_sink_pending(smartbus_sink *sink)

    ctypedef struct smartbus_client_config:
        int kind
        int unit_id
        int client_id
        int client_type
        const char *master_ip
        int master_port
        const char *slave_ip
        int slave_port
        const char *ipc_path
        const char *user
        const char *password
        const char *info
        size_t max_send_bytes
        int max_send_msgs

    ctypedef struct smartbus_client:
        pass
    ctypedef struct smartbus_client_stats:
        uint64_t sent_msgs, sent_bytes, recv_msgs, recv_bytes, send_full
        uint64_t queued_msgs, queued_bytes, direct_msgs

    int smartbus_client_new(const smartbus_client_config *cfg, smartbus_sink *sink,
                            smartbus_client **out)
    int smartbus_client_start(smartbus_client *c)
    void smartbus_client_free(smartbus_client *c)
    enum:
        SMARTBUS_SEND_PING
        SMARTBUS_SEND_TRYLOCK
        SMARTBUS_ERR_WOULDBLOCK
    int smartbus_client_send_ex(smartbus_client *c, int cmd, int cmdtype, int dst_unit,
                                int dst_client, int dst_type, const void *data, int size,
                                int flags)
    int smartbus_client_send_many(smartbus_client *c, int cmd, int cmdtype, int dst_unit,
                                  int dst_client, int dst_type, const void *const *datas,
                                  const int *sizes, int count, int *err)
    int smartbus_client_invoke_flow(smartbus_client *c, int server_unit, int process_index,
                                    const char *project_id, const char *flow_id, int mode,
                                    int timeout_ms, const char *params, int params_len)
    void smartbus_invoke_ids_start_at(int32_t first)
    int smartbus_client_notify(smartbus_client *c, int server_unit, int process_index,
                               const char *project_id, const char *title, int mode,
                               int expires_ms, const char *params, int params_len)
    int smartbus_client_flow_ack(smartbus_client *c, int dst_unit, int dst_client, int dst_type,
                                 const char *project_id, int invoke_id, int code,
                                 const char *text, int text_len)
    int smartbus_client_flow_result(smartbus_client *c, int dst_unit, int dst_client,
                                    int dst_type, const char *project_id, int invoke_id,
                                    int code, const char *text, int text_len)
    int smartbus_client_ap_unit_id(smartbus_client *c)
    int smartbus_client_connected(smartbus_client *c)
    void smartbus_client_get_stats(smartbus_client *c, smartbus_client_stats *st)

    ctypedef struct smartbus_error_info:
        int code
        const char *name
        const char *description
    const smartbus_error_info *smartbus_error_table(int *count)
    const char *smartbus_platform()

    ctypedef struct smartbus_router_config:
        const char *host
        int port
        int unit_id
        const char *user
        const char *password
        const char *ipc_path
        size_t max_out_bytes
        int stall_timeout_ms
        int registration_timeout_ms
        int max_connections
        int heartbeat_answer_interval_ms

    size_t SMARTBUS_ROUTER_MIN_OUT_BYTES
    size_t SMARTBUS_ROUTER_DEFAULT_MAX_OUT_BYTES
    int SMARTBUS_ROUTER_DEFAULT_STALL_TIMEOUT_MS
    int SMARTBUS_ROUTER_DEFAULT_REGISTRATION_TIMEOUT_MS
    int SMARTBUS_ROUTER_DEFAULT_MAX_CONNECTIONS
    int SMARTBUS_ROUTER_DEFAULT_HEARTBEAT_ANSWER_INTERVAL_MS

    ctypedef struct smartbus_router:
        pass
    ctypedef struct smartbus_router_stats:
        uint64_t accepted, registered, refused, closed
        uint64_t routed_msgs, routed_bytes
        uint64_t dropped_no_route, dropped_unregistered
        uint64_t heartbeats, stalled_disconnects, paused_reads
        int clients
        uint64_t registration_timeouts, rejected_connections, protocol_errors
        uint64_t dropped_forged, heartbeat_answers

    int smartbus_router_new(const smartbus_router_config *cfg, smartbus_router **out,
                            char *err, size_t errlen)
    int smartbus_router_port(const smartbus_router *r)
    int smartbus_router_run(smartbus_router *r)
    void smartbus_router_stop(smartbus_router *r)
    void smartbus_router_free(smartbus_router *r)
    void smartbus_router_get_stats(smartbus_router *r, smartbus_router_stats *st)
    ctypedef struct smartbus_router_conn:
        int registered, ipc, type, unit, client, paused, congested
        char peer[64]
        char info[257]
        uint64_t msgs_in, bytes_in, msgs_out, bytes_out, queued_bytes, buffered_bytes
        int64_t connected_ms
    int smartbus_router_snapshot(smartbus_router *r, smartbus_router_stats *st,
                                 smartbus_router_conn *conns, int cap, int timeout_ms)


# the guard of a handle that one thread may close while others use it
# (free-threaded builds: atomic; with the GIL: plain, see the header)
cdef extern from "native/handle.h" nogil:
    void *sbpy_enter(void *const *handle, int *inflight)
    void sbpy_leave(int *inflight)
    void *sbpy_enter_attached(void *const *handle, int *inflight)
    void sbpy_leave_attached(int *inflight)
    void *sbpy_peek(void *const *handle)
    void *sbpy_take(void **handle)
    int sbpy_busy(const int *inflight)


# ---- extension types ------------------------------------------------------

# NativeClient._request: smartbus_client_invoke_flow or smartbus_client_notify
ctypedef int (*_request_call)(smartbus_client *c, int server_unit, int process_index,
                              const char *project_id, const char *name, int mode, int time_ms,
                              const char *data, int data_len) noexcept nogil

cdef class Head:
    cdef readonly int cmd, cmd_type
    cdef readonly int src_unit_client_type, src_unit_id, src_unit_client_id
    cdef readonly int dst_unit_client_type, dst_unit_id, dst_unit_client_id
    cdef readonly int packet_size, data_length
    cdef unsigned char _reserved[2]   # no object field: Head is not GC-tracked

    @staticmethod
    cdef Head from_raw(const unsigned char *p)


cdef class EventSink


cdef class NativeClient:
    cdef smartbus_client *_c
    cdef EventSink _sink
    cdef int _inflight             # native calls using _c (handle.h: close waits for them)
    cdef cython.pymutex _close_lock    # one _close at a time: the others wait for it
    cdef bint _from_parent         # closed by os.fork(): made in the parent process
    cdef bint _data_batch          # its class defines on_data_batch (set by _open)
    cdef readonly object event_executor
    cdef int _send(self, int cmd, int cmd_type, int dst_unit_id, int dst_client_id,
                   int dst_client_type, object data, bint ping) except -1
    cdef smartbus_client *_enter_native(self) except NULL
    cdef int _leave_native(self, int rc) except -1
    cdef smartbus_client *_enter_attached(self) except NULL
    cdef int _request(self, _request_call call, int server_unit_id, int process_index,
                      bytes project_id, bytes name, int mode, int time_ms,
                      bytes data) except -1


cdef class EventSink:
    cdef smartbus_sink *sink
    cdef dict clients              # local client id -> client object
    cdef cython.pymutex _lock      # sink's creation and close, changes of clients
    cdef object global_callback    # NET: Client.initialize(global_connect_callback)
    cdef bint _from_parent         # its SDK sink stayed in the parent (os.fork)
    cdef smartbus_sink *_sdk_sink(self) except? NULL
    cdef _register(self, int client_id, NativeClient client)
    cdef _unregister(self, NativeClient client)
    cdef _forked(self)
    cdef void dispatch(self, const smartbus_event *evs, int count) noexcept
    cdef _event(self, const smartbus_event *e)
    cdef _flow_event(self, NativeClient client, const smartbus_event *e)


cdef class Router:
    cdef smartbus_router *_r
    cdef int _inflight             # calls using _r (handle.h: close waits for them)
    cdef readonly int port
    cdef readonly int unit_id
