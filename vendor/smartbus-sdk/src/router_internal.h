/*
 * router_internal.h - what the files of the router share and nobody else
 * sees: a connection (rt_peer), the router, its out-buffer accounting, and
 * the functions each file offers the others.
 *
 * The router: a local SmartBus server (access point)
 * that NET clients reach over TCP and IPC clients over a Unix-domain stream
 * socket (NET.md §13, IPC.md §7.2).  It registers clients, answers their
 * heartbeats, reports connects and disconnects with global-connect events
 * and routes every other packet by its destination triple.
 *
 * The files, one job each; calls go one way only (router_loop ->
 * router_route -> router_peer; router_loop and router.c -> router_peer):
 *   router.c        creation (configuration, listeners), free, port, stats
 *   router_loop.c   the run loop, as named phases, and stop
 *   router_route.c  registration, routing, heartbeat answers, global-connect
 *                   events, disconnects
 *   router_peer.c   a connection's bytes: accept, read, write, drain the
 *                   refused, free the dead
 *   router_monitor.c  snapshots for monitoring: connections and counters,
 *                   copied by the loop thread on request
 *
 * One thread: smartbus_router_run() runs a poll() loop until
 * smartbus_router_stop() (thread-safe, async-signal-safe) wakes it.  Each
 * iteration: read every readable connection once and handle all complete
 * packets, accept new connections, then write each connection's out buffer
 * with one send(); packets produced while handling input are only appended
 * to out buffers (batched writes, no per-message allocation: buffers grow
 * and are reused).
 *
 * Registration (first packet, cmdtype 0 cmd 1; layouts 6025 / 6053 / 5961
 * accepted on either listener): a TCP client's unit is its head src_unit
 * and must be 16..47 (else -12); a client on the Unix listener always gets
 * the router's unit.  Credentials are checked when the configuration sets a
 * user or password (-4 empty user, -5 wrong user, -6 wrong password).  A
 * (unit, client id) already registered gives -10 to the newcomer.  Refused
 * connections are closed after the ack has been flushed.  Before the
 * registration only heartbeats are answered; anything else is dropped.
 *
 * Routing: dst_client 0xFF = every registered client at dst_unit whose type
 * is dst_type (not the sender); otherwise the client registered as
 * (dst_unit, dst_client), whatever its type.  Forwarded packets keep every
 * head byte except packet_size, which becomes 20 + datalen (the client's
 * padding is dropped).  routed_msgs / routed_bytes count each delivered
 * copy (payload bytes).  cmdtype 1 cmd 10 from clients (global-connect
 * answers) is absorbed and counted in no statistic: the router itself
 * reports the existing clients to a newcomer, forwarding the answers would
 * report them twice.
 *
 * Back-pressure and bounded memory:
 *  - max_out_bytes (B) bounds each connection's out buffer.  A connection
 *    becomes CONGESTED when its unsent bytes reach B and stays so until
 *    they drain below B / 2 (hysteresis).
 *  - A packet routed to a destination is always appended (it has already
 *    been read); if the destination is then congested, the SENDER is
 *    paused: the router stops parsing its buffered packets and stops
 *    polling it for input (paused_reads counts each pause) until that
 *    destination is no longer congested or has been closed.  An out buffer
 *    can therefore exceed B by at most what the senders had already read
 *    (one read buffer each); read buffers hold at most one read (>= 64 KiB)
 *    plus one packet.
 *  - Control traffic made by the router (acks, heartbeat answers, global
 *    events) is always appended and pauses nobody.
 *  - A congested connection with no successful write for stall_timeout_ms
 *    is disconnected (stalled_disconnects), like any other disconnect
 *    (cmd 9 status 0 to the remaining clients).  The clock runs from the
 *    moment B is reached until the buffer is below B / 2, not only while it
 *    is >= B: otherwise a peer that stops reading with between B / 2 and B
 *    bytes queued would keep its senders paused forever.
 */
