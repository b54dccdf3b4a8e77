/*
 * router.c - the SmartBus router: a local SmartBus server (access point)
 * that NET clients reach over TCP and IPC clients over a Unix-domain stream
 * socket (NET.md §13, IPC.md §7.2).  It registers clients, answers their
 * heartbeats, reports connects and disconnects with global-connect events
 * and routes every other packet by its destination triple.
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
#define _GNU_SOURCE 1
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "sb_internal.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0            /* SO_NOSIGPIPE is set instead where it exists */
#endif

#define RT_DEFAULT_HOST      "127.0.0.1"
#define RT_DEFAULT_MAX_OUT   ((size_t)16 << 20)
#define RT_DEFAULT_STALL_MS  10000
#define RT_BACKLOG           128
#define RT_READ_MIN          ((size_t)64 << 10)   /* free space before each read */
#define RT_IN_KEEP           ((size_t)1 << 20)    /* empty read buffers above this are freed */
#define RT_OUT_KEEP          ((size_t)4 << 20)    /* empty out buffers above this are freed */
#define RT_HB_MAX_ECHO       1024                 /* larger "heartbeats" are not echoed */
#define RT_ACCEPT_BATCH      64
#define RT_ACCEPT_BACKOFF_MS 100                  /* after EMFILE and the like */
#define RT_DRAIN_MS          2000                 /* refused peers: wait this long for their close */

/* one client connection */
typedef struct rconn {
    int fd;
    uint8_t ipc;                  /* accepted on the Unix listener */
    uint8_t registered;
    uint8_t dead;                 /* closed; freed by the sweep at the end of the iteration */
    uint8_t closing;              /* refused: close once the out buffer is flushed */
    uint8_t draining;             /* refused, flushed, write side shut: discard input until EOF */
    uint8_t skip_write;           /* polled for POLLOUT and not writable */
    uint8_t congested;            /* out buffer reached the bound, not yet below half */
    uint8_t type, unit, client;   /* identity once registered */
    struct rconn *blocked_on;     /* paused sender: the destination it waits for */
    int64_t stall_ref;            /* congested: since / last successful write at (ms) */
    int64_t drain_until;          /* draining: close at the latest then */
    sb_buf in, out;
    char info[257];               /* add_info from the registration */
} rconn;

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

    rconn **conns;
    size_t nconns, capconns;
    struct pollfd *pfds;
    size_t cappfds;

    smartbus_router_stats st;     /* written by the loop thread only, read relaxed */
    rconn *table[256][256];       /* registered clients by [unit][client id] */
};

/* ---- statistics (single writer: relaxed load + store, no lock prefix) --- */

#define ST_ADD(r, field, v) \
    __atomic_store_n(&(r)->st.field, sb_relaxed(&(r)->st.field) + (uint64_t)(v), __ATOMIC_RELAXED)

static void st_clients(smartbus_router *r, int delta)
{
    __atomic_store_n(&r->st.clients, sb_relaxed(&r->st.clients) + delta, __ATOMIC_RELAXED);
}

/* ---- small helpers ------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static size_t out_pending(const rconn *c)
{
    return c->out.len - c->out.off;
}

/* Room for n more bytes at out.len; reclaims written bytes before growing. */
static int out_reserve(rconn *c, size_t n)
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
static int out_appended(smartbus_router *r, rconn *c)
{
    if (!c->congested && out_pending(c) >= r->max_out) {
        c->congested = 1;
        c->stall_ref = r->now;
    }
    return c->congested;
}

/* ---- global-connect events and disconnects ------------------------------ */

static void conn_kill(smartbus_router *r, rconn *c, const char *why);

