/*
 * smartbus_ext.h - this SDK's API beyond the vendor facades: client
 * instances, event sinks that deliver events in batches, and the router
 * (the local SmartBus server).  The SmartBusNetCli_* / SmartBusIpcCli_*
 * facades are thin layers over this API; the Python binding uses it
 * directly.
 *
 * Threads: one I/O thread per process serves every client (all sockets,
 * timers, heartbeats, reconnects).  It appends events to the client's
 * sink, and each sink has its own callback thread that hands them to the
 * user in batches; an inline sink (smartbus_sink_new_inline, C callers
 * only) has none: the I/O thread runs its callback itself.
 */
#ifndef SMARTBUS_EXT_H
#define SMARTBUS_EXT_H

#include <stddef.h>
#include <stdint.h>

#include "smartbus.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- events ----------------------------------------------------------- */

#define SMARTBUS_EV_CONNECT         1  /* code = ack (0 ok, else error), unit_id = access point */
#define SMARTBUS_EV_DISCONNECT      2
#define SMARTBUS_EV_DATA            3  /* head, data/size (ping and ping answers included) */
#define SMARTBUS_EV_FLOW_ACK        4  /* head or NULL, project_id, invoke_id, code, text = msg */
#define SMARTBUS_EV_FLOW_RESULT     5  /* head or NULL, project_id, invoke_id, code, text = JSON */
#define SMARTBUS_EV_GLOBAL_CONNECT  6  /* unit_id, g_client_id, g_client_type, g_ap_unit_id,
                                          code = status, text = add_info */
#define SMARTBUS_EV_TRACE           7  /* code = 0 info / 1 error, text */

typedef struct smartbus_event {
    int type;                          /* SMARTBUS_EV_* */
    int client_id;                     /* local client id the event is for */
    int code;
    int unit_id;
    int invoke_id;
    int g_client_id, g_client_type, g_ap_unit_id;
    const unsigned char *head;         /* the 20 head bytes as received, or NULL */
    const unsigned char *data;         /* payload (NULL when size is 0) */
    int size;
    const char *project_id;            /* NUL-terminated, or NULL */
    const char *text;                  /* NUL-terminated, or NULL */
    int text_len;
} smartbus_event;

/* Called on the sink's callback thread (an inline sink's: on the I/O
 * thread) with up to `count` events; the
 * pointers inside the events are valid until the callback returns.  After
 * the last batch of a burst, when no event is queued any more, it is called
 * once with events = NULL and count = 0, before the thread sleeps: a caller
 * that keeps a lock of its own across batches (the Python binding keeps the
 * GIL) releases it then.  The thread's very last call has events = NULL
 * and count = -1 (per-thread state can be freed).  `arg` may already be
 * gone for that last call when the sink was freed from its own callback:
 * do not use it when count <= 0. */
typedef void (*smartbus_batch_cb)(void *arg, const smartbus_event *events, int count);

typedef struct smartbus_sink smartbus_sink;

/* max_queued_bytes: events held before the I/O thread stops reading the
 * sockets of this sink's clients (back-pressure); 0 = default (32 MiB). */
SMARTBUS_API smartbus_sink *smartbus_sink_new(smartbus_batch_cb cb, void *arg,
                                              size_t max_queued_bytes);
/* An inline sink: its callback runs on the process's single I/O thread,
 * the one thread that serves every client's sockets, timers and
 * heartbeats.  The callback must be short and must not block: while it
 * runs no client of the process reads, writes or heartbeats.  In exchange
 * an event reaches it without waking a second thread; a ping it sends on
 * the client it got the events of is written from within the call, and
 * anything else it sends there as soon as it returns (a ping sent from
 * the callback that got the previous answer costs no thread hand-off).
 * The contract of smartbus_batch_cb holds: batches of up to the same size
 * in arrival order, count 0 once after each read's events (when the I/O
 * thread is done with what it read), count -1 once at the end (from
 * smartbus_sink_free).  Nothing queues up: each read is delivered before
 * the next one (back-pressure is the callback's own time).
 * From the callback every call of this API may be made: sends, pings,
 * invokes (queued and written right after it), smartbus_client_new /
 * _start, smartbus_client_free (returns at once, see there) and
 * smartbus_sink_free (never waits there); not fork().  NULL when cb is
 * NULL or out of memory. */
SMARTBUS_API smartbus_sink *smartbus_sink_new_inline(smartbus_batch_cb cb, void *arg);
/* Stops the callback thread (after the batch in progress) and frees the
 * sink; undelivered events are discarded.  Free the sink's clients first.
 * Safe to call from the sink's own callback: the thread then ends itself.
 * Waits at most timeout_ms for a callback in progress (then leaks the
 * thread rather than hang); < 0 waits forever.  Called from an inline
 * callback (on the I/O thread) it never waits: a callback in progress
 * (this sink's own, or its thread's) ends first and its sink is freed
 * after it.  In the child of a fork(), a sink made before the fork never
 * runs and this leaves it alone. */
