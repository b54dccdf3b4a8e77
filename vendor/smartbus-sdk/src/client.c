/*
 * client.c - the client engine: NET and IPC clients served by one I/O
 * thread per process.
 *
 * Threads and data:
 * - Application threads call smartbus_client_send() & co.  They append the
 *   encoded packet to the client's send queue under the client's lock and
 *   wake the I/O thread only when the queue goes from empty to non-empty
 *   while the I/O thread sleeps in poll() (no system call per message).
 * - The I/O thread owns every socket.  It swaps a client's whole send queue
 *   into the active link's write buffer and writes it with one send();
 *   it reads big chunks, parses every complete packet, answers pings,
 *   heartbeats and global-connect events itself, and appends the events
 *   for the application to the client's sink (one sink lock per burst).
 * - The sink's callback thread delivers events to the application.
 *
 * Link behaviour follows NET.md §5 and IPC.md §5: registration on every new
 * connection, heartbeats every 1 s (NET), liveness 14 s (NET), reconnect after 2 s
 * (immediately after losing a registered link), no retry after a refused
 * registration except -10, master and slave links at the same time.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sb_internal.h"
#include "smartbus_ipccli_interface.h"

#define RECONNECT_MS       2000
#define HEARTBEAT_MS       1000
#define LIVENESS_MS        14000
#define FLOW_CHECK_MS      100
#define CONNECT_TIMEOUT_MS 5000
#define LINGER_MS          2000    /* close: time given to flush the send queue */
#define READ_CHUNK         (256 * 1024)
#define READS_PER_TURN     8
#define DEFAULT_MAX_MSGS   100000
#define DEFAULT_MAX_BYTES  ((size_t)64 << 20)
#define FLOW_TABLE_SIZE    8192          /* power of two */
#define FLOW_MAX_PENDING   5000
#define FLOW_EMPTY         0
#define FLOW_TOMB          (-1)

enum { CONN_OFF, CONN_WAIT, CONN_CONNECTING, CONN_OPEN, CONN_REGISTERED, CONN_DEAD };

typedef struct sb_conn {
    int index;                  /* 0 master, 1 slave */
    int fd;
    int state;
    char host[MAX_SMARTBUS_IPADDR_SIZE];
    int port;
    int64_t next_connect_at, next_heartbeat_at, last_rx_at, registered_at;
    int64_t hb_counter;
    int fail_reported;
    sb_buf rbuf;                /* received bytes; off = parse position */
    sb_buf wbuf;                /* bytes to write; off = written */
} sb_conn;

typedef struct sb_flow {
    int32_t id;                 /* FLOW_EMPTY, FLOW_TOMB or the invoke id */
    uint8_t wait_ack, wait_result;
    int64_t ack_at, result_at;
    char project[33];
} sb_flow;

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
    sb_conn conns[2];
    int nconns;
    int active;                 /* link carrying application traffic, -1 none */
    int64_t next_flow_check;
    int64_t linger_until;       /* closing: flush until then (0: not yet closing) */
    struct smartbus_client *next;

    /* shared */
    int unit_id;                /* NET: configured; IPC: learnt (atomic) */
    int ap_unit;                /* atomic */
    int registered;             /* registered links (atomic) */
    int started, closing, detached;   /* under E.lock */

    pthread_mutex_t lock;       /* send queue, flow table, stats */
    sb_buf sendq;
    int sendq_msgs;             /* atomic */
    sb_flow *flows;
    int flows_live, flows_used;
    smartbus_client_stats st;
};

/* the process-wide engine */
static struct {
    pthread_mutex_t life;       /* serialises engine start / stop */
    pthread_mutex_t lock;       /* client lists */
    pthread_cond_t cond;        /* client detached */
    smartbus_client *adds;      /* waiting to be adopted by the I/O thread */
    smartbus_client *live;      /* owned by the I/O thread */
    int nclients;
    int running, stop;
    int waker_ok;
    sb_waker waker;
    pthread_t thread;
    int polling;                /* the I/O thread is (about to be) asleep */
} E = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
        NULL, NULL, 0, 0, 0, 0, { -1, -1 }, 0, 0 };

static int32_t g_invoke_id;    /* per-process counters, first id 1 */
static int32_t g_notify_id;

void sb_engine_wake(void)
{
    if (sb_load(&E.waker_ok)) sb_waker_wake(&E.waker);
}

/* ---- events ---------------------------------------------------------- */

static void emit_simple(sb_sink_writer *w, smartbus_client *c, int type, int code, int unit)
{
    sb_evin ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.client_id = c->client_id;
    ev.code = code;
    ev.unit_id = unit;
    sb_sink_put(w, c->sink, &ev);
}

static void emit_trace(sb_sink_writer *w, smartbus_client *c, int is_error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void emit_trace(sb_sink_writer *w, smartbus_client *c, int is_error, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof msg) n = (int)sizeof msg - 1;
    sb_trace("client %d: %s", c->client_id, msg);
    sb_evin ev;
    memset(&ev, 0, sizeof ev);
    ev.type = SMARTBUS_EV_TRACE;
    ev.client_id = c->client_id;
    ev.code = is_error;
    ev.text = msg;
    ev.text_len = (size_t)n;
    sb_sink_put(w, c->sink, &ev);
}

/* ---- flow table (under c->lock) ---------------------------------------- */

static sb_flow *flow_find(smartbus_client *c, int32_t id)
{
    if (!c->flows) return NULL;
    uint32_t mask = FLOW_TABLE_SIZE - 1;
    for (uint32_t i = 0, k = (uint32_t)id & mask; i < FLOW_TABLE_SIZE; i++, k = (k + 1) & mask) {
        sb_flow *f = &c->flows[k];
        if (f->id == id) return f;
        if (f->id == FLOW_EMPTY) return NULL;
    }
    return NULL;
}

static void flow_delete(smartbus_client *c, sb_flow *f)
{
    f->id = FLOW_TOMB;
    sb_store(&c->flows_live, c->flows_live - 1);   /* read unlocked by the I/O thread */
}

/* rebuilds the table without tombstones */
static void flow_rehash(smartbus_client *c)
{
    sb_flow *old = c->flows;
    sb_flow *nt = calloc(FLOW_TABLE_SIZE, sizeof *nt);
    if (!nt) return;
    uint32_t mask = FLOW_TABLE_SIZE - 1;
    for (int i = 0; i < FLOW_TABLE_SIZE; i++) {
        if (old[i].id == FLOW_EMPTY || old[i].id == FLOW_TOMB) continue;
        uint32_t k = (uint32_t)old[i].id & mask;
        while (nt[k].id != FLOW_EMPTY) k = (k + 1) & mask;
        nt[k] = old[i];
    }
    free(old);
    c->flows = nt;
    c->flows_used = c->flows_live;
}

/* returns the new slot, or NULL (table full / no memory) */
static sb_flow *flow_insert(smartbus_client *c, int32_t id)
{
    if (!c->flows) {
        c->flows = calloc(FLOW_TABLE_SIZE, sizeof *c->flows);
        if (!c->flows) return NULL;
    }
    if (c->flows_live >= FLOW_MAX_PENDING) return NULL;
    if (c->flows_used >= FLOW_TABLE_SIZE * 3 / 4) flow_rehash(c);
    uint32_t mask = FLOW_TABLE_SIZE - 1;
    uint32_t k = (uint32_t)id & mask;
    while (c->flows[k].id != FLOW_EMPTY && c->flows[k].id != FLOW_TOMB) k = (k + 1) & mask;
    sb_flow *f = &c->flows[k];
    if (f->id == FLOW_EMPTY) c->flows_used++;
    memset(f, 0, sizeof *f);
    f->id = id;
    sb_store(&c->flows_live, c->flows_live + 1);
    return f;
}