/* cmd 9 / 10 to `to` about `about` (NET.md §10) */
static void send_global(smartbus_router *r, rconn *to, uint8_t cmd, const rconn *about,
                        uint8_t status)
{
    size_t need = SBW_HEAD_SIZE + SBW_GLOBAL_PAYLOAD;
    if (out_reserve(to, need) != 0) {
        conn_kill(r, to, "out of memory");
        return;
    }
    sbw_head h;
    memset(&h, 0, sizeof h);
    h.cmd = cmd;
    h.cmdtype = SMARTBUS_CMDTYPE_SYSTEM;
    h.src_type = SMARTBUS_NODECLI_TYPE_NODE;
    h.src_unit = r->unit;
    h.src_client = 0;
    h.dst_type = to->type;
    h.dst_unit = to->unit;
    h.dst_client = to->client;
    sbw_global g;
    memset(&g, 0, sizeof g);
    g.inner = h;
    g.unit_id = about->unit;
    g.client_id = about->client;
    g.client_type = about->type;
    g.ap_unit = r->unit;
    g.status = status;
    memcpy(g.info, about->info, sizeof g.info);
    int n = sbw_put_global(to->out.p + to->out.len, to->out.cap - to->out.len, &h, &g, 0);
    if (n <= 0) return;              /* cannot happen: room was reserved */
    to->out.len += (size_t)n;
    out_appended(r, to);
}

/* Closes c now (socket, registration, cmd 9 status 0 to the others);
 * the memory is freed by sweep() once nothing refers to it. */
static void conn_kill(smartbus_router *r, rconn *c, const char *why)
{
    if (c->dead) return;
    c->dead = 1;
    sb_trace("router: close fd %d (%u/%u/%u): %s", c->fd, c->type, c->unit, c->client, why);
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    ST_ADD(r, closed, 1);
    for (size_t i = 0; i < r->nconns; i++)
        if (r->conns[i]->blocked_on == c) r->conns[i]->blocked_on = NULL;
    if (c->registered) {
        c->registered = 0;
        if (r->table[c->unit][c->client] == c) r->table[c->unit][c->client] = NULL;
        st_clients(r, -1);
        for (size_t i = 0; i < r->nconns; i++) {
            rconn *o = r->conns[i];
            if (o != c && o->registered && !o->dead)
                send_global(r, o, SMARTBUS_SYSCMD_GLOBAL_CONNECT, c, SMARTBUS_GLOBAL_DISCONNECTED);
        }
    }
}

/* frees the connections killed during this iteration */
static void sweep(smartbus_router *r)
{
    size_t j = 0;
    for (size_t i = 0; i < r->nconns; i++) {
        rconn *c = r->conns[i];
        if (c->dead) {
            sb_buf_free(&c->in);
            sb_buf_free(&c->out);
            free(c);
        } else {
            r->conns[j++] = c;
        }
    }
    r->nconns = j;
}

/* ---- packet handlers ----------------------------------------------------- */

/* cmd 5 -> cmd 6 with the payload echoed, src and dst swapped (NET.md §5.4) */
static void answer_heartbeat(smartbus_router *r, rconn *c, const uint8_t *p, int32_t datalen)
{
    if (datalen > RT_HB_MAX_ECHO) return;
    size_t n = SBW_HEAD_SIZE + (size_t)datalen;
    if (out_reserve(c, n) != 0) {
        conn_kill(r, c, "out of memory");
        return;
    }
    uint8_t *q = c->out.p + c->out.len;
    q[0] = p[0];
    q[1] = p[1];
    q[2] = SMARTBUS_CMD_HEARTBEAT_ACK;
    q[3] = SMARTBUS_CMDTYPE_INTERNAL;
    q[4] = p[7];
    q[5] = p[8];
    q[6] = p[9];
    q[7] = p[4];
    q[8] = p[5];
    q[9] = p[6];
    q[10] = 0;
    q[11] = 0;
    sbw_put_i32(q + 12, (int32_t)n);
    sbw_put_i32(q + 16, datalen);
    if (datalen > 0) memcpy(q + SBW_HEAD_SIZE, p + SBW_HEAD_SIZE, (size_t)datalen);
    c->out.len += n;
    out_appended(r, c);
    ST_ADD(r, heartbeats, 1);
}