SMARTBUS_API void smartbus_sink_free(smartbus_sink *sink, int timeout_ms);
/* Events queued and not yet delivered (bytes). */
SMARTBUS_API size_t smartbus_sink_pending(smartbus_sink *sink);

/* ---- clients ---------------------------------------------------------- */

#define SMARTBUS_KIND_NET 0
#define SMARTBUS_KIND_IPC 1

typedef struct smartbus_client_config {
    int kind;                          /* SMARTBUS_KIND_NET / _IPC */
    int unit_id;                       /* NET: this process's unit, 16..47 */
    int client_id;                     /* 0..255 */
    int client_type;                   /* 0..255 (IPC: >= 2) */
    const char *master_ip;             /* NET */
    int master_port;
    const char *slave_ip;              /* NET: NULL/"" or port 0xFFFF = none */
    int slave_port;
    const char *ipc_path;              /* IPC: NULL = $SMARTBUS_IPC_PATH or the default */
    const char *user, *password, *info;
    size_t max_send_bytes;             /* send queue bound in bytes; 0 = default (64 MiB) */
    int max_send_msgs;                 /* send queue bound in messages; 0 = default (100000) */
} smartbus_client_config;

typedef struct smartbus_client smartbus_client;

/* Checks the configuration and creates a client (not yet connecting).
 * Returns 0 or an SMARTBUS_ERR_* code. */
SMARTBUS_API int smartbus_client_new(const smartbus_client_config *cfg, smartbus_sink *sink,
                                     smartbus_client **out);
/* Starts connecting (returns at once); reconnects by itself afterwards. */
SMARTBUS_API int smartbus_client_start(smartbus_client *c);
/* Closes the sockets, waits until the I/O thread has let go, frees.
 * From an inline callback (on the I/O thread, which cannot wait for
 * itself) it returns at once: events the client received before the call
 * may still be delivered in this turn of the I/O thread, none after it;
 * the I/O thread lets go of the client between two turns (what it had
 * queued is still written, as after any free) and frees it.  Do not use
 * the pointer after the call.
 * fork(): the child starts its own I/O thread with its first client; the
 * clients made before the fork belong to the parent: the child must not
 * use them (their sockets are closed in the child), and this leaves them
 * alone there (returns at once, their memory leaked). */
SMARTBUS_API void smartbus_client_free(smartbus_client *c);

/* Sends; the checks and return codes of NET.md §6.1 / IPC.md §4.2. */
SMARTBUS_API int smartbus_client_send(smartbus_client *c, int cmd, int cmdtype, int dst_unit,
                                      int dst_client, int dst_type, const void *data, int size);
SMARTBUS_API int smartbus_client_ping(smartbus_client *c, int dst_unit, int dst_client,
                                      int dst_type, const void *data, int size);
/* Returns the invoke id (> 0) or an error code.  Invoke ids start at a
 * random value in 1..2^30 per process (from /dev/urandom) and count up by
 * one (after 2^31-1 comes 1); acks and results are accepted only from the
 * IPSC the invoke went to. */
SMARTBUS_API int smartbus_client_invoke_flow(smartbus_client *c, int server_unit,
                                             int process_index, const char *project_id,
                                             const char *flow_id, int mode, int timeout_ms,
                                             const char *params, int params_len);
/* Returns the notify id (> 0) or an error code. */
SMARTBUS_API int smartbus_client_notify(smartbus_client *c, int server_unit, int process_index,
                                        const char *project_id, const char *title, int mode,
                                        int expires_ms, const char *params, int params_len);
/* For tests that compare invokes with captures of the vendor client,
 * whose ids count from 1: the next invoke id of this process is `first`
 * (> 0); 0 goes back to a random start. */
SMARTBUS_API void smartbus_invoke_ids_start_at(int32_t first);
/* Send a flow ack (cmd 13: code 1 = started, else an error; text = message)
 * or a flow result (cmd 12: text = the result JSON) back to an invoker:
 * what an IPSC does (used by smartbus.ipsc.FlowServer).  0 or an error code. */
SMARTBUS_API int smartbus_client_flow_ack(smartbus_client *c, int dst_unit, int dst_client,
                                          int dst_type, const char *project_id, int invoke_id,
                                          int code, const char *text, int text_len);
SMARTBUS_API int smartbus_client_flow_result(smartbus_client *c, int dst_unit, int dst_client,
                                             int dst_type, const char *project_id,
                                             int invoke_id, int code, const char *text,
                                             int text_len);