#ifndef ROUTER_INTERNAL_H
#define ROUTER_INTERNAL_H

#include <sys/socket.h>
#include <sys/types.h>

#include "sb_internal.h"

/* ---- monitoring (router_monitor.c) -----------------------------------------
 * What smartbus_router_snapshot() reports beyond the statistics.  A
 * connection's counters are plain fields that only the loop thread writes
 * and reads: the snapshot is copied by the loop thread itself, between two
 * turns, when a request is pending (one relaxed load per turn).  The
 * forwarding path pays one increment per packet received (msgs_in) and one
 * per packet queued (msgs_out); bytes are counted per read() and send(). */
typedef struct rt_peer_mon {
    uint64_t msgs_in, bytes_in;       /* packets handled / bytes read */
    uint64_t msgs_out, bytes_out;     /* packets queued / bytes written */
    int64_t since;                    /* accepted at (sb_now_ms) */
    char peer[64];                    /* its address, for people */
} rt_peer_mon;

/* the one pending snapshot request (fields under lock, pending atomic) */
typedef struct rt_monitor {
    int ready;                        /* lock and cond initialised */
    pthread_mutex_t lock;
    pthread_cond_t cond;              /* CLOCK_MONOTONIC: requests done, slot free */
    int running;                      /* the loop is in smartbus_router_run() */
    int busy;                         /* a request holds the slot */
    int pending;                      /* atomic: the loop has yet to serve it */
    int done, result;
    smartbus_router_stats *st;        /* the requester's buffers */
    smartbus_router_conn *conns;
    int cap;
} rt_monitor;

/* one client connection */
typedef struct rt_peer {
    int fd;
    uint8_t ipc;                  /* accepted on the Unix listener */
    uint8_t registered;
    uint8_t dead;                 /* closed; freed by the sweep at the end of the iteration */
    uint8_t closing;              /* refused: close once the out buffer is flushed */
    uint8_t draining;             /* refused, flushed, write side shut: discard input until EOF */
    uint8_t skip_write;           /* polled for POLLOUT and not writable */
    uint8_t congested;            /* out buffer reached the bound, not yet below half */
    uint8_t type, unit, client;   /* identity once registered */
    struct rt_peer *blocked_on;   /* paused sender: the destination it waits for */
    int64_t stall_ref;            /* congested: since / last successful write at (ms) */
    int64_t drain_until;          /* draining: close at the latest then */
    sb_buf in, out;
    char info[257];               /* add_info from the registration */
    rt_peer_mon mon;              /* monitoring (router_monitor.c): loop thread only */
} rt_peer;

struct smartbus_router {
    uint8_t unit;
    int auth;                     /* credentials configured */
    char *user, *password;
    size_t max_out;
    int64_t stall_ms;

    int tcp_fd, ipc_fd, port;
    char *ipc_path;               /* the socket file we created (unlinked on free) */
    dev_t ipc_dev;
    ino_t ipc_ino;

    sb_waker waker;
    int stop;                     /* atomic */
    int64_t now;
    int64_t accept_pause_until;

    rt_peer **peers;
    size_t npeers, cappeers;
    struct pollfd *pfds;
    size_t cappfds;

    smartbus_router_stats st;     /* written by the loop thread only, read relaxed */
    rt_monitor mon;               /* snapshot requests (router_monitor.c) */
    rt_peer *table[256][256];     /* registered clients by [unit][client id] */
};

/* ---- statistics (single writer: relaxed load + store, no lock prefix) --- */

#define ST_ADD(r, field, v) \
    __atomic_store_n(&(r)->st.field, sb_relaxed(&(r)->st.field) + (uint64_t)(v), __ATOMIC_RELAXED)

static inline void st_clients(smartbus_router *r, int delta)
{
    __atomic_store_n(&r->st.clients, sb_relaxed(&r->st.clients) + delta, __ATOMIC_RELAXED);
}

/* ---- out buffers (inline: the per-message forwarding path) --------------- */