static void send_register_ack(smartbus_router *r, rconn *c, uint8_t type, uint8_t unit,
                              uint8_t client, int32_t result)
{
    int node = c->ipc ? SBW_NODE_IPC_SIZE : SBW_NODE_NET_SIZE;
    size_t need = SBW_HEAD_SIZE + 4 + (size_t)node;
    if (out_reserve(c, need) != 0) {
        conn_kill(r, c, "out of memory");
        return;
    }
    sbw_head h;
    memset(&h, 0, sizeof h);
    h.src_type = SMARTBUS_NODECLI_TYPE_NODE;
    h.src_unit = r->unit;
    h.src_client = 0;
    h.dst_type = type;
    h.dst_unit = unit;
    h.dst_client = client;
    int n = sbw_put_register_ack(c->out.p + c->out.len, c->out.cap - c->out.len, &h, result, node);
    if (n <= 0) return;
    c->out.len += (size_t)n;
    out_appended(r, c);
}

static void handle_register(smartbus_router *r, rconn *c, const uint8_t *p, const sbw_head *h)
{
    sbw_register reg;
    int32_t result = SMARTBUS_ERR_OK;
    uint8_t unit = c->ipc ? r->unit : h->src_unit;
    uint8_t type = h->src_type, client = h->src_client;

    if (sbw_get_register(p, (size_t)h->packet_size, &reg) != SBW_OK) {
        result = SMARTBUS_ERR_ARGUMENT;          /* cmd 1 of none of the three layouts */
    } else if (!c->ipc && (unit < MIN_SMARTBUS_NETCLI_UNITID ||
                           unit >= MIN_SMARTBUS_NETCLI_UNITID + MAX_SMARTBUS_NETCLI_UNITID_NUM)) {
        result = SMARTBUS_ERR_UNITID_INVALID;
    } else if (r->auth) {
        if (reg.user[0] == '\0') result = SMARTBUS_ERR_AUTHOR;
        else if (strcmp(reg.user, r->user) != 0) result = SMARTBUS_ERR_USER;
        else if (strcmp(reg.password, r->password) != 0) result = SMARTBUS_ERR_PWD;
    }
    if (result == SMARTBUS_ERR_OK && r->table[unit][client] != NULL)
        result = SMARTBUS_ERR_CONNECTED;

    send_register_ack(r, c, type, unit, client, result);
    if (c->dead) return;
    if (result != SMARTBUS_ERR_OK) {
        sb_trace("router: registration of %u/%u/%u refused: %d", type, unit, client, (int)result);
        c->closing = 1;
        ST_ADD(r, refused, 1);
        return;
    }

    c->registered = 1;
    c->type = type;
    c->unit = unit;
    c->client = client;
    memcpy(c->info, reg.info, sizeof c->info);
    r->table[unit][client] = c;
    ST_ADD(r, registered, 1);
    st_clients(r, 1);
    sb_trace("router: registered %u/%u/%u (%s)", type, unit, client, c->ipc ? "ipc" : "tcp");

    for (size_t i = 0; i < r->nconns && !c->dead; i++) {
        rconn *o = r->conns[i];
        if (o == c || !o->registered || o->dead) continue;
        send_global(r, c, SMARTBUS_SYSCMD_GLOBAL_CONNECT_ANSWER, o, SMARTBUS_GLOBAL_EXISTING);
        if (!o->dead)
            send_global(r, o, SMARTBUS_SYSCMD_GLOBAL_CONNECT, c, SMARTBUS_GLOBAL_CONNECTED);
    }
}

/* Appends one packet to d (packet_size rewritten to 20 + datalen).  Returns
 * 1 when d is congested, 0 otherwise, -1 when d died. */
static int deliver(smartbus_router *r, rconn *d, const uint8_t *p, int32_t datalen)
{
    size_t n = SBW_HEAD_SIZE + (size_t)datalen;
    if (out_reserve(d, n) != 0) {
        conn_kill(r, d, "out of memory");
        return -1;
    }
    uint8_t *q = d->out.p + d->out.len;
    memcpy(q, p, 12);
    sbw_put_i32(q + 12, (int32_t)n);
    sbw_put_i32(q + 16, datalen);
    if (datalen > 0) memcpy(q + SBW_HEAD_SIZE, p + SBW_HEAD_SIZE, (size_t)datalen);
    d->out.len += n;
    ST_ADD(r, routed_msgs, 1);
    ST_ADD(r, routed_bytes, datalen);
    return out_appended(r, d);
}