static void emit_flow(sb_sink_writer *w, smartbus_client *c, int type, const uint8_t *head,
                      const sb_flow *f, int code, const char *text, size_t text_len)
{
    sb_evin ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.client_id = c->client_id;
    ev.head = head;
    ev.invoke_id = f->id;
    ev.code = code;
    ev.project_id = f->project;
    ev.text = text ? text : "";
    ev.text_len = text ? text_len : 0;
    sb_sink_put(w, c->sink, &ev);
}

/* I/O thread: fires expired ack / result timers (-25, no head) */
static void flow_timers(smartbus_client *c, int64_t now, sb_sink_writer *w)
{
    pthread_mutex_lock(&c->lock);
    for (int i = 0; c->flows_live > 0 && i < FLOW_TABLE_SIZE; i++) {
        sb_flow *f = &c->flows[i];
        if (f->id == FLOW_EMPTY || f->id == FLOW_TOMB) continue;
        if (f->wait_ack && now >= f->ack_at) {
            f->wait_ack = 0;
            emit_flow(w, c, SMARTBUS_EV_FLOW_ACK, NULL, f, SMARTBUS_ERR_TIMEOUT, NULL, 0);
        }
        if (f->wait_result && now >= f->result_at) {
            f->wait_result = 0;
            emit_flow(w, c, SMARTBUS_EV_FLOW_RESULT, NULL, f, SMARTBUS_ERR_TIMEOUT, NULL, 0);
        }
        if (!f->wait_ack && !f->wait_result) flow_delete(c, f);
    }
    pthread_mutex_unlock(&c->lock);
}

/* I/O thread: a flow ack (cmd 13) or result (cmd 12) arrived */
static void flow_reply(smartbus_client *c, const uint8_t *pkt, const sbw_head *h,
                       sb_sink_writer *w)
{
    sbw_flow_reply r;
    int is_ack = h->cmd == SMARTBUS_SYSCMD_FLOW_ACK;
    const uint8_t *payload = pkt + SBW_HEAD_SIZE;
    int rc = is_ack ? sbw_get_flow_ack(payload, (size_t)h->datalen, &r)
                    : sbw_get_flow_result(payload, (size_t)h->datalen, &r);
    if (rc != SBW_OK) return;                         /* too short: ignored */
    pthread_mutex_lock(&c->lock);
    sb_flow *f = flow_find(c, r.invoke_id);
    if (f) {
        if (is_ack) {
            if (f->wait_ack) {
                f->wait_ack = 0;
                emit_flow(w, c, SMARTBUS_EV_FLOW_ACK, pkt, f, r.code, r.text, (size_t)r.text_len);
            }
            /* an error ack (first, or after the flow started) means no result
             * will come: settle the result now with that code instead of
             * waiting for the timeout (a vendor client would ignore it) */
            if (r.code != 1 && f->wait_result) {
                f->wait_result = 0;
                emit_flow(w, c, SMARTBUS_EV_FLOW_RESULT, pkt, f, r.code, r.text,
                          (size_t)r.text_len);
            }
        } else if (f->wait_result) {
            /* a result also settles the ack (the flow evidently started) */
            f->wait_result = 0;
            f->wait_ack = 0;
            emit_flow(w, c, SMARTBUS_EV_FLOW_RESULT, pkt, f, 1, r.text, (size_t)r.text_len);
        }
        if (!f->wait_ack && !f->wait_result) flow_delete(c, f);
    }
    pthread_mutex_unlock(&c->lock);
}

/* ---- own address --------------------------------------------------------- */

static int own_unit(smartbus_client *c)
{
    return sb_load(&c->unit_id);
}

static void own_src(smartbus_client *c, sbw_head *h)
{
    h->src_type = (uint8_t)c->client_type;
    h->src_unit = (uint8_t)own_unit(c);
    h->src_client = (uint8_t)c->client_id;
}

/* ---- link state --------------------------------------------------------- */

static void conn_reset(sb_conn *k)
{
    if (k->fd >= 0) close(k->fd);
    k->fd = -1;
    k->rbuf.len = k->rbuf.off = 0;
    k->wbuf.len = k->wbuf.off = 0;
    sb_buf_trim(&k->rbuf, 1u << 20);
    sb_buf_trim(&k->wbuf, 1u << 20);
}

/* appends bytes the I/O thread generates (registration, heartbeat, answers) */
static uint8_t *wbuf_room(sb_conn *k, size_t n)
{
    if (sb_buf_reserve(&k->wbuf, n) != 0) return NULL;
    return k->wbuf.p + k->wbuf.len;
}

static void conn_broken(smartbus_client *c, sb_conn *k, int64_t now, sb_sink_writer *w,
                        const char *why)
{
    int was_registered = k->state == CONN_REGISTERED;
    emit_trace(w, c, 0, "link %d (%s) closed: %s", k->index,
               c->kind == SMARTBUS_KIND_IPC ? c->ipc_path : k->host, why);
    conn_reset(k);
    k->state = CONN_WAIT;
    if (was_registered) {
        int left = sb_load(&c->registered) - 1;
        sb_store(&c->registered, left);
        if (c->active == k->index) {
            c->active = -1;
            for (int i = 0; i < c->nconns; i++)
                if (c->conns[i].state == CONN_REGISTERED) c->active = i;
        }
        if (left == 0) emit_simple(w, c, SMARTBUS_EV_DISCONNECT, 0, 0);
        /* reconnect at once, but not in a tight loop against a server that
         * closes every link right after accepting it */
        k->next_connect_at = now - k->registered_at < RECONNECT_MS ? now + RECONNECT_MS : now;
    } else {
        k->next_connect_at = now + RECONNECT_MS;
    }
}

static void conn_connect_failed(smartbus_client *c, sb_conn *k, int64_t now, sb_sink_writer *w,
                                int err)
{
    conn_reset(k);
    k->state = CONN_WAIT;
    k->next_connect_at = now + RECONNECT_MS;
    if (!k->fail_reported) {
        k->fail_reported = 1;
        if (c->kind == SMARTBUS_KIND_IPC)
            emit_trace(w, c, 1, "link %d: cannot connect to %s: %s", k->index, c->ipc_path,
                       strerror(err));
        else
            emit_trace(w, c, 1, "link %d: cannot connect to %s:%d: %s", k->index, k->host,
                       k->port, strerror(err));
        emit_simple(w, c, SMARTBUS_EV_CONNECT, SMARTBUS_ERR_ESTABLI_CONNECT, sb_load(&c->ap_unit));
    }
}

static void send_registration(smartbus_client *c, sb_conn *k)
{
    sbw_register r;
    memset(&r, 0, sizeof r);
    r.layout = c->kind == SMARTBUS_KIND_IPC ? SBW_REG_IPC : SBW_REG_NET_A;
    r.client_type = (uint8_t)c->client_type;
    r.unit_id = (uint8_t)own_unit(c);
    r.client_id = (uint8_t)c->client_id;
    r.conn_index = (uint8_t)k->index;
    memcpy(r.user, c->user, sizeof r.user);
    memcpy(r.password, c->password, sizeof r.password);
    memcpy(r.info, c->info, sizeof r.info);
    r.ap_unit = sb_load(&c->ap_unit);
    uint8_t *p = wbuf_room(k, SBW_REG_NET_C_SIZE);
    if (!p) return;
    int n = sbw_put_register(p, SBW_REG_NET_C_SIZE, &r);
    if (n > 0) k->wbuf.len += (size_t)n;
}

