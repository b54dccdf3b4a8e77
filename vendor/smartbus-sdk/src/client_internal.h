/*
 * client_internal.h - what the files of the client engine share and nobody
 * else sees: the client and link structures, the process-wide engine, and
 * the functions each file offers the others.
 *
 * Threads and data:
 * - Application threads call smartbus_client_send() & co. (sendq.c).  They
 *   append the encoded packet to the client's send queue under the client's
 *   lock (the producers' lock: the I/O thread takes it only for pending
 *   flows and after a lost link, see "the send queue's two halves") and
 *   wake the I/O thread only when the queue goes from empty to non-empty
 *   while the I/O thread sleeps in poll() (no system call per message).
 *   A ping on an idle link is written by the calling thread itself (no
 *   hand-off to the I/O thread): see "the direct-write token".
 * - The I/O thread (engine.c) owns every socket.  It takes a client's whole
 *   send queue (the half being filled) into the active link's write buffer
 *   and writes it with one send() (sendq.c, link.c); it reads big chunks,
 *   parses every complete
 *   packet, answers pings, heartbeats and global-connect events itself
 *   (link.c), settles pending flows (flows.c), and appends the events for
 *   the application to the client's sink (one sink lock per burst).
 * - The sink's callback thread delivers events to the application (sink.c);
 *   an inline sink's callback runs on the I/O thread itself, at the safe
 *   points where it calls sb_sink_deliver (right after each read, and
 *   after each turn's other work): a ping the callback sends on the client
 *   it got the events of is written from within the call (the direct-write
 *   token is offered meanwhile), what else it sends right after the read
 *   (sb_sendq_pump).
 *
 * The files, one job each; calls go one way only
 * (client -> engine -> link / sendq / flows, sendq -> link / flows,
 * link -> flows), but for sb_client_destroy (engine -> client: a client
 * freed from an inline callback is freed by the I/O thread):
 *   client.c  a client's life: configuration checks, new, free, getters
 *   engine.c  the I/O thread and the engine's life (attach, detach)
 *   link.c    one link: connect, register, heartbeat, read, parse, answer, write
 *   flows.c   the pending-flow table: start, timers, matching of acks and results
 *   sendq.c   the send API and the send queue (append; hand-off to the link)
 */
#ifndef CLIENT_INTERNAL_H
#define CLIENT_INTERNAL_H

#include <sys/un.h>

#include "sb_internal.h"

/* ---- a link: one connection of a client to a server ------------------------ */

typedef enum sb_link_state {
    LINK_OFF,                   /* not started, or closed for good by the client */
    LINK_WAIT,                  /* waiting for next_connect_at */
    LINK_CONNECTING,            /* non-blocking connect() in progress */
    LINK_OPEN,                  /* connected, registration sent */
    LINK_REGISTERED,            /* registration accepted */
    LINK_DEAD                   /* registration refused for good */
} sb_link_state;

typedef struct sb_link {
    int index;                  /* 0 master, 1 slave */
    int fd;
    sb_link_state state;
    char host[MAX_SMARTBUS_IPADDR_SIZE];
    int port;
    int64_t next_connect_at, next_heartbeat_at, last_rx_at, registered_at;
    int64_t hb_counter;
    int fail_reported;
    sb_buf rbuf;                /* received bytes; off = parse position */
    sb_buf wbuf;                /* bytes to write; off = written */
    size_t app_end;             /* wbuf[0, app_end): the application's packets (one send
                                   queue taken whole); the I/O thread's own follow */
} sb_link;

/* a pending flow invocation (flows.c) */
typedef struct sb_flow sb_flow;

struct smartbus_client {
    /* configuration (immutable after new) */
    int kind;
    int client_id, client_type;
    char ipc_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char user[65], password[129], info[257];
    size_t max_bytes;
    int max_msgs;
    smartbus_sink *sink;