static void route(smartbus_router *r, rconn *s, const uint8_t *p, const sbw_head *h)
{
    int delivered = 0;
    rconn *full = NULL;
    if (h->dst_client == 0xFF) {
        rconn *const *row = r->table[h->dst_unit];
        for (int i = 0; i < 256; i++) {
            rconn *d = row[i];
            if (!d || d == s || d->type != h->dst_type) continue;
            int rc = deliver(r, d, p, h->datalen);
            if (rc >= 0) delivered = 1;
            if (rc > 0) full = d;
        }
    } else {
        rconn *d = r->table[h->dst_unit][h->dst_client];
        if (d) {
            int rc = deliver(r, d, p, h->datalen);
            if (rc >= 0) delivered = 1;
            if (rc > 0) full = d;
        }
    }
    if (!delivered) ST_ADD(r, dropped_no_route, 1);
    if (full && !s->dead && !full->dead && !s->blocked_on) {
        s->blocked_on = full;
        ST_ADD(r, paused_reads, 1);
    }
}

static void handle_packet(smartbus_router *r, rconn *c, const uint8_t *p, const sbw_head *h)
{
    if (h->cmdtype == SMARTBUS_CMDTYPE_INTERNAL) {
        if (h->cmd == SMARTBUS_CMD_HEARTBEAT) {
            answer_heartbeat(r, c, p, h->datalen);
        } else if (!c->registered) {
            if (h->cmd == SMARTBUS_CMD_REGISTER) handle_register(r, c, p, h);
            else ST_ADD(r, dropped_unregistered, 1);
        }
        return;                       /* other cmdtype-0 packets: ignored */
    }
    if (!c->registered) {
        ST_ADD(r, dropped_unregistered, 1);
        return;
    }
    if (h->cmdtype == SMARTBUS_CMDTYPE_SYSTEM && h->cmd == SMARTBUS_SYSCMD_GLOBAL_CONNECT_ANSWER)
        return;                       /* absorbed, see the top of the file */
    route(r, c, p, h);
}

/* ---- input ---------------------------------------------------------------- */

/* Handles the complete packets buffered in c->in until it is empty, c is
 * paused, refused or dead. */
static void process_input(smartbus_router *r, rconn *c)
{
    sb_buf *b = &c->in;
    while (!c->dead && !c->closing && !c->blocked_on) {
        size_t avail = b->len - b->off;
        if (avail < SBW_HEAD_SIZE) break;
        const uint8_t *p = b->p + b->off;
        sbw_head h;
        if (sbw_get_head(p, avail, &h) != SBW_OK) {
            conn_kill(r, c, "bad packet head");
            return;
        }
        if ((size_t)h.packet_size > avail) break;
        handle_packet(r, c, p, &h);
        b->off += (size_t)h.packet_size;
    }
    if (b->off == b->len) {
        b->off = b->len = 0;
        sb_buf_trim(b, RT_IN_KEEP);
    }
}

/* 1 when process_input() has something to do */
static int input_ready(const rconn *c)
{
    if (c->dead || c->closing || c->blocked_on) return 0;
    size_t avail = c->in.len - c->in.off;
    if (avail < SBW_HEAD_SIZE) return 0;
    sbw_head h;
    if (sbw_get_head(c->in.p + c->in.off, avail, &h) != SBW_OK) return 1;
    return (size_t)h.packet_size <= avail;
}

static void conn_read(smartbus_router *r, rconn *c)
{
    sb_buf *b = &c->in;
    if (b->off > 0) sb_buf_compact(b);
    size_t want = RT_READ_MIN;
    if (b->len >= SBW_HEAD_SIZE) {
        sbw_head h;
        if (sbw_get_head(b->p, b->len, &h) != SBW_OK) {
            conn_kill(r, c, "bad packet head");
            return;
        }
        if ((size_t)h.packet_size > b->len + want) want = (size_t)h.packet_size - b->len;
    }
    if (sb_buf_reserve(b, want) != 0) {
        conn_kill(r, c, "out of memory");
        return;
    }
    ssize_t n = read(c->fd, b->p + b->len, b->cap - b->len);
    if (n > 0) {
        b->len += (size_t)n;
        process_input(r, c);
    } else if (n == 0) {
        conn_kill(r, c, "end of stream");
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        conn_kill(r, c, strerror(errno));
    }
}