/* smartbus_client_send() / _ping() with flags:
 * - SMARTBUS_SEND_PING: a ping (cmd and cmdtype are ignored);
 * - SMARTBUS_SEND_TRYLOCK: when another thread holds the client's lock
 *   (the I/O thread taking the queue, another sender), return
 *   SMARTBUS_ERR_WOULDBLOCK at once instead of waiting, and nothing is
 *   queued.  For callers that must not block while they hold a lock of
 *   their own: the Python binding sends small payloads this way without
 *   releasing the GIL, and releases it only to retry a WOULDBLOCK. */
#define SMARTBUS_SEND_PING          1
#define SMARTBUS_SEND_TRYLOCK       2
#define SMARTBUS_ERR_WOULDBLOCK   -100   /* SDK-only code, never from the vendor API */
SMARTBUS_API int smartbus_client_send_ex(smartbus_client *c, int cmd, int cmdtype, int dst_unit,
                                         int dst_client, int dst_type, const void *data,
                                         int size, int flags);

/* Sends many data packets with one lock and one wake-up: `count` payloads
 * given as pointers and sizes, all to the same destination.  Returns the
 * number queued (stops at the first failure, whose code is stored in
 * *err, or 0 when all were queued). */
SMARTBUS_API int smartbus_client_send_many(smartbus_client *c, int cmd, int cmdtype,
                                           int dst_unit, int dst_client, int dst_type,
                                           const void *const *datas, const int *sizes,
                                           int count, int *err);

/* Current unit id (NET: configured; IPC: learnt from the ack, -1 before). */
SMARTBUS_API int smartbus_client_unit_id(smartbus_client *c);
/* Access point unit learnt from the last accepted registration, or -1. */
SMARTBUS_API int smartbus_client_ap_unit_id(smartbus_client *c);
/* 1 when at least one link is registered. */
SMARTBUS_API int smartbus_client_connected(smartbus_client *c);

typedef struct smartbus_client_stats {
    uint64_t sent_msgs, sent_bytes;    /* queued by the application */
    uint64_t recv_msgs, recv_bytes;    /* packets read from the server */
    uint64_t send_full;                /* sends refused with BUFF_FULL */
    uint64_t queued_msgs, queued_bytes;/* in the send queue now */
    uint64_t direct_msgs;              /* of sent_msgs: pings written by the calling
                                          thread on an idle link (no queue) */
} smartbus_client_stats;
SMARTBUS_API void smartbus_client_get_stats(smartbus_client *c, smartbus_client_stats *st);

/* ---- error codes ------------------------------------------------------- */

typedef struct smartbus_error_info {
    int code;                          /* an SMARTBUS_ERR_* value */
    const char *name;                  /* its name, "SMARTBUS_ERR_..." */
    const char *description;           /* what it means, short English text */
} smartbus_error_info;

/* Every code of SMARTBUS_ERROR_LIST (smartbus.h), in its order; stores
 * their number in *count.  The SDK-only SMARTBUS_ERR_WOULDBLOCK is not
 * among them: it never leaves the SDK's callers (see above). */
SMARTBUS_API const smartbus_error_info *smartbus_error_table(int *count);

/* ---- the build ---------------------------------------------------------- */

/* The system facilities this build chose (src/platform.h), as
 * "build=native|portable waker=eventfd|pipe
 *  nosigpipe=MSG_NOSIGNAL|SO_NOSIGPIPE|MSG_NOSIGNAL+SO_NOSIGPIPE|none
 *  timedwait=monotonic|realtime" (one line, single spaces). */
SMARTBUS_API const char *smartbus_platform(void);

/* ---- the router (local SmartBus server) -------------------------------- */

typedef struct smartbus_router_config {
    const char *host;                  /* TCP listen address (NULL: 127.0.0.1) */
    int port;                          /* 0: pick a free port; < 0: no TCP listener */
    int unit_id;                       /* 0..15 */
    const char *user, *password;       /* when set, registrations must match */
    const char *ipc_path;              /* Unix socket path; NULL: no IPC listener */
    size_t max_out_bytes;              /* per-connection send queue bound, also the
                                          largest packet forwarded; at least
                                          SMARTBUS_ROUTER_MIN_OUT_BYTES (0: default) */
    int stall_timeout_ms;              /* disconnect a peer whose queue, once over the
                                          bound, is not below half of it this long
                                          after (0: default) */
    int registration_timeout_ms;       /* close a connection not registered this long
                                          after it was accepted (0: default) */
    int max_connections;               /* newcomers beyond this many connections are
                                          closed at once (0: default) */
    int heartbeat_answer_interval_ms;  /* a connection's heartbeats are answered at
                                          most once per this interval (0: default) */
} smartbus_router_config;