    /* I/O thread state */
    sb_link links[2];
    int nlinks;
    int active;                 /* link carrying application traffic, -1 none */
    int64_t next_flow_check;
    int64_t linger_until;       /* closing: flush until then (0: not yet closing) */
    sb_buf resend;              /* whole packets of the application that a lost link had
                                   not begun to write: queued first again (sendq.c) */
    int resend_msgs;
    struct smartbus_client *next;

    /* shared */
    int unit_id;                /* NET: configured; IPC: learnt (atomic) */
    int ap_unit;                /* atomic */
    int registered;             /* registered links (atomic) */
    int started, closing, detached;   /* under sb_io_engine.lock */
    int reap;                   /* freed from an inline callback: the I/O thread frees it
                                   once let go (under sb_io_engine.lock) */
    unsigned epoch;             /* sb_io_engine.epoch when started */

    pthread_mutex_t lock;       /* the producers' lock: the half being filled, flows, stats */
    sb_buf sendq[2];            /* the send queue's two halves (below) */
    int sendq_n[2];             /* packets in each half (atomic; sb_sendq_count) */
    int fill;                   /* the half producers fill (atomic; the I/O thread flips it) */
    unsigned fill_seq;          /* odd while a producer appends (atomic; see below) */
    int half;                   /* the half the producer holding the lock fills */

    /* the direct-write token (see below; atomic) and what it covers */
    int direct;
    int direct_fd;              /* the idle link's socket, while offered */
    int direct_link;            /* its index */
    sb_buf direct_rest;         /* DIRECT_REST: the end of a packet the kernel took part of */
    sb_flow *flows;
    int flows_live, flows_used;
    smartbus_client_stats st;
};

/* the client's own unit (NET: configured; IPC: learnt from the ack) */
static inline int sb_own_unit(smartbus_client *c)
{
    return sb_load(&c->unit_id);
}

/* The head of every packet a client sends: its own address as source.
 * Inline: it is on the per-message send path. */
static inline sbw_head sb_client_head(smartbus_client *c, int cmd, int cmdtype, int dst_type,
                                      int dst_unit, int dst_client)
{
    sbw_head h = { .cmd = (uint8_t)cmd, .cmdtype = (uint8_t)cmdtype,
                   .src_type = (uint8_t)c->client_type, .src_unit = (uint8_t)sb_own_unit(c),
                   .src_client = (uint8_t)c->client_id, .dst_type = (uint8_t)dst_type,
                   .dst_unit = (uint8_t)dst_unit, .dst_client = (uint8_t)dst_client };
    return h;
}

/* ---- the send queue's two halves -------------------------------------------
 * Producers (application threads, serialised by the client's lock) append
 * to sendq[fill]; the I/O thread takes the queue without that lock: it
 * flips `fill` to the other, empty half, waits until no producer is still
 * appending to the old one (fill_seq: a producer makes it odd before it
 * reads `fill` and even when done, so once the I/O thread has flipped
 * `fill`, only a producer already inside can use the old half, and it is
 * the one fill_seq shows), then swaps the old half into the link's write
 * buffer.  The half being filled holds the whole queue (the other is empty
 * but for that moment), so its bounds are the queue's bounds, as before. */

/* ---- the direct-write token -------------------------------------------------
 * Who may write to the active link's socket.  The I/O thread owns the
 * socket (DIRECT_OFF) except while it sleeps in poll() (and while it runs
 * the inline callbacks of a read's events, link.c): just before, it
 * offers the token (DIRECT_IDLE, sb_link_offer) when the active link is
 * registered and has nothing to write and the send queue is empty; right
 * after poll() it takes it back (sb_link_reclaim), waiting for a writer
 * that holds it, before it touches any link (writes, heartbeats,
 * answers, closing).  So the socket cannot be closed or written by the
 * I/O thread while an application thread writes, and the descriptor
 * stays valid for as long as the token is out.  An application thread
 * sending a ping holds the client's lock (the producers' lock: the queue
 * is empty and stays empty, so nothing queued earlier is overtaken),
 * takes the token (DIRECT_IDLE -> DIRECT_WRITING) and writes the packet
 * with one non-blocking send(); nothing written: it queues the packet as
 * usual.  A partial write leaves the rest in direct_rest (DIRECT_REST)
 * and wakes the I/O thread, which writes it first (as its own bytes: a
 * packet the kernel took part of is never sent again).  Data sends always
 * go through the queue: a system call per message would cost throughput. */