static void conn_up(smartbus_client *c, sb_conn *k, int64_t now)
{
    k->state = CONN_OPEN;
    k->fail_reported = 0;
    k->hb_counter = 0;
    k->next_heartbeat_at = now + HEARTBEAT_MS;
    k->last_rx_at = now;
    send_registration(c, k);
}

static void conn_start(smartbus_client *c, sb_conn *k, int64_t now, sb_sink_writer *w)
{
    int fd = -1, rc;
    if (c->kind == SMARTBUS_KIND_IPC) {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        memcpy(sa.sun_path, c->ipc_path, strlen(c->ipc_path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0) { conn_connect_failed(c, k, now, w, errno); return; }
        k->fd = fd;
        sb_set_nonblock(fd);
        rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    } else {
        struct addrinfo hints, *ai = NULL;
        char port[16];
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        snprintf(port, sizeof port, "%d", k->port);
        int gai = getaddrinfo(k->host, port, &hints, &ai);
        if (gai != 0 || !ai) {
            if (ai) freeaddrinfo(ai);
            conn_connect_failed(c, k, now, w, EHOSTUNREACH);
            return;
        }
        fd = socket(ai->ai_family, SOCK_STREAM, 0);
        if (fd < 0) { freeaddrinfo(ai); conn_connect_failed(c, k, now, w, errno); return; }
        k->fd = fd;
        sb_set_nonblock(fd);
        sb_set_nodelay(fd);
        rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
    }
    if (rc == 0) {
        conn_up(c, k, now);
    } else if (errno == EINPROGRESS || errno == EAGAIN || errno == EINTR) {
        k->state = CONN_CONNECTING;
        k->next_connect_at = now + CONNECT_TIMEOUT_MS;
    } else {
        conn_connect_failed(c, k, now, w, errno);
    }
}

static void conn_connect_done(smartbus_client *c, sb_conn *k, int64_t now, sb_sink_writer *w)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err) conn_connect_failed(c, k, now, w, err);
    else conn_up(c, k, now);
}

static void send_heartbeat(smartbus_client *c, sb_conn *k)
{
    sbw_head h;
    memset(&h, 0, sizeof h);
    h.cmd = SMARTBUS_CMD_HEARTBEAT;
    h.cmdtype = SMARTBUS_CMDTYPE_INTERNAL;
    own_src(c, &h);
    int ap = sb_load(&c->ap_unit);
    h.dst_type = SMARTBUS_NODECLI_TYPE_NODE;
    h.dst_unit = (uint8_t)(ap >= 0 ? ap : 0xFF);
    h.dst_client = 0xFF;
    sbw_heartbeat hb;
    memset(&hb, 0, sizeof hb);
    hb.layout = SBW_HB_OLD;
    hb.counter = k->hb_counter++;
    hb.send_time = (int64_t)time(NULL);
    uint8_t *p = wbuf_room(k, SBW_HB_OLD_SIZE);
    if (!p) return;
    int n = sbw_put_heartbeat(p, SBW_HB_OLD_SIZE, &h, &hb);
    if (n > 0) k->wbuf.len += (size_t)n;
}

/* ---- received packets ------------------------------------------------------ */

static void on_register_ack(smartbus_client *c, sb_conn *k, const uint8_t *pkt,
                            const sbw_head *h, int64_t now, sb_sink_writer *w)
{
    int ap;
    int32_t result;
    if (sbw_get_register_ack(pkt, (size_t)h->packet_size, &ap, &result) != SBW_OK) return;
    if (k->state != CONN_OPEN && k->state != CONN_REGISTERED) return;
    sb_store(&c->ap_unit, ap);
    if (result != 0) {
        emit_trace(w, c, 1, "link %d: registration refused (%d)", k->index, (int)result);
        emit_simple(w, c, SMARTBUS_EV_CONNECT, result, ap);
        int was_registered = k->state == CONN_REGISTERED;
        if (was_registered) conn_broken(c, k, now, w, "registration refused");
        else conn_reset(k);
        /* -10 (already connected) is retried every 2 s; anything else is final */
        k->state = result == SMARTBUS_ERR_CONNECTED ? CONN_WAIT : CONN_DEAD;
        k->next_connect_at = now + RECONNECT_MS;
        return;
    }
    if (c->kind == SMARTBUS_KIND_IPC) sb_store(&c->unit_id, ap);
    int first = 1;
    if (k->state != CONN_REGISTERED) {
        k->state = CONN_REGISTERED;
        k->registered_at = now;
        int before = sb_load(&c->registered);
        first = before == 0;
        sb_store(&c->registered, before + 1);
        if (c->active < 0) c->active = k->index;
    }
    /* reported when no other link of this client was registered already,
     * and again for a repeated ack on the same link */
    if (first) emit_simple(w, c, SMARTBUS_EV_CONNECT, 0, ap);
}

/* the delivery filter of NET.md §6.2 (the IPC client checks nothing) */
static int deliverable(smartbus_client *c, const sbw_head *h)
{
    if (c->kind == SMARTBUS_KIND_IPC) return 1;
    return !(h->dst_client & 0x80) || h->dst_type == (uint8_t)c->client_type;
}

static void answer_ping(smartbus_client *c, sb_conn *k, const uint8_t *pkt, const sbw_head *h)
{
    int req_unit = (int)(int8_t)h->src_unit;
    if (req_unit > 47) return;
    if (c->kind == SMARTBUS_KIND_NET && h->src_unit == (uint8_t)own_unit(c)) return;
    size_t need = (size_t)SBW_HEAD_SIZE + (size_t)h->datalen + 3;
    uint8_t *p = wbuf_room(k, need);
    if (!p) return;
    sbw_head a;
    memset(&a, 0, sizeof a);
    a.cmd = SMARTBUS_SYSCMD_PING_ACK;
    a.cmdtype = SMARTBUS_CMDTYPE_SYSTEM;
    own_src(c, &a);
    a.dst_type = h->src_type;
    a.dst_unit = h->src_unit;
    a.dst_client = h->src_client;
    int n = sbw_put_packet(p, need, &a, pkt + SBW_HEAD_SIZE, h->datalen, 1);
    if (n > 0) k->wbuf.len += (size_t)n;
}

