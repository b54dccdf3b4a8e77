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
 * One thread: smartbus_router_run() runs a loop on the poller (platform.h:
 * epoll on Linux, poll() elsewhere) until smartbus_router_stop()
 * (thread-safe, async-signal-safe) wakes it.  Each turn: read every
 * readable connection once and handle all complete packets, accept new
 * connections, then write with one send() each connection that has bytes
 * to write and is not known to be full; packets produced while handling
 * input are only appended to out buffers (batched writes, no per-message
 * allocation: buffers grow and are reused).  A turn's work is proportional
 * to the connections that are active in it, not to all of them: the
 * poller keeps each connection's interest (changed only when it changes),
 * connections to write are listed as bytes are queued to them, and the
 * deadlines (registration, stall, drain) are kept in lists in deadline
 * order, of which only the heads are looked at.  Only a turn in which
 * connections closed walks them all (the departure is announced to every
 * client anyway).
 *
 * Registration (cmdtype 0 cmd 1; layouts 6025 / 6053 / 5961 accepted on
 * either listener): a TCP client's unit is its head src_unit and must be
 * 16..47 (else -12); a client on the Unix listener always gets the
 * router's unit.  Credentials are checked when the configuration sets a
 * user (-4 empty user, -5 wrong user, -6 wrong password; a password needs
 * a user).  A (unit, client id) already registered gives -10 to the
 * newcomer.  Refused connections are closed after the ack has been flushed.
 *
 * Before the registration (until the registration packet has been
 * handled: packets parsed after it, even from the same read, are judged
 * as a registered client's) only a registration counts: anything else is
 * dropped unanswered (dropped_unregistered), and a head announcing more
 * than the largest registration layout (6053 bytes) closes the connection
 * (protocol_errors), so an unregistered peer holds one read buffer at
 * most.  A connection not registered registration_timeout_ms after it was
 * accepted is closed (registration_timeouts): silent and half-sent peers
 * do not stay.  Beyond max_connections connections a newcomer is closed at
 * once (rejected_connections); so is one that arrives when no file
 * descriptor is left (a spare descriptor is given up to accept and close
 * it, so that it sees a clean close instead of waiting in the backlog).
 *
 * Routing: dst_client 0xFF = every registered client at dst_unit whose type
 * is dst_type (not the sender); otherwise the client registered as
 * (dst_unit, dst_client), whatever its type.  Forwarded packets keep every
 * head byte except the source triple, stamped with the sender's registered
 * (type, unit, client) so that nobody speaks for another client, and
 * packet_size, which becomes 20 + datalen (the client's padding is
 * dropped).  routed_msgs / routed_bytes count each delivered copy (payload
 * bytes).  cmdtype 1 cmd 9 from clients (global-connect events) is dropped
 * (dropped_forged): only the router reports arrivals and departures.
 * cmdtype 1 cmd 10 from clients (global-connect answers) is absorbed and
 * counted in no statistic: the router itself reports the existing clients
 * to a newcomer, forwarding the answers would report them twice.
 *
 * Bounded memory: one budget per connection for everything queued to it.
 *  - max_out_bytes (B) is the bound of routed data.  A connection becomes
 *    CONGESTED when its unsent bytes reach B and stays so until they drain
 *    below B / 2 (hysteresis).
 *  - A packet for a congested destination is not taken: its SENDER is
 *    paused with the packet left in its read buffer (paused_reads counts
 *    each pause): the router stops parsing its input and polling it until
 *    that destination is no longer congested or has been closed, then
 *    routes the packet again.  A broadcast waits until none of its
 *    destinations is congested.  A packet is at most B bytes (a larger head
 *    closes its sender's connection, protocol_errors), so routed data
 *    stays below 2 B.
 *  - Heartbeats of a congested client are not answered: it has at least
 *    B / 2 bytes coming, which keep its link alive as well (NET.md §5.4).
 *    Nor is more than one heartbeat per connection per hb_answer_ms: any
 *    byte keeps a link alive, and the answers of idle clients were most of
 *    an idle router's system time.
 *  - The router's other packets (registration ack, global events) are
 *    queued within the budget, 2 B + RT_CONTROL_HEADROOM; a connection they
 *    would push past it is disconnected (stalled_disconnects).
 *  - Stall rule: a connection that became congested and is not below B / 2
 *    stall_timeout_ms later is disconnected (stalled_disconnects), like any
 *    other disconnect (cmd 9 status 0 to the remaining clients).  Progress
 *    is judged against the backlog, not by "any write": a peer that drains
 *    slower than B / 2 per stall_timeout_ms is cut.
 *  - Read buffers hold at most one read (>= 64 KiB) plus one packet; a
 *    connection holds one only while it has unhandled bytes (an emptied
 *    one becomes the router's single spare, or is freed).
 *  - An out buffer larger than RT_OUT_IDLE_KEEP that was emptied is freed
 *    RT_OUT_IDLE_MS later if it is empty then (a newcomer's burst of
 *    global-connect answers, a receiver that stopped): an idle connection
 *    costs its read buffer and its struct, not the largest burst it ever
 *    had.  A busy one regrows it at most once per RT_OUT_IDLE_MS.
 * With the defaults (B = 16 MiB) one peer costs the router at most about
 * 3 B, whatever it sends or reads.
 */
#ifndef ROUTER_INTERNAL_H
#define ROUTER_INTERNAL_H

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

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

/* A place in one of the router's lists of connections: intrusive, circular
 * around a head node (whose peer is NULL), so that joining and leaving cost
 * the same whatever the length.  next == NULL: in no list. */
typedef struct rt_node {
    struct rt_node *prev, *next;
    struct rt_peer *peer;
} rt_node;

/* one client connection */
typedef struct rt_peer {
    int fd;
    uint8_t ipc;                  /* accepted on the Unix listener */
    uint8_t registered;
    uint8_t dead;                 /* closed; freed by the sweep at the end of the turn */
    uint8_t closing;              /* refused: close once the out buffer is flushed */
    uint8_t draining;             /* refused, flushed, write side shut: discard input until EOF */
    uint8_t congested;            /* out buffer reached the bound, not yet below half */
    uint8_t type, unit, client;   /* identity once registered */
    unsigned interest;            /* what the poller watches it for (SB_POLL_*) */
    struct rt_peer *blocked_on;   /* paused sender: the destination it waits for */
    int64_t stall_ref;            /* congested since (ms) */
    int64_t drain_until;          /* draining: close at the latest then */
    int64_t register_by;          /* not registered: close at the latest then */
    int64_t answer_heartbeat_at;  /* its heartbeats are answered from then on (ms) */
    rt_node deadline;             /* in r->registering (not registered) or r->draining */
    rt_node stall;                /* in r->stalls while congested */
    rt_node writer;               /* in r->to_write: bytes to write this turn */
    rt_node paused;               /* in blocked_on->blocked_senders while paused */
    rt_node blocked_senders;      /* head: the senders paused on this one */
    rt_node idle;                 /* in r->idle_out: a large out buffer was emptied */
    int64_t idle_at;              /* ... and is freed then if empty */
    sb_buf in, out;
    char info[257];               /* add_info from the registration */
    rt_peer_mon mon;              /* monitoring (router_monitor.c): loop thread only */
} rt_peer;

/* pieces of one run at most (a piece ends where a sender's padding was) */
#define RT_RUN_PIECES 64

/* A run (router_route.c): consecutive packets of one sender to one
 * destination whose queue was empty, stamped in place in the sender's read
 * buffer and written from there with one sendmsg() when the run ends (at
 * the end of the sender's input, or before anything else is queued to that
 * destination); what the socket does not take is copied to the out buffer,
 * as if it had been queued.  At most max_out bytes: the budget holds. */
typedef struct rt_run {
    rt_peer *to;                  /* NULL: no run */
    struct iovec piece[RT_RUN_PIECES];
    int npieces;
    size_t bytes;
} rt_run;

struct smartbus_router {
    uint8_t unit;
    int auth;                     /* credentials configured */
    char *user, *password;
    size_t max_out;               /* B: routed data bound, largest packet */
    size_t budget;                /* everything queued to one connection */
    int64_t stall_ms, register_ms;
    int64_t hb_answer_ms;         /* at most one heartbeat answer per connection per */
    size_t max_conns;
    int spare_fd;                 /* given up to close newcomers when no fd is left */

    int tcp_fd, ipc_fd, port;
    char *ipc_path;               /* the socket file we created (unlinked on free) */
    dev_t ipc_dev;
    ino_t ipc_ino;

    sb_waker waker;
    int stop;                     /* atomic */
    int64_t now;
    int64_t accept_pause_until;

    sb_poller poller;
    int listening;                /* the listeners are watched (not in an accept pause) */
    rt_peer **peers;              /* in order of arrival */
    size_t npeers, cappeers;
    size_t ndead;                 /* closed this turn: the sweep compacts peers[] */
    sb_buf spare_in;              /* an empty read buffer, for the next connection to read */
    rt_run run;                   /* forwarded from a read buffer (router_route.c) */
    /* lists (rt_node heads), each in deadline order where it has one: the
     * deadlines are the time of joining plus a constant */
    rt_node registering;          /* not registered: by register_by */
    rt_node draining;             /* refused and flushed: by drain_until */
    rt_node stalls;               /* congested: by stall_ref */
    rt_node to_write;             /* bytes to write this turn */
    rt_node resumed;              /* senders whose destination drained or closed */
    rt_node idle_out;             /* large empty out buffers: by idle_at */

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

/* ---- lists of connections ------------------------------------------------- */

static inline void rt_list_init(rt_node *head)
{
    head->prev = head->next = head;
    head->peer = NULL;
}

static inline void rt_node_unlink(rt_node *n)
{
    if (!n->next) return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

/* appends n (taken out of any list it was in) */
static inline void rt_list_push(rt_node *head, rt_node *n)
{
    rt_node_unlink(n);
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

/* the first connection of the list, or NULL */
static inline rt_peer *rt_list_first(const rt_node *head)
{
    return head->next->peer;
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

/* ---- packet heads (the read and parse paths) ------------------------------ */

/* an emptied out buffer above this is freed after RT_OUT_IDLE_MS without writes */
#define RT_OUT_IDLE_KEEP ((size_t)16 << 10)
#define RT_OUT_IDLE_MS 1000
/* free space in a read buffer before each read */
#define RT_READ_MIN ((size_t)64 << 10)
/* the router keeps an emptied read buffer up to this size as its spare */
#define RT_SPARE_IN_MAX (2 * RT_READ_MIN)
/* the largest packet an unregistered connection may announce: the largest
 * registration layout */
#define RT_UNREGISTERED_MAX_PACKET SBW_REG_NET_C_SIZE
/* the budget beyond twice the routed-data bound, for the router's own
 * packets (some 200 global events) */
#define RT_CONTROL_HEADROOM ((size_t)64 << 10)

/* the largest packet c may send now */
static inline size_t rt_packet_limit(const smartbus_router *r, const rt_peer *c)
{
    return c->registered ? r->max_out : RT_UNREGISTERED_MAX_PACKET;
}

/* Decodes the head at p (n bytes available) of a packet from c: SBW_OK,
 * or an SBW_E* code for a malformed head or one over c's size limit. */
static inline int rt_get_head(const smartbus_router *r, const rt_peer *c, const uint8_t *p,
                              size_t n, sbw_head *h)
{
    int rc = sbw_get_head(p, n, h);
    if (rc == SBW_OK && (size_t)h->packet_size > rt_packet_limit(r, c)) rc = SBW_ESIZE;
    return rc;
}

/* after appending to c's out buffer: to be written this turn (unless the
 * poller watches it for room: it is full), congested from the bound on
 * (starts the stall clock) */
static inline void out_appended(smartbus_router *r, rt_peer *c)
{
    if (!c->writer.next && !(c->interest & SB_POLL_OUT)) rt_list_push(&r->to_write, &c->writer);
    if (!c->congested && out_pending(c) >= r->max_out) {
        c->congested = 1;
        c->stall_ref = r->now;
        rt_list_push(&r->stalls, &c->stall);
    }
}

/* ---- connections (router_peer.c) ----------------------------------------- */

/* Accepts what is pending on listener lfd (ipc: the Unix one). */
SB_HIDDEN void sb_peer_accept(smartbus_router *r, int lfd, int ipc);
/* Makes connected socket fd a connection of the router (ipc: as if
 * accepted on the Unix listener; sa/salen: accept()'s peer address, or
 * NULL); closes fd and returns -1 when out of memory.  sb_peer_accept's
 * second half, and the fuzzer's door. */
SB_HIDDEN int  sb_peer_adopt(smartbus_router *r, int fd, int ipc, const struct sockaddr *sa,
                             socklen_t salen);
/* Reads once into c->in: 1 when bytes came, 0 when none (would block),
 * -1 when c must be disconnected (end of stream, error, bad head, no
 * memory; *why says which). */
SB_HIDDEN int  sb_peer_read(smartbus_router *r, rt_peer *c, const char **why);
/* Counts a connection closed for its packet head (rt_get_head failed);
 * returns the reason to close it with. */
SB_HIDDEN const char *sb_peer_bad_head(smartbus_router *r);
/* c->in was handled to its end: the router takes the buffer back as its
 * spare (the next connection to read uses it) or frees it, so that an idle
 * connection holds no read buffer */
SB_HIDDEN void sb_peer_input_empty(smartbus_router *r, rt_peer *c);
/* 1 when c->in holds a complete packet (or a bad head) to handle */
SB_HIDDEN int  sb_peer_input_ready(const smartbus_router *r, const rt_peer *c);
/* Writes c->out with one send(); ends congestion once below half the
 * bound (the senders paused on c resume).  -1 when c must be disconnected
 * (*why says why), else 0. */
SB_HIDDEN int  sb_peer_write(smartbus_router *r, rt_peer *c, const char **why);
/* Tells the poller what c waits for now: input unless refused or paused
 * (a draining one: its end), room to write while it has bytes to write.
 * -1 when the poller refused (then disconnect c), else 0. */
SB_HIDDEN int  sb_peer_watch(smartbus_router *r, rt_peer *c);
/* Pauses sender s until destination `full` is no longer congested or has
 * closed (it is then listed in r->resumed). */
SB_HIDDEN void sb_peer_pause(rt_peer *s, rt_peer *full);
/* A refused peer whose ack was flushed and write side shut: discards its
 * input; -1 once it closed (or failed): then close it. */
SB_HIDDEN int  sb_peer_drain(rt_peer *c);
/* Closes c's socket and marks it dead (freed by the sweep), takes it out of
 * every list; senders paused on c resume.  Its registration is the
 * caller's (sb_route_disconnect). */
SB_HIDDEN void sb_peer_close(smartbus_router *r, rt_peer *c, const char *why);
/* frees the connections closed during this turn */
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

/* ---- the loop (router_loop.c) --------------------------------------------- */

/* One turn of the run loop: waits for at most *timeout_ms (-1: no limit)
 * and handles what came; then sets *timeout_ms to the next turn's.  0, or
 * an SMARTBUS_ERR_* code (the poller failed).
 * smartbus_router_run's body, and the fuzzer's. */
SB_HIDDEN int sb_router_turn(smartbus_router *r, int *timeout_ms);

/* ---- the bus (router_route.c) --------------------------------------------- */

/* Handles the complete packets buffered in c->in until it is empty, c is
 * paused, refused or dead. */
SB_HIDDEN void sb_route_input(smartbus_router *r, rt_peer *c);
/* Disconnects c: closes it and, when it was registered, forgets it and
 * tells the others (cmd 9 status 0).  Nothing when c is dead already. */
SB_HIDDEN void sb_route_disconnect(smartbus_router *r, rt_peer *c, const char *why);

#endif /* ROUTER_INTERNAL_H */