enum { DIRECT_OFF, DIRECT_IDLE, DIRECT_WRITING, DIRECT_REST };

/* ---- the process-wide engine (engine.c) ------------------------------------ */

typedef struct sb_engine {
    pthread_mutex_t life;       /* serialises engine start / stop */
    pthread_mutex_t lock;       /* client lists */
    pthread_cond_t cond;        /* client detached */
    pthread_mutex_t sockets;    /* the I/O thread closes link sockets under it */
    smartbus_client *adds;      /* waiting to be adopted by the I/O thread */
    smartbus_client *live;      /* owned by the I/O thread */
    int nclients;
    int running, stop;
    int waker_ok;               /* waker opened (once per process; never closed) */
    sb_waker waker;
    pthread_t thread;
    int polling;                /* the I/O thread is (about to be) asleep */
    unsigned epoch;             /* fork()s this process is the child of: the engine of
                                   clients started with another epoch is the parent's */
} sb_engine;

SB_HIDDEN extern sb_engine sb_io_engine;

/* fork() (engine.c) holds sb_io_engine.sockets: a child finds every
 * link's descriptor open (or, at worst, not yet stored: leaked) or -1,
 * and closes the parent's. */
static inline void sb_sockets_lock(void) { pthread_mutex_lock(&sb_io_engine.sockets); }
static inline void sb_sockets_unlock(void) { pthread_mutex_unlock(&sb_io_engine.sockets); }

/* Wakes the I/O thread (any thread). */
static inline void sb_engine_wake(void)
{
    if (sb_load(&sb_io_engine.waker_ok)) sb_waker_wake(&sb_io_engine.waker);
}

/* The send path's wake-up: only when the I/O thread sleeps in poll(), and
 * only once per sleep (the caller's queue went from empty to non-empty). */
static inline void sb_engine_wake_sleeper(void)
{
    if (sb_load(&sb_io_engine.polling) && sb_xchg(&sb_io_engine.polling, 0))
        sb_waker_wake(&sb_io_engine.waker);
}

/* Lets go of a started client: the I/O thread closes its links (after the
 * linger time) and forgets it; stops the thread after the last client.
 * Nothing to do for a client that was never started.  Returns 0 when the
 * caller frees the client; -1, doing nothing, for a client started before
 * a fork() in this process's parent: its I/O thread stayed there, and its
 * memory must be leaked; 1 on the I/O thread itself (an inline callback):
 * the thread cannot wait for itself, so it frees the client once it has
 * let go of it (sb_client_destroy). */
SB_HIDDEN int  sb_engine_detach(smartbus_client *c);
/* frees the memory of a client the engine has let go of (client.c) */
SB_HIDDEN void sb_client_destroy(smartbus_client *c);

/* ---- links (link.c; I/O thread) -------------------------------------------- */

/* Connects, reconnects, heartbeats and liveness of link k; lowers *timeout
 * to the next time it needs the thread.  paused: the sink is full. */
SB_HIDDEN void sb_link_timers(smartbus_client *c, sb_link *k, int64_t now, int *timeout,
                              int paused, sb_sink_writer *w);
/* the socket of a connecting link became writable */
SB_HIDDEN void sb_link_connect_done(smartbus_client *c, sb_link *k, int64_t now,
                                    sb_sink_writer *w);