static void on_global(smartbus_client *c, sb_conn *k, const uint8_t *pkt, const sbw_head *h,
                      sb_sink_writer *w)
{
    sbw_global g;
    /* no destination filter here: the vendor client reports (and answers)
     * a cmd 9 addressed to ff/ff/ff (vector global_connect.json,
     * cmd9_broadcast_dst), although NET.md §10 says the filter applies */
    if (sbw_get_global(pkt + SBW_HEAD_SIZE, (size_t)h->datalen, &g) != SBW_OK) return;
    sb_evin ev;
    memset(&ev, 0, sizeof ev);
    ev.type = SMARTBUS_EV_GLOBAL_CONNECT;
    ev.client_id = c->client_id;
    ev.unit_id = g.unit_id;
    ev.g_client_id = g.client_id;
    ev.g_client_type = g.client_type;
    ev.g_ap_unit_id = g.ap_unit;
    ev.code = g.status;
    ev.text = g.info;
    ev.text_len = strlen(g.info);
    sb_sink_put(w, c->sink, &ev);

    /* tell a newcomer about ourselves (NET.md §10, IPC.md §6.6) */
    if (h->cmd != SMARTBUS_SYSCMD_GLOBAL_CONNECT || g.status != SMARTBUS_GLOBAL_CONNECTED) return;
    if (k->state != CONN_REGISTERED) return;
    if (c->kind == SMARTBUS_KIND_NET && g.unit_id == (uint8_t)own_unit(c)) return;
    uint8_t *p = wbuf_room(k, SBW_HEAD_SIZE + SBW_GLOBAL_PAYLOAD + 3);
    if (!p) return;
    sbw_head a;
    memset(&a, 0, sizeof a);
    a.cmd = SMARTBUS_SYSCMD_GLOBAL_CONNECT_ANSWER;
    a.cmdtype = SMARTBUS_CMDTYPE_SYSTEM;
    own_src(c, &a);
    a.dst_type = g.client_type;
    a.dst_unit = g.unit_id;
    a.dst_client = g.client_id;
    sbw_global me;
    memset(&me, 0, sizeof me);
    me.inner = a;
    int ap = sb_load(&c->ap_unit);
    me.unit_id = (uint8_t)(c->kind == SMARTBUS_KIND_IPC ? ap : own_unit(c));
    me.client_id = (uint8_t)c->client_id;
    me.client_type = (uint8_t)c->client_type;
    me.ap_unit = (uint8_t)ap;
    me.status = SMARTBUS_GLOBAL_EXISTING;
    memcpy(me.info, c->info, sizeof me.info);
    int n = sbw_put_global(p, SBW_HEAD_SIZE + SBW_GLOBAL_PAYLOAD + 3, &a, &me, 1);
    if (n > 0) k->wbuf.len += (size_t)n;
}

static void on_packet(smartbus_client *c, sb_conn *k, const uint8_t *pkt, const sbw_head *h,
                      int64_t now, sb_sink_writer *w)
{
    if (h->cmdtype == SMARTBUS_CMDTYPE_INTERNAL) {
        if (h->cmd == SMARTBUS_CMD_REGISTER_ACK) on_register_ack(c, k, pkt, h, now, w);
        return;       /* heartbeat acks and anything else: liveness only */
    }
    if (h->cmdtype == SMARTBUS_CMDTYPE_SYSTEM) {
        switch (h->cmd) {
        case SMARTBUS_SYSCMD_PING:
            if (k->state == CONN_REGISTERED) answer_ping(c, k, pkt, h);
            break;    /* and delivered below */
        case SMARTBUS_SYSCMD_GLOBAL_CONNECT:
        case SMARTBUS_SYSCMD_GLOBAL_CONNECT_ANSWER:
            on_global(c, k, pkt, h, w);
            return;
        case SMARTBUS_SYSCMD_FLOW_RESULT:
        case SMARTBUS_SYSCMD_FLOW_ACK:
            flow_reply(c, pkt, h, w);
            return;
        default:
            break;
        }
    }
    if (!deliverable(c, h)) return;
    sb_add(&c->st.recv_msgs, 1);
    sb_add(&c->st.recv_bytes, (uint64_t)h->datalen);
    sb_evin ev;
    memset(&ev, 0, sizeof ev);
    ev.type = SMARTBUS_EV_DATA;
    ev.client_id = c->client_id;
    ev.head = pkt;
    ev.data = pkt + SBW_HEAD_SIZE;
    ev.size = (size_t)h->datalen;
    sb_sink_put(w, c->sink, &ev);
}

/* parses every complete packet in the read buffer; -1 when the link closed */
static int conn_parse(smartbus_client *c, sb_conn *k, int64_t now, sb_sink_writer *w)
{
    sb_buf *b = &k->rbuf;
    while (b->len - b->off >= SBW_HEAD_SIZE) {
        const uint8_t *p = b->p + b->off;
        size_t avail = b->len - b->off;
        sbw_head h;
        int rc = sbw_get_head(p, avail, &h);
        if (rc != SBW_OK) {
            emit_trace(w, c, 1, "link %d: malformed packet (%s)", k->index,
                       rc == SBW_EFLAG ? "bad head flag" : "bad sizes");
            conn_broken(c, k, now, w, "protocol error");
            return -1;
        }
        if ((size_t)h.packet_size > avail) {
            /* make room for the whole packet */
            sb_buf_compact(b);
            if (sb_buf_reserve(b, (size_t)h.packet_size - avail) != 0) {
                conn_broken(c, k, now, w, "out of memory");
                return -1;
            }
            break;
        }
        on_packet(c, k, p, &h, now, w);
        if (k->fd < 0) return -1;
        b->off += (size_t)h.packet_size;
    }
    if (b->off == b->len) b->len = b->off = 0;
    return 0;
}

static void conn_read(smartbus_client *c, sb_conn *k, int64_t now, sb_sink_writer *w)
{
    for (int turn = 0; turn < READS_PER_TURN; turn++) {
        if (sb_sink_full(w, c->sink)) return;
        sb_buf *b = &k->rbuf;
        if (b->cap - b->len < READ_CHUNK / 4) sb_buf_compact(b);
        if (sb_buf_reserve(b, READ_CHUNK / 4) != 0) {
            conn_broken(c, k, now, w, "out of memory");
            return;
        }
        size_t room = b->cap - b->len;
        ssize_t n = recv(k->fd, b->p + b->len, room, 0);
        if (n > 0) {
            b->len += (size_t)n;
            k->last_rx_at = now;
            int rc = conn_parse(c, k, now, w);
            sb_sink_flush(w);               /* let the callback thread take the batch */
            if (rc < 0 || (size_t)n < room) return;   /* closed, or drained */
        } else if (n == 0) {
            conn_broken(c, k, now, w, "closed by the server");
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            conn_broken(c, k, now, w, strerror(errno));
            return;
        }
    }
}

/* writes what the link has queued; -1 when the link closed */
static int conn_flush(smartbus_client *c, sb_conn *k, int64_t now, sb_sink_writer *w)
{
    sb_buf *b = &k->wbuf;
    while (b->off < b->len) {
        ssize_t n = send(k->fd, b->p + b->off, b->len - b->off, MSG_NOSIGNAL);
        if (n > 0) {
            b->off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            conn_broken(c, k, now, w, n < 0 ? strerror(errno) : "send returned 0");
            return -1;
        }
    }
    b->len = b->off = 0;
    return 0;
}

/* moves the application's send queue to the active link and writes */
static void client_pump(smartbus_client *c, int64_t now, sb_sink_writer *w)
{
    for (int i = 0; i < c->nconns; i++) {
        sb_conn *k = &c->conns[i];
        if (k->fd < 0 || k->state < CONN_OPEN) continue;
        for (int round = 0; round < 4; round++) {
            if (i == c->active && k->wbuf.len == 0 && sb_load(&c->sendq_msgs) > 0) {
                pthread_mutex_lock(&c->lock);
                sb_buf_swap(&c->sendq, &k->wbuf);
                c->sendq.len = c->sendq.off = 0;
                sb_store(&c->sendq_msgs, 0);
                pthread_mutex_unlock(&c->lock);
            }
            if (k->wbuf.len == 0) break;
            if (conn_flush(c, k, now, w) < 0 || k->wbuf.len != 0) break;
        }
    }
}