/* A refused connection after its ack was flushed and its write side shut
 * down: input is discarded until the peer closes, so that close() does not
 * turn into a reset that could destroy the ack in flight. */
static void conn_drain(smartbus_router *r, rconn *c)
{
    uint8_t tmp[4096];
    ssize_t n = read(c->fd, tmp, sizeof tmp);
    if (n == 0) conn_kill(r, c, "registration refused");
    else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        conn_kill(r, c, "registration refused");
}

/* ---- output --------------------------------------------------------------- */

static void conn_write(smartbus_router *r, rconn *c)
{
    sb_buf *b = &c->out;
    size_t n = b->len - b->off;
    if (n == 0) return;
    ssize_t w = send(c->fd, b->p + b->off, n, MSG_NOSIGNAL);
    if (w > 0) {
        b->off += (size_t)w;
        if (b->off == b->len) {
            b->off = b->len = 0;
            sb_buf_trim(b, RT_OUT_KEEP);
        }
        if (c->congested) {
            size_t left = out_pending(c);
            if (left == 0 || left < r->max_out / 2) c->congested = 0;
            else c->stall_ref = r->now;
        }
    } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        conn_kill(r, c, strerror(errno));
    }
}

/* ---- accept --------------------------------------------------------------- */

static void accept_on(smartbus_router *r, int lfd, int ipc)
{
    for (int k = 0; k < RT_ACCEPT_BATCH; k++) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                sb_trace("router: accept: %s", strerror(errno));
                r->accept_pause_until = r->now + RT_ACCEPT_BACKOFF_MS;
            }
            return;
        }
        if (sb_set_nonblock(fd) != 0) {
            close(fd);
            continue;
        }
        if (!ipc) sb_set_nodelay(fd);
#ifdef SO_NOSIGPIPE
        {
            int one = 1;
            (void)setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
        }
#endif
        if (r->nconns == r->capconns) {
            size_t cap = r->capconns ? r->capconns * 2 : 16;
            rconn **nc = realloc(r->conns, cap * sizeof *nc);
            if (!nc) {
                close(fd);
                return;
            }
            r->conns = nc;
            r->capconns = cap;
        }
        rconn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            return;
        }
        c->fd = fd;
        c->ipc = (uint8_t)ipc;
        r->conns[r->nconns++] = c;
        ST_ADD(r, accepted, 1);
        sb_trace("router: accepted fd %d (%s)", fd, ipc ? "ipc" : "tcp");
    }
}

/* ---- the loop ------------------------------------------------------------- */