/* reads and handles what the server sent */
SB_HIDDEN void sb_link_read(smartbus_client *c, sb_link *k, int64_t now, sb_sink_writer *w);
/* handles n bytes just appended to k->rbuf (by sb_link_read, or by the
 * fuzz target fuzz/client_stream.c); -1 when the link closed */
SB_HIDDEN int  sb_link_received(smartbus_client *c, sb_link *k, size_t n, int64_t now,
                                sb_sink_writer *w);
/* writes what the link has queued; -1 when the link closed */
SB_HIDDEN int  sb_link_write(smartbus_client *c, sb_link *k, int64_t now, sb_sink_writer *w);
/* closes every link of a client that is being let go */
SB_HIDDEN void sb_link_close_all(smartbus_client *c);
/* before poll(): offers the direct-write token when the active link is idle */
SB_HIDDEN void sb_link_offer(smartbus_client *c);
/* after poll(): takes the token back (waits for a writer holding it) */
SB_HIDDEN void sb_link_reclaim(smartbus_client *c);

/* ---- pending flows (flows.c) ------------------------------------------------ */

/* Application thread, c->lock held: records invocation `id`, sent to the
 * IPSC (server_unit, process_index), with its ack and result timers.
 * NULL when the table is full (or out of memory). */
SB_HIDDEN sb_flow *sb_flow_start(smartbus_client *c, int32_t id, int server_unit,
                                 int process_index, const char *project_id, int mode,
                                 int timeout_ms);
/* c->lock held: forgets a flow whose invocation could not be queued */
SB_HIDDEN void sb_flow_cancel(smartbus_client *c, sb_flow *f);
/* I/O thread: fires expired timers (every FLOW_CHECK_MS while flows are
 * pending); returns ms until the next check, or -1 with nothing pending. */
SB_HIDDEN int  sb_flows_tick(smartbus_client *c, int64_t now, sb_sink_writer *w);
/* I/O thread: a flow ack (cmd 13) or result (cmd 12) arrived.  Returns
 * the invoke id when it names a pending flow but comes from another
 * source than the IPSC the invoke went to (ignored), else 0. */
SB_HIDDEN int  sb_flows_on_reply(smartbus_client *c, const uint8_t *pkt, const sbw_head *h,
                                 sb_sink_writer *w);

/* ---- the send queue (sendq.c; I/O thread side) ------------------------------ */

/* A producer's hold on the send queue: locks the client and picks the half
 * to fill (c->half); unlock with sb_sendq_unlock.  sb_sendq_trylock: 0, or
 * non-zero (nothing held) when the lock is busy. */
static inline void sb_sendq_enter(smartbus_client *c)
{
    sb_store(&c->fill_seq, sb_relaxed(&c->fill_seq) + 1);     /* odd: appending */
    c->half = sb_load(&c->fill);
}
static inline void sb_sendq_lock(smartbus_client *c)
{
    pthread_mutex_lock(&c->lock);
    sb_sendq_enter(c);
}
static inline int sb_sendq_trylock(smartbus_client *c)
{
    if (pthread_mutex_trylock(&c->lock) != 0) return -1;
    sb_sendq_enter(c);
    return 0;
}
static inline void sb_sendq_unlock(smartbus_client *c)
{
    /* even: done (a release store: the I/O thread reads the half after it) */
    __atomic_store_n(&c->fill_seq, sb_relaxed(&c->fill_seq) + 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&c->lock);
}

/* packets in the send queue (any thread) */
static inline int sb_sendq_count(smartbus_client *c)
{
    return sb_load(&c->sendq_n[0]) + sb_load(&c->sendq_n[1]);
}

/* moves the application's send queue to the active link and writes */
SB_HIDDEN void sb_sendq_pump(smartbus_client *c, int64_t now, sb_sink_writer *w);
/* in the child of a fork(): the child draws its own invoke ids */
SB_HIDDEN void sb_sendq_after_fork(void);

#endif /* CLIENT_INTERNAL_H */