static inline size_t out_pending(const rt_peer *c)
{
    return c->out.len - c->out.off;
}

/* Room for n more bytes at out.len; reclaims written bytes before growing. */
static inline int out_reserve(rt_peer *c, size_t n)
{
    sb_buf *b = &c->out;
    if (b->cap - b->len >= n) return 0;
    if (b->off > 0 && b->off >= b->len - b->off) {
        sb_buf_compact(b);
        if (b->cap - b->len >= n) return 0;
    }
    return sb_buf_reserve(b, n);
}

/* after appending to c's out buffer: congested from the bound on (starts
 * the stall clock); returns 1 when c is congested */
static inline int out_appended(smartbus_router *r, rt_peer *c)
{
    if (!c->congested && out_pending(c) >= r->max_out) {
        c->congested = 1;
        c->stall_ref = r->now;
    }
    return c->congested;
}

/* ---- connections (router_peer.c) ----------------------------------------- */

/* Accepts what is pending on listener lfd (ipc: the Unix one). */
SB_HIDDEN void sb_peer_accept(smartbus_router *r, int lfd, int ipc);
/* Reads once into c->in: 1 when bytes came, 0 when none (would block),
 * -1 when c must be disconnected (end of stream, error, bad head, no
 * memory; *why says which). */
SB_HIDDEN int  sb_peer_read(rt_peer *c, const char **why);
/* 1 when c->in holds a complete packet (or a bad head) to handle */
SB_HIDDEN int  sb_peer_input_ready(const rt_peer *c);
/* Writes c->out with one send(); ends congestion once below half the
 * bound.  -1 when c must be disconnected (*why says why), else 0. */
SB_HIDDEN int  sb_peer_write(smartbus_router *r, rt_peer *c, const char **why);
/* A refused peer whose ack was flushed and write side shut: discards its
 * input; -1 once it closed (or failed): then close it. */
SB_HIDDEN int  sb_peer_drain(rt_peer *c);
/* Closes c's socket and marks it dead (freed by the sweep); senders paused
 * on c resume.  Its registration is the caller's (sb_route_disconnect). */
SB_HIDDEN void sb_peer_close(smartbus_router *r, rt_peer *c, const char *why);
/* frees the connections closed during this iteration */
SB_HIDDEN void sb_peers_sweep(smartbus_router *r);
/* frees one connection (its socket too, if still open) */
SB_HIDDEN void sb_peer_free(rt_peer *c);

/* ---- monitoring (router_monitor.c) ---------------------------------------- */

/* the request slot's lock and condition (router.c, at creation / free) */
SB_HIDDEN int  sb_monitor_init(smartbus_router *r);
SB_HIDDEN void sb_monitor_free(smartbus_router *r);
/* a new connection: since when, from where (sa: accept()'s address) */
SB_HIDDEN void sb_monitor_accepted(rt_peer *c, const struct sockaddr *sa, socklen_t salen);
/* the loop starts (1) or ends (0) running; serves a request left pending */
SB_HIDDEN void sb_monitor_running(smartbus_router *r, int running);
/* the loop, between two turns: copies the snapshot if one was requested */
SB_HIDDEN void sb_monitor_serve(smartbus_router *r);
static inline void sb_monitor_turn(smartbus_router *r)
{
    if (sb_relaxed(&r->mon.pending)) sb_monitor_serve(r);
}

/* ---- the bus (router_route.c) --------------------------------------------- */

/* Handles the complete packets buffered in c->in until it is empty, c is
 * paused, refused or dead. */
SB_HIDDEN void sb_route_input(smartbus_router *r, rt_peer *c);
/* Disconnects c: closes it and, when it was registered, forgets it and
 * tells the others (cmd 9 status 0).  Nothing when c is dead already. */
SB_HIDDEN void sb_route_disconnect(smartbus_router *r, rt_peer *c, const char *why);

#endif /* ROUTER_INTERNAL_H */