static void conn_timers(smartbus_client *c, sb_conn *k, int64_t now, int *timeout,
                        int paused, sb_sink_writer *w)
{
    int64_t due = -1;
    switch (k->state) {
    case CONN_WAIT:
        if (now >= k->next_connect_at) conn_start(c, k, now, w);
        else due = k->next_connect_at;
        break;
    case CONN_CONNECTING:
        if (now >= k->next_connect_at) conn_connect_failed(c, k, now, w, ETIMEDOUT);
        else due = k->next_connect_at;
        break;
    case CONN_OPEN:
    case CONN_REGISTERED:
        /* liveness: NET only; an idle IPC server sends nothing and the IPC
         * client learns of a lost server from the socket (IPC.md §5.5) */
        if (k->state == CONN_REGISTERED && c->kind == SMARTBUS_KIND_NET) {
            if (paused) k->last_rx_at = now;   /* we are not reading: not the server's fault */
            if (now - k->last_rx_at > LIVENESS_MS) {
                conn_broken(c, k, now, w, "no data from the server for 14 s");
                break;                 /* now waiting: its reconnect time is due below */
            }
        }
        if (c->kind == SMARTBUS_KIND_NET) {
            if (now >= k->next_heartbeat_at) {
                send_heartbeat(c, k);
                k->next_heartbeat_at += HEARTBEAT_MS;
                if (k->next_heartbeat_at <= now) k->next_heartbeat_at = now + HEARTBEAT_MS;
            }
            due = k->next_heartbeat_at;
        }
        if (k->state == CONN_REGISTERED && c->kind == SMARTBUS_KIND_NET) {
            int64_t live = k->last_rx_at + LIVENESS_MS + 1;
            if (due < 0 || live < due) due = live;
        }
        break;
    default:
        break;
    }
    if (k->state == CONN_WAIT && due < 0) due = k->next_connect_at;
    if (due >= 0) {
        int64_t wait = due - now;
        if (wait < 0) wait = 0;
        if (wait < *timeout) *timeout = (int)wait;
    }
}

static void client_close_links(smartbus_client *c)
{
    for (int i = 0; i < c->nconns; i++) {
        conn_reset(&c->conns[i]);
        c->conns[i].state = CONN_OFF;
    }
    sb_store(&c->registered, 0);
    c->active = -1;
}

/* ---- the I/O thread -------------------------------------------------------- */

typedef struct pollset {
    struct pollfd *fds;
    smartbus_client **cli;
    sb_conn **conn;
    size_t n, cap;
} pollset;

static int pollset_add(pollset *ps, int fd, short events, smartbus_client *c, sb_conn *k)
{
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 16;
        struct pollfd *f = realloc(ps->fds, cap * sizeof *f);
        if (!f) return -1;
        ps->fds = f;
        smartbus_client **cl = realloc(ps->cli, cap * sizeof *cl);
        if (!cl) return -1;
        ps->cli = cl;
        sb_conn **cn = realloc(ps->conn, cap * sizeof *cn);
        if (!cn) return -1;
        ps->conn = cn;
        ps->cap = cap;
    }
    ps->fds[ps->n].fd = fd;
    ps->fds[ps->n].events = events;
    ps->fds[ps->n].revents = 0;
    ps->cli[ps->n] = c;
    ps->conn[ps->n] = k;
    ps->n++;
    return 0;
}

/* A closing client stays while what the application queued is still being
 * written to a registered link, for at most LINGER_MS: closing right after
 * a send does not lose the send. */
static int client_lingers(smartbus_client *c, int64_t now)
{
    if (c->linger_until == 0) c->linger_until = now + LINGER_MS;
    if (now >= c->linger_until || sb_load(&c->registered) <= 0 || c->active < 0) return 0;
    return sb_load(&c->sendq_msgs) > 0 || c->conns[c->active].wbuf.len > 0;
}