int smartbus_router_run(smartbus_router *r)
{
    if (!r) return SMARTBUS_ERR_ARGUMENT;
    int rc = 0;
    int timeout = -1;
    r->now = sb_now_ms();
    while (!sb_load(&r->stop)) {
        /* pollfds: waker, listeners, connections */
        size_t need = r->nconns + 3;
        if (need > r->cappfds) {
            size_t cap = r->cappfds ? r->cappfds : 16;
            while (cap < need) cap *= 2;
            struct pollfd *np = realloc(r->pfds, cap * sizeof *np);
            if (!np) {
                rc = SMARTBUS_ERR_MEM_ALLOC;
                break;
            }
            r->pfds = np;
            r->cappfds = cap;
        }
        nfds_t nfd = 0;
        r->pfds[nfd].fd = r->waker.rfd;
        r->pfds[nfd++].events = POLLIN;
        int listen_ok = r->now >= r->accept_pause_until;
        int tcp_at = -1, ipc_at = -1;
        if (r->tcp_fd >= 0 && listen_ok) {
            tcp_at = (int)nfd;
            r->pfds[nfd].fd = r->tcp_fd;
            r->pfds[nfd++].events = POLLIN;
        }
        if (r->ipc_fd >= 0 && listen_ok) {
            ipc_at = (int)nfd;
            r->pfds[nfd].fd = r->ipc_fd;
            r->pfds[nfd++].events = POLLIN;
        }
        size_t base = nfd, npolled = r->nconns;
        for (size_t i = 0; i < npolled; i++) {
            rconn *c = r->conns[i];
            short ev = 0;
            if ((!c->closing && !c->blocked_on) || c->draining) ev |= POLLIN;
            if (out_pending(c) > 0) ev |= POLLOUT;
            r->pfds[nfd].fd = c->fd;
            r->pfds[nfd].events = ev;
            r->pfds[nfd++].revents = 0;
        }

        int n = poll(r->pfds, nfd, timeout);
        r->now = sb_now_ms();
        if (n < 0) {
            if (errno == EINTR) {
                timeout = 0;
                continue;
            }
            rc = SMARTBUS_ERR_OTHER;
            sb_trace("router: poll: %s", strerror(errno));
            break;
        }
        if (r->pfds[0].revents) sb_waker_drain(&r->waker);
        if (sb_load(&r->stop)) break;

        /* 1. input */
        for (size_t i = 0; i < npolled; i++) {
            rconn *c = r->conns[i];
            short re = r->pfds[base + i].revents;
            c->skip_write = (r->pfds[base + i].events & POLLOUT) &&
                            !(re & (POLLOUT | POLLERR | POLLHUP | POLLNVAL));
            if (c->dead || !re) continue;
            if (re & POLLNVAL) {
                conn_kill(r, c, "invalid descriptor");
            } else if (c->draining) {
                conn_drain(r, c);
            } else if (!c->closing && !c->blocked_on && (re & (POLLIN | POLLHUP | POLLERR))) {
                conn_read(r, c);
            } else if (re & (POLLHUP | POLLERR)) {
                conn_kill(r, c, "hang-up");
            }
        }
        /* 2. new connections */
        if (tcp_at >= 0 && (r->pfds[tcp_at].revents & POLLIN)) accept_on(r, r->tcp_fd, 0);
        if (ipc_at >= 0 && (r->pfds[ipc_at].revents & POLLIN)) accept_on(r, r->ipc_fd, 1);
        /* 3. output: one send per connection (not when poll said it would block) */
        for (size_t i = 0; i < r->nconns; i++) {
            rconn *c = r->conns[i];
            if (!c->dead && !c->skip_write) conn_write(r, c);
            c->skip_write = 0;
        }
        /* 4. refused connections flushed / drained, stalled peers */
        for (size_t i = 0; i < r->nconns; i++) {
            rconn *c = r->conns[i];
            if (c->dead) continue;
            if (c->draining) {
                if (r->now >= c->drain_until) conn_kill(r, c, "registration refused");
            } else if (c->closing && out_pending(c) == 0) {
                if (shutdown(c->fd, SHUT_WR) != 0) {
                    conn_kill(r, c, "registration refused");
                } else {
                    c->draining = 1;
                    c->drain_until = r->now + RT_DRAIN_MS;
                }
            } else if (c->congested && r->now - c->stall_ref >= r->stall_ms) {
                ST_ADD(r, stalled_disconnects, 1);
                conn_kill(r, c, "stalled (out buffer full, peer not reading)");
            }
        }
        /* 5. resume paused senders whose destination has drained */
        for (size_t i = 0; i < r->nconns; i++) {
            rconn *c = r->conns[i];
            if (c->dead) continue;
            if (c->blocked_on && !c->blocked_on->congested) c->blocked_on = NULL;
            if (input_ready(c)) process_input(r, c);
        }
        sweep(r);

        /* next timeout: buffered input left (a sender resumed by a close),
         * else the nearest stall or drain deadline, else none */
        int64_t deadline = -1;
        timeout = -1;
        for (size_t i = 0; i < r->nconns; i++) {
            rconn *c = r->conns[i];
            if (input_ready(c)) {
                deadline = r->now;
                break;
            }
            int64_t d = c->congested ? c->stall_ref + r->stall_ms
                        : c->draining ? c->drain_until : -1;
            if (d >= 0 && (deadline < 0 || d < deadline)) deadline = d;
        }
        if (r->now < r->accept_pause_until) {
            if (deadline < 0 || r->accept_pause_until < deadline) deadline = r->accept_pause_until;
        }
        if (deadline >= 0) {
            int64_t t = deadline - r->now;
            timeout = t <= 0 ? 0 : (t > INT_MAX ? INT_MAX : (int)t);
        }
    }
    sb_store(&r->stop, 0);            /* consumed: run() may be called again */
    return rc;
}