/* the defaults of the fields above (0 in the configuration) */
#define SMARTBUS_ROUTER_DEFAULT_MAX_OUT_BYTES        ((size_t)16 << 20)
#define SMARTBUS_ROUTER_DEFAULT_STALL_TIMEOUT_MS     10000
#define SMARTBUS_ROUTER_DEFAULT_REGISTRATION_TIMEOUT_MS 5000
#define SMARTBUS_ROUTER_DEFAULT_MAX_CONNECTIONS      1024
/* Clients take any byte received as a sign of life and drop a link after
 * 14 s without one (NET.md §5.4); an answer every 5 s keeps an idle link up
 * with room to spare, and saves the router a write (and the client a
 * wake-up) for 4 of every 5 heartbeats: with thousands of idle clients
 * those answers were most of the router's work (benchmarks/README.md). */
#define SMARTBUS_ROUTER_DEFAULT_HEARTBEAT_ANSWER_INTERVAL_MS 5000
/* the smallest max_out_bytes (also the largest packet: a registration and
 * its ack fit) */
#define SMARTBUS_ROUTER_MIN_OUT_BYTES ((size_t)16 << 10)

typedef struct smartbus_router smartbus_router;

typedef struct smartbus_router_stats {
    uint64_t accepted, registered, refused, closed;
    uint64_t routed_msgs, routed_bytes;
    uint64_t dropped_no_route;         /* destination not connected */
    uint64_t dropped_unregistered;     /* sender not registered */
    uint64_t heartbeats;               /* received from registered clients */
    uint64_t stalled_disconnects;      /* peers closed by the stall rule */
    uint64_t paused_reads;             /* times a sender was paused by back-pressure */
    int clients;                       /* registered now */
    uint64_t registration_timeouts;    /* connections closed: not registered in time */
    uint64_t rejected_connections;     /* newcomers closed at once: too many connections
                                          or no file descriptor left */
    uint64_t protocol_errors;          /* connections closed for a bad packet head or a
                                          packet over the size limit */
    uint64_t dropped_forged;           /* global-connect events (cmd 9) sent by clients:
                                          only the router originates them */
    uint64_t heartbeat_answers;        /* heartbeats answered (see
                                          heartbeat_answer_interval_ms) */
} smartbus_router_stats;

/* Creates the router and binds its listeners (so the port is known).
 * Returns 0, or an error code with a message in err. */
SMARTBUS_API int smartbus_router_new(const smartbus_router_config *cfg, smartbus_router **out,
                                     char *err, size_t errlen);
SMARTBUS_API int smartbus_router_port(const smartbus_router *r);
/* Runs the event loop on the calling thread until smartbus_router_stop(). */
SMARTBUS_API int smartbus_router_run(smartbus_router *r);
/* Thread-safe and async-signal-safe. */
SMARTBUS_API void smartbus_router_stop(smartbus_router *r);
SMARTBUS_API void smartbus_router_free(smartbus_router *r);
SMARTBUS_API void smartbus_router_get_stats(smartbus_router *r, smartbus_router_stats *st);

/* One connection of the router, as smartbus_router_snapshot() reports it. */
typedef struct smartbus_router_conn {
    int registered;                    /* 0: connected, not (yet) registered */
    int ipc;                           /* accepted on the Unix listener */
    int type, unit, client;            /* identity once registered */
    int paused;                        /* not read: a destination it feeds is full */
    int congested;                     /* its out queue reached the bound */
    char peer[64];                     /* TCP "host:port"; IPC "pid N" where known */
    char info[257];                    /* add_info of its registration */
    uint64_t msgs_in, bytes_in;        /* packets received (all kinds) / bytes read */
    uint64_t msgs_out, bytes_out;      /* packets queued for it / bytes written to it */
    uint64_t queued_bytes;             /* out queue: not yet written */
    uint64_t buffered_bytes;           /* read, not yet handled (a paused sender's) */
    int64_t connected_ms;              /* time since it was accepted */
} smartbus_router_conn;

/* A consistent picture of the router, safe from any thread while it runs
 * (not concurrently with smartbus_router_free): its statistics (st, may be
 * NULL) and up to `cap` of its connections, in accept order.  The loop
 * thread copies them between two turns, woken for it; when the loop is
 * not running the caller copies them itself.  Returns the number of
 * connections (more than cap: call again with room for them all), or
 * SMARTBUS_ERR_TIMEOUT when the loop did not answer within timeout_ms. */
SMARTBUS_API int smartbus_router_snapshot(smartbus_router *r, smartbus_router_stats *st,
                                          smartbus_router_conn *conns, int cap, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* SMARTBUS_EXT_H */