/* adopts new clients, lets go of closing ones; 1 when asked to stop */
static int io_update_lists(void)
{
    pthread_mutex_lock(&E.lock);
    if (E.stop) {
        pthread_mutex_unlock(&E.lock);
        return 1;
    }
    int64_t now = sb_now_ms();
    while (E.adds) {
        smartbus_client *c = E.adds;
        E.adds = c->next;
        c->next = E.live;
        E.live = c;
        for (int i = 0; i < c->nconns; i++) {
            c->conns[i].state = CONN_WAIT;
            c->conns[i].next_connect_at = now;
        }
    }
    for (smartbus_client **pp = &E.live; *pp;) {
        smartbus_client *c = *pp;
        if (c->closing && !client_lingers(c, now)) {
            *pp = c->next;
            client_close_links(c);
            c->detached = 1;
            pthread_cond_broadcast(&E.cond);
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&E.lock);
    return 0;
}

static void *io_thread(void *arg)
{
    (void)arg;
    pollset ps;
    memset(&ps, 0, sizeof ps);
    sb_sink_writer w;
    memset(&w, 0, sizeof w);
    while (!io_update_lists()) {
        int64_t now = sb_now_ms();
        int timeout = 1000;
        ps.n = 0;
        pollset_add(&ps, E.waker.rfd, POLLIN, NULL, NULL);
        for (smartbus_client *c = E.live; c; c = c->next) {
            int paused = sb_sink_full(&w, c->sink);
            for (int i = 0; i < c->nconns; i++) conn_timers(c, &c->conns[i], now, &timeout, paused, &w);
            if (sb_load(&c->flows_live) > 0) {
                if (now >= c->next_flow_check) {
                    flow_timers(c, now, &w);
                    c->next_flow_check = now + FLOW_CHECK_MS;
                }
                int wait = (int)(c->next_flow_check - now);
                if (wait < timeout) timeout = wait < 0 ? 0 : wait;
            }
            client_pump(c, now, &w);
            if (c->linger_until) {            /* closing: detach as soon as flushed */
                int64_t left = client_lingers(c, now) ? c->linger_until - now : 0;
                if (left < timeout) timeout = left < 0 ? 0 : (int)left;
            }
            for (int i = 0; i < c->nconns; i++) {
                sb_conn *k = &c->conns[i];
                short ev = 0;
                if (k->fd < 0) continue;
                if (k->state == CONN_CONNECTING) ev = POLLOUT;
                else if (k->state >= CONN_OPEN) {
                    if (!paused) ev |= POLLIN;
                    if (k->wbuf.len > k->wbuf.off) ev |= POLLOUT;
                }
                if (ev) pollset_add(&ps, k->fd, ev, c, k);
            }
        }
        sb_sink_flush(&w);

        /* sleep unless an application thread queued data meanwhile (see
         * the wake-up rule in smartbus_client_send) */
        sb_store(&E.polling, 1);
        for (smartbus_client *c = E.live; c && timeout > 0; c = c->next) {
            if (c->active >= 0 && c->conns[c->active].wbuf.len == 0 && sb_load(&c->sendq_msgs) > 0)
                timeout = 0;
        }
        int nready = poll(ps.fds, (nfds_t)ps.n, timeout);
        sb_store(&E.polling, 0);
        if (nready <= 0) continue;

        now = sb_now_ms();
        if (ps.fds[0].revents) sb_waker_drain(&E.waker);
        for (size_t i = 1; i < ps.n; i++) {
            short re = ps.fds[i].revents;
            if (!re) continue;
            smartbus_client *c = ps.cli[i];
            sb_conn *k = ps.conn[i];
            if (k->fd != ps.fds[i].fd) continue;
            if (k->state == CONN_CONNECTING) {
                conn_connect_done(c, k, now, &w);
            } else {
                if (re & (POLLIN | POLLHUP | POLLERR)) conn_read(c, k, now, &w);
                if (k->fd >= 0 && (re & POLLOUT)) conn_flush(c, k, now, &w);
            }
            sb_sink_flush(&w);
        }
    }
    free(ps.fds);
    free(ps.cli);
    free(ps.conn);
    return NULL;
}

/* ---- engine life ------------------------------------------------------------ */

static int engine_attach(smartbus_client *c)
{
    pthread_mutex_lock(&E.life);
    if (!E.waker_ok) {
        if (sb_waker_open(&E.waker) != 0) {
            pthread_mutex_unlock(&E.life);
            return SMARTBUS_ERR_OTHER;
        }
        sb_store(&E.waker_ok, 1);
    }
    pthread_mutex_lock(&E.lock);
    c->next = E.adds;
    E.adds = c;
    c->started = 1;
    E.nclients++;
    int need_thread = !E.running;
    if (need_thread) {
        E.stop = 0;
        E.running = 1;
    }
    pthread_mutex_unlock(&E.lock);
    int rc = 0;
    if (need_thread && pthread_create(&E.thread, NULL, io_thread, NULL) != 0) {
        pthread_mutex_lock(&E.lock);
        E.adds = c->next;
        c->started = 0;
        E.nclients--;
        E.running = 0;
        pthread_mutex_unlock(&E.lock);
        rc = SMARTBUS_ERR_OTHER;
    }
    pthread_mutex_unlock(&E.life);
    sb_engine_wake();
    return rc;
}

static void engine_detach(smartbus_client *c)
{
    pthread_mutex_lock(&E.life);
    pthread_mutex_lock(&E.lock);
    c->closing = 1;
    sb_waker_wake(&E.waker);
    while (!c->detached) pthread_cond_wait(&E.cond, &E.lock);
    int last = --E.nclients == 0;
    if (last) E.stop = 1;
    pthread_mutex_unlock(&E.lock);
    if (last) {
        sb_waker_wake(&E.waker);
        pthread_join(E.thread, NULL);
        pthread_mutex_lock(&E.lock);
        E.running = 0;
        E.live = NULL;
        pthread_mutex_unlock(&E.lock);
    }
    pthread_mutex_unlock(&E.life);
}

/* ---- public API --------------------------------------------------------------- */

static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = 0;
    if (src) {
        while (n + 1 < size && src[n]) n++;
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

int smartbus_client_new(const smartbus_client_config *cfg, smartbus_sink *sink,
                        smartbus_client **out)
{
    *out = NULL;
    if (!cfg || !sink) return SMARTBUS_ERR_ARGUMENT;
    if (cfg->client_id < 0 || cfg->client_id > 255) return SMARTBUS_ERR_CLIENTID_INVALID;
    if (cfg->client_type < 0 || cfg->client_type > 255) return SMARTBUS_ERR_CLIENTTYPE_INVALID;
    smartbus_client *c = calloc(1, sizeof *c);
    if (!c) return SMARTBUS_ERR_MEM_ALLOC;
    c->kind = cfg->kind;
    c->client_id = cfg->client_id;
    c->client_type = cfg->client_type;
    c->sink = sink;
    c->active = -1;
    c->ap_unit = -1;
    c->max_bytes = cfg->max_send_bytes ? cfg->max_send_bytes : DEFAULT_MAX_BYTES;
    c->max_msgs = cfg->max_send_msgs > 0 ? cfg->max_send_msgs : DEFAULT_MAX_MSGS;
    copy_str(c->user, sizeof c->user, cfg->user);
    copy_str(c->password, sizeof c->password, cfg->password);
    copy_str(c->info, sizeof c->info, cfg->info);
    for (int i = 0; i < 2; i++) {
        c->conns[i].index = i;
        c->conns[i].fd = -1;
    }
    int rc = 0;
    if (cfg->kind == SMARTBUS_KIND_NET) {
        c->unit_id = cfg->unit_id;
        if (cfg->unit_id < MIN_SMARTBUS_NETCLI_UNITID || cfg->unit_id >= MAX_SMARTBUS_NODE_NUM)
            rc = SMARTBUS_ERR_UNITID_INVALID;
        else if (!cfg->master_ip || !*cfg->master_ip ||
                 strlen(cfg->master_ip) >= MAX_SMARTBUS_IPADDR_SIZE ||
                 cfg->master_port <= 0 || cfg->master_port > 65535)
            rc = SMARTBUS_ERR_ARGUMENT;
        else {
            copy_str(c->conns[0].host, MAX_SMARTBUS_IPADDR_SIZE, cfg->master_ip);
            c->conns[0].port = cfg->master_port;
            c->nconns = 1;
            if (cfg->slave_ip && *cfg->slave_ip && cfg->slave_port > 0 &&
                cfg->slave_port < 0xFFFF) {
                if (strlen(cfg->slave_ip) >= MAX_SMARTBUS_IPADDR_SIZE) rc = SMARTBUS_ERR_ARGUMENT;
                copy_str(c->conns[1].host, MAX_SMARTBUS_IPADDR_SIZE, cfg->slave_ip);
                c->conns[1].port = cfg->slave_port;
                c->nconns = 2;
            }
        }
    } else if (cfg->kind == SMARTBUS_KIND_IPC) {
        c->unit_id = -1;
        if (cfg->client_type < 2) rc = SMARTBUS_ERR_CLIENTTYPE_INVALID;
        const char *path = cfg->ipc_path;
        if (!path || !*path) path = getenv("SMARTBUS_IPC_PATH");
        if (!path || !*path) path = SMARTBUS_IPC_DEFAULT_PATH;
        if (strlen(path) >= sizeof c->ipc_path) rc = SMARTBUS_ERR_ARGUMENT;
        else copy_str(c->ipc_path, sizeof c->ipc_path, path);
        c->nconns = 1;
    } else {
        rc = SMARTBUS_ERR_ARGUMENT;
    }
    if (rc != 0) {
        free(c);
        return rc;
    }
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return 0;
}

int smartbus_client_start(smartbus_client *c)
{
    pthread_mutex_lock(&E.lock);
    int started = c->started;
    pthread_mutex_unlock(&E.lock);
    if (started) return 0;
    return engine_attach(c);
}

void smartbus_client_free(smartbus_client *c)
{
    if (!c) return;
    pthread_mutex_lock(&E.lock);
    int started = c->started;
    pthread_mutex_unlock(&E.lock);
    if (started) engine_detach(c);
    for (int i = 0; i < 2; i++) {
        sb_buf_free(&c->conns[i].rbuf);
        sb_buf_free(&c->conns[i].wbuf);
    }
    sb_buf_free(&c->sendq);
    free(c->flows);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int smartbus_client_unit_id(smartbus_client *c) { return sb_load(&c->unit_id); }
int smartbus_client_ap_unit_id(smartbus_client *c) { return sb_load(&c->ap_unit); }
int smartbus_client_connected(smartbus_client *c) { return sb_load(&c->registered) > 0; }

void smartbus_client_get_stats(smartbus_client *c, smartbus_client_stats *st)
{
    pthread_mutex_lock(&c->lock);
    *st = c->st;
    st->recv_msgs = sb_relaxed(&c->st.recv_msgs);
    st->recv_bytes = sb_relaxed(&c->st.recv_bytes);
    st->queued_msgs = (uint64_t)sb_load(&c->sendq_msgs);
    st->queued_bytes = c->sendq.len;
    pthread_mutex_unlock(&c->lock);
}

/* ---- sending ---------------------------------------------------------------- */

/* the destination checks shared by data and ping (NET.md §6.1, IPC.md §4.2) */
static int check_dst(smartbus_client *c, int dst_unit, int dst_client, int size)
{
    if (dst_unit > 47) return SMARTBUS_ERR_UNITID_INVALID;
    (void)c;
    (void)dst_client;
    if (size > SMARTBUS_MAX_DATA_SIZE) return SMARTBUS_ERR_MAX_DATASIZE;
    return 0;
}

static int check_own(smartbus_client *c, int dst_unit, int dst_client)
{
    if (c->kind == SMARTBUS_KIND_NET)
        return dst_unit == c->unit_id ? SMARTBUS_ERR_SEND_OWN : 0;
    return (dst_unit == sb_load(&c->ap_unit) && dst_client == c->client_id) ? SMARTBUS_ERR_SEND_OWN : 0;
}

/* Locks the client and makes room for `need` more bytes in the send queue.
 * On success returns 0 with the lock held; *was_empty tells whether the
 * queue was empty. */
static int queue_begin(smartbus_client *c, size_t need, int *was_empty)
{
    pthread_mutex_lock(&c->lock);
    if (sb_load(&c->registered) <= 0) {
        pthread_mutex_unlock(&c->lock);
        return SMARTBUS_ERR_CONN_NOT_ESTAB;
    }
    if (c->sendq_msgs >= c->max_msgs || (c->sendq.len > 0 && c->sendq.len + need > c->max_bytes)) {
        c->st.send_full++;
        pthread_mutex_unlock(&c->lock);
        return SMARTBUS_ERR_BUFF_FULL;
    }
    if (sb_buf_reserve(&c->sendq, need) != 0) {
        pthread_mutex_unlock(&c->lock);
        return SMARTBUS_ERR_MEM_ALLOC;
    }
    *was_empty = c->sendq_msgs == 0;
    return 0;
}

/* Accounts `n` packets of `bytes` payload, unlocks and wakes the I/O thread
 * when it sleeps and the queue was empty (at most one wake-up per sleep). */
static void queue_end(smartbus_client *c, int n, uint64_t bytes, int was_empty)
{
    sb_store(&c->sendq_msgs, c->sendq_msgs + n);
    c->st.sent_msgs += (uint64_t)n;
    c->st.sent_bytes += bytes;
    pthread_mutex_unlock(&c->lock);
    if (was_empty && sb_load(&E.polling) && sb_xchg(&E.polling, 0)) sb_waker_wake(&E.waker);
}

static int put_data(smartbus_client *c, int cmd, int cmdtype, int dst_unit, int dst_client,
                    int dst_type, const void *data, int size)
{
    sbw_head h;
    memset(&h, 0, sizeof h);
    h.cmd = (uint8_t)cmd;
    h.cmdtype = (uint8_t)cmdtype;
    own_src(c, &h);
    h.dst_type = (uint8_t)dst_type;
    h.dst_unit = (uint8_t)dst_unit;
    h.dst_client = (uint8_t)dst_client;
    size_t need = (size_t)SBW_HEAD_SIZE + (size_t)size + 3;
    int n = sbw_put_packet(c->sendq.p + c->sendq.len, need, &h, data, size, 1);
    if (n < 0) return SMARTBUS_ERR_ARGUMENT;
    c->sendq.len += (size_t)n;
    return 0;
}

static int send_packet(smartbus_client *c, int cmd, int cmdtype, int dst_unit, int dst_client,
                       int dst_type, const void *data, int size)
{
    if (size < 0 || !data) size = 0;    /* a negative size is sent as datalen 0 */
    int was_empty;
    int rc = queue_begin(c, (size_t)SBW_HEAD_SIZE + (size_t)size + 3, &was_empty);
    if (rc != 0) return rc;
    rc = put_data(c, cmd, cmdtype, dst_unit, dst_client, dst_type, data, size);
    queue_end(c, rc == 0, rc == 0 ? (uint64_t)size : 0, was_empty);
    return rc;
}

int smartbus_client_send(smartbus_client *c, int cmd, int cmdtype, int dst_unit, int dst_client,
                         int dst_type, const void *data, int size)
{
    int rc = check_dst(c, dst_unit, dst_client, size);
    if (rc) return rc;
    if ((cmdtype & 0xFF) == SMARTBUS_CMDTYPE_INTERNAL) return SMARTBUS_ERR_CMDTYPE_INVALID;
    if ((rc = check_own(c, dst_unit, dst_client)) != 0) return rc;
    return send_packet(c, cmd, cmdtype, dst_unit, dst_client, dst_type, data, size);
}

int smartbus_client_send_many(smartbus_client *c, int cmd, int cmdtype, int dst_unit,
                              int dst_client, int dst_type, const void *const *datas,
                              const int *sizes, int count, int *err)
{
    *err = check_dst(c, dst_unit, dst_client, 0);
    if (!*err && (cmdtype & 0xFF) == SMARTBUS_CMDTYPE_INTERNAL) *err = SMARTBUS_ERR_CMDTYPE_INVALID;
    if (!*err) *err = check_own(c, dst_unit, dst_client);
    if (*err || count <= 0) return 0;
    size_t total = 0;
    for (int i = 0; i < count; i++) {
        if (sizes[i] > SMARTBUS_MAX_DATA_SIZE) { *err = SMARTBUS_ERR_MAX_DATASIZE; count = i; break; }
        total += (size_t)SBW_HEAD_SIZE + (size_t)(sizes[i] > 0 ? sizes[i] : 0) + 3;
    }
    if (count == 0) return 0;
    int was_empty;
    int rc = queue_begin(c, total, &was_empty);
    if (rc != 0) { *err = rc; return 0; }
    int done = 0;
    uint64_t bytes = 0;
    int room = c->max_msgs - c->sendq_msgs;
    for (; done < count; done++) {
        if (done >= room) { *err = SMARTBUS_ERR_BUFF_FULL; c->st.send_full++; break; }
        int size = sizes[done] > 0 && datas[done] ? sizes[done] : 0;
        if ((rc = put_data(c, cmd, cmdtype, dst_unit, dst_client, dst_type, datas[done], size)) != 0) {
            *err = rc;
            break;
        }
        bytes += (uint64_t)size;
    }
    queue_end(c, done, bytes, was_empty);
    return done;
}

int smartbus_client_ping(smartbus_client *c, int dst_unit, int dst_client, int dst_type,
                         const void *data, int size)
{
    int rc = check_dst(c, dst_unit, dst_client, size);
    if (rc) return rc;
    if ((rc = check_own(c, dst_unit, dst_client)) != 0) return rc;
    return send_packet(c, SMARTBUS_SYSCMD_PING, SMARTBUS_CMDTYPE_SYSTEM, dst_unit, dst_client,
                       dst_type, data, size);
}

static size_t bounded_strlen(const char *s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n]) n++;
    return n;
}

int smartbus_client_invoke_flow(smartbus_client *c, int server_unit, int process_index,
                                const char *project_id, const char *flow_id, int mode,
                                int timeout_ms, const char *params, int params_len)
{
    if (server_unit < 0 || server_unit >= MAX_GLOBAL_SMART_NODE) return SMARTBUS_ERR_UNITID_INVALID;
    if (process_index < 0 || process_index > 255) return SMARTBUS_ERR_CLIENTID_INVALID;
    if (!project_id || !flow_id || mode < 0 || mode > 255) return SMARTBUS_ERR_ARGUMENT;
    if (!params) params = "";
    if (params_len < 0) params_len = (int)bounded_strlen(params, SMARTBUS_MAX_FLOW_PARAM_SIZE + 1);
    if (params_len > SMARTBUS_MAX_FLOW_PARAM_SIZE) return SMARTBUS_ERR_MAX_DATASIZE;

    int32_t id = __atomic_add_fetch(&g_invoke_id, 1, __ATOMIC_SEQ_CST);
    if (id <= 0) {                                      /* wrapped: start over at 1 */
        __atomic_store_n(&g_invoke_id, 1, __ATOMIC_SEQ_CST);
        id = 1;
    }
    sbw_invoke v;
    memset(&v, 0, sizeof v);
    copy_str(v.project, sizeof v.project, project_id);
    copy_str(v.flow, sizeof v.flow, flow_id);
    v.mode = (uint8_t)mode;
    v.channel = -1;
    v.invoke_id = id;
    v.params = params;
    v.params_len = params_len;
    sbw_head h;
    memset(&h, 0, sizeof h);
    h.cmd = SMARTBUS_SYSCMD_INVOKE_FLOW;
    h.cmdtype = SMARTBUS_CMDTYPE_SYSTEM;
    own_src(c, &h);
    h.dst_type = SMARTBUS_NODECLI_TYPE_IPSC;
    h.dst_unit = (uint8_t)server_unit;
    h.dst_client = (uint8_t)process_index;

    size_t need = (size_t)SBW_HEAD_SIZE + (size_t)sbw_invoke_payload_size(params_len) + 3;
    int was_empty;
    int rc = queue_begin(c, need, &was_empty);
    if (rc != 0) return rc;
    sb_flow *f = flow_insert(c, id);
    if (!f) {
        pthread_mutex_unlock(&c->lock);
        return SMARTBUS_ERR_BUFF_FULL;
    }
    int64_t now = sb_now_ms();
    int ack_ms = timeout_ms < 1000 ? 1000 : timeout_ms > 5000 ? 5000 : timeout_ms;
    copy_str(f->project, sizeof f->project, project_id);
    f->wait_ack = 1;
    f->ack_at = now + ack_ms;
    /* the mode of *this* call decides (the vendor's build C looked at the
     * previous one); a timeout <= 0 times the result out at the next check */
    f->wait_result = mode != SMARTBUS_FLOW_MODE_NORESULT;
    f->result_at = now + (timeout_ms > 0 ? timeout_ms : 0);
    int n = sbw_put_invoke(c->sendq.p + c->sendq.len, need, &h, &v, 1);
    if (n > 0) c->sendq.len += (size_t)n;
    else flow_delete(c, f);
    queue_end(c, n > 0, (uint64_t)params_len, was_empty);
    if (n <= 0) return SMARTBUS_ERR_ARGUMENT;
    sb_engine_wake();    /* so that the I/O thread starts checking timers */
    return id;
}

int smartbus_client_notify(smartbus_client *c, int server_unit, int process_index,
                           const char *project_id, const char *title, int mode, int expires_ms,
                           const char *params, int params_len)
{
    if (server_unit < 0 || server_unit >= MAX_GLOBAL_SMART_NODE) return SMARTBUS_ERR_UNITID_INVALID;
    if (process_index < 0 || process_index > 255) return SMARTBUS_ERR_CLIENTID_INVALID;
    if (!title || !*title || !params || mode < 0 || mode > 255) return SMARTBUS_ERR_ARGUMENT;
    if (params_len < 0) params_len = (int)bounded_strlen(params, SMARTBUS_MAX_FLOW_PARAM_SIZE + 1);
    if (params_len == 0) return SMARTBUS_ERR_ARGUMENT;
    if (params_len > SMARTBUS_MAX_FLOW_PARAM_SIZE) return SMARTBUS_ERR_MAX_DATASIZE;
    int32_t id = __atomic_add_fetch(&g_notify_id, 1, __ATOMIC_SEQ_CST);
    if (id <= 0) {
        __atomic_store_n(&g_notify_id, 1, __ATOMIC_SEQ_CST);
        id = 1;
    }
    sbw_notify v;
    memset(&v, 0, sizeof v);
    copy_str(v.project, sizeof v.project, project_id);
    copy_str(v.title, sizeof v.title, title);
    v.mode = (uint8_t)mode;
    v.notify_id = id;
    v.expires = expires_ms;
    v.params = params;
    v.params_len = params_len;
    sbw_head h;
    memset(&h, 0, sizeof h);
    h.cmd = SMARTBUS_SYSCMD_NOTIFY;
    h.cmdtype = SMARTBUS_CMDTYPE_SYSTEM;
    own_src(c, &h);
    h.dst_type = SMARTBUS_NODECLI_TYPE_IPSC;
    h.dst_unit = (uint8_t)server_unit;
    h.dst_client = (uint8_t)process_index;
    size_t need = (size_t)SBW_HEAD_SIZE + (size_t)sbw_notify_payload_size(params_len) + 3;
    int was_empty;
    int rc = queue_begin(c, need, &was_empty);
    if (rc != 0) return rc;
    int n = sbw_put_notify(c->sendq.p + c->sendq.len, need, &h, &v, 1);
    if (n > 0) c->sendq.len += (size_t)n;
    queue_end(c, n > 0, (uint64_t)params_len, was_empty);
    return n > 0 ? id : SMARTBUS_ERR_ARGUMENT;
}

int smartbus_client_flow_reply(smartbus_client *c, int result, int dst_unit, int dst_client,
                               int dst_type, const char *project_id, int invoke_id, int code,
                               const char *text, int text_len)
{
    if (dst_unit < 0 || dst_unit > 255 || dst_client < 0 || dst_client > 255 || dst_type < 0 ||
        dst_type > 255)
        return SMARTBUS_ERR_ARGUMENT;
    if (!text) text = "";
    if (text_len < 0) text_len = (int)strlen(text);
    if (text_len > SMARTBUS_MAX_DATA_SIZE - 64) return SMARTBUS_ERR_MAX_DATASIZE;
    sbw_flow_reply r;
    memset(&r, 0, sizeof r);
    copy_str(r.project, sizeof r.project, project_id);
    r.invoke_id = invoke_id;
    r.channel = -1;
    r.code = code;
    r.text = text;
    r.text_len = text_len;
    sbw_head h;
    memset(&h, 0, sizeof h);
    h.cmd = result ? SMARTBUS_SYSCMD_FLOW_RESULT : SMARTBUS_SYSCMD_FLOW_ACK;
    h.cmdtype = SMARTBUS_CMDTYPE_SYSTEM;
    own_src(c, &h);
    h.dst_type = (uint8_t)dst_type;
    h.dst_unit = (uint8_t)dst_unit;
    h.dst_client = (uint8_t)dst_client;
    size_t need = (size_t)SBW_HEAD_SIZE + 64 + (size_t)text_len + 3;
    int was_empty;
    int rc = queue_begin(c, need, &was_empty);
    if (rc != 0) return rc;
    int n = result ? sbw_put_flow_result(c->sendq.p + c->sendq.len, need, &h, &r, 1)
                   : sbw_put_flow_ack(c->sendq.p + c->sendq.len, need, &h, &r, 1);
    if (n > 0) c->sendq.len += (size_t)n;
    queue_end(c, n > 0, (uint64_t)text_len, was_empty);
    return n > 0 ? 0 : SMARTBUS_ERR_ARGUMENT;
}