void smartbus_router_stop(smartbus_router *r)
{
    if (!r) return;
    sb_store(&r->stop, 1);
    sb_waker_wake(&r->waker);
}

/* ---- creation ------------------------------------------------------------- */

static int open_tcp(smartbus_router *r, const char *host, int port, char *err, size_t errlen)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        set_err(err, errlen, "cannot resolve listen address %s: %s", host, gai_strerror(gai));
        return SMARTBUS_ERR_ARGUMENT;
    }
    int saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, RT_BACKLOG) != 0 ||
            sb_set_nonblock(fd) != 0) {
            saved = errno;
            close(fd);
            continue;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int real = port;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_INET) real = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            else if (ss.ss_family == AF_INET6) real = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        r->tcp_fd = fd;
        r->port = real;
        freeaddrinfo(res);
        return 0;
    }
    freeaddrinfo(res);
    set_err(err, errlen, "cannot listen on %s port %d: %s", host, port,
            strerror(saved ? saved : EADDRNOTAVAIL));
    return SMARTBUS_ERR_OTHER;
}

static int open_ipc(smartbus_router *r, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof sa.sun_path) {
        set_err(err, errlen, "IPC path \"%s\" is empty or longer than %zu bytes", path,
                sizeof sa.sun_path - 1);
        return SMARTBUS_ERR_ARGUMENT;
    }
    memcpy(sa.sun_path, path, len + 1);

    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            set_err(err, errlen, "IPC path %s exists and is not a socket (not removed)", path);
            return SMARTBUS_ERR_OTHER;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM, 0);
        if (probe < 0) {
            set_err(err, errlen, "cannot create a Unix socket: %s", strerror(errno));
            return SMARTBUS_ERR_OTHER;
        }
        (void)sb_set_nonblock(probe);
        int rc = connect(probe, (struct sockaddr *)&sa, sizeof sa);
        int e = errno;
        close(probe);
        if (rc == 0 || e == EAGAIN || e == EWOULDBLOCK || e == EINPROGRESS) {
            set_err(err, errlen, "IPC path %s is in use by another server", path);
            return SMARTBUS_ERR_OTHER;
        }
        if (e == ECONNREFUSED) {
            sb_trace("router: removing stale IPC socket %s", path);
            if (unlink(path) != 0 && errno != ENOENT) {
                set_err(err, errlen, "cannot remove stale IPC socket %s: %s", path,
                        strerror(errno));
                return SMARTBUS_ERR_OTHER;
            }
        } else if (e != ENOENT) {
            set_err(err, errlen, "cannot probe IPC path %s: %s", path, strerror(e));
            return SMARTBUS_ERR_OTHER;
        }
    } else if (errno != ENOENT) {
        set_err(err, errlen, "cannot stat IPC path %s: %s", path, strerror(errno));
        return SMARTBUS_ERR_OTHER;
    }

    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        set_err(err, errlen, "cannot create a Unix socket: %s", strerror(errno));
        return SMARTBUS_ERR_OTHER;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        set_err(err, errlen, "cannot bind IPC path %s: %s", path, strerror(errno));
        close(fd);
        return SMARTBUS_ERR_OTHER;
    }
    r->ipc_path = dup_str(path);
    if (!r->ipc_path) {
        unlink(path);
        close(fd);
        set_err(err, errlen, "out of memory");
        return SMARTBUS_ERR_MEM_ALLOC;
    }
    r->ipc_fd = fd;                   /* from here on free() unlinks the path */
    if (lstat(path, &st) == 0) {
        r->ipc_dev = st.st_dev;
        r->ipc_ino = st.st_ino;
    }
    if (listen(fd, RT_BACKLOG) != 0 || sb_set_nonblock(fd) != 0) {
        set_err(err, errlen, "cannot listen on IPC path %s: %s", path, strerror(errno));
        return SMARTBUS_ERR_OTHER;
    }
    return 0;
}

int smartbus_router_new(const smartbus_router_config *cfg, smartbus_router **out, char *err,
                        size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (out) *out = NULL;
    if (!cfg || !out) {
        set_err(err, errlen, "missing configuration or result pointer");
        return SMARTBUS_ERR_ARGUMENT;
    }
    if (cfg->unit_id < 0 || cfg->unit_id >= MAX_GLOBAL_SMART_NODE) {
        set_err(err, errlen, "router unit id %d is invalid (must be 0..15)", cfg->unit_id);
        return SMARTBUS_ERR_UNITID_INVALID;
    }
    if (cfg->port > 65535) {
        set_err(err, errlen, "port %d is invalid (must be 0..65535, or < 0 for none)", cfg->port);
        return SMARTBUS_ERR_ARGUMENT;
    }
    smartbus_router *r = calloc(1, sizeof *r);
    if (!r) {
        set_err(err, errlen, "out of memory");
        return SMARTBUS_ERR_MEM_ALLOC;
    }
    r->tcp_fd = r->ipc_fd = -1;
    r->port = -1;
    r->waker.rfd = r->waker.wfd = -1;
    r->unit = (uint8_t)cfg->unit_id;
    r->max_out = cfg->max_out_bytes ? cfg->max_out_bytes : RT_DEFAULT_MAX_OUT;
    r->stall_ms = cfg->stall_timeout_ms > 0 ? cfg->stall_timeout_ms : RT_DEFAULT_STALL_MS;
    r->auth = (cfg->user && cfg->user[0]) || (cfg->password && cfg->password[0]);
    r->user = dup_str(cfg->user ? cfg->user : "");
    r->password = dup_str(cfg->password ? cfg->password : "");
    int rc = 0;
    if (!r->user || !r->password) {
        set_err(err, errlen, "out of memory");
        rc = SMARTBUS_ERR_MEM_ALLOC;
    }
    if (rc == 0 && sb_waker_open(&r->waker) != 0) {
        set_err(err, errlen, "cannot create the wake-up channel: %s", strerror(errno));
        rc = SMARTBUS_ERR_OTHER;
    }
    if (rc == 0 && cfg->port >= 0) {
        const char *host = cfg->host && cfg->host[0] ? cfg->host : RT_DEFAULT_HOST;
        rc = open_tcp(r, host, cfg->port, err, errlen);
    }
    if (rc == 0 && cfg->ipc_path) rc = open_ipc(r, cfg->ipc_path, err, errlen);
    if (rc != 0) {
        smartbus_router_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int smartbus_router_port(const smartbus_router *r)
{
    return r ? r->port : -1;
}

void smartbus_router_free(smartbus_router *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nconns; i++) {
        rconn *c = r->conns[i];
        if (c->fd >= 0) close(c->fd);
        sb_buf_free(&c->in);
        sb_buf_free(&c->out);
        free(c);
    }
    free(r->conns);
    free(r->pfds);
    if (r->tcp_fd >= 0) close(r->tcp_fd);
    if (r->ipc_fd >= 0) close(r->ipc_fd);
    if (r->ipc_path) {
        /* only the socket we bound: not a file someone put there since */
        struct stat st;
        if (lstat(r->ipc_path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == r->ipc_dev &&
            st.st_ino == r->ipc_ino)
            unlink(r->ipc_path);
        free(r->ipc_path);
    }
    sb_waker_close(&r->waker);
    free(r->user);
    free(r->password);
    free(r);
}

void smartbus_router_get_stats(smartbus_router *r, smartbus_router_stats *st)
{
    if (!st) return;
    memset(st, 0, sizeof *st);
    if (!r) return;
    st->accepted = sb_relaxed(&r->st.accepted);
    st->registered = sb_relaxed(&r->st.registered);
    st->refused = sb_relaxed(&r->st.refused);
    st->closed = sb_relaxed(&r->st.closed);
    st->routed_msgs = sb_relaxed(&r->st.routed_msgs);
    st->routed_bytes = sb_relaxed(&r->st.routed_bytes);
    st->dropped_no_route = sb_relaxed(&r->st.dropped_no_route);
    st->dropped_unregistered = sb_relaxed(&r->st.dropped_unregistered);
    st->heartbeats = sb_relaxed(&r->st.heartbeats);
    st->stalled_disconnects = sb_relaxed(&r->st.stalled_disconnects);
    st->paused_reads = sb_relaxed(&r->st.paused_reads);
    st->clients = sb_relaxed(&r->st.clients);
}
