/*
 * link.c - one link of a client: a connection to its server (master or
 * slave for NET, the Unix socket for IPC) and the protocol spoken on it
 * (NET.md §5-§10, IPC.md §5-§6): connect, register, heartbeat, liveness,
 * reconnect; read, parse and handle what the server sends (registration
 * acks, pings, global-connect events, flow replies, data for the
 * application); write what the link has queued.  I/O thread only.
 *
 * Link behaviour: registration on every new connection, heartbeats every
 * 1 s (NET), liveness 14 s (NET), reconnect after 2 s (immediately after
 * losing a registered link), no retry after a refused registration except
 * -10, master and slave links at the same time.
 */
#include "platform.h"
#include <errno.h>
#include <netdb.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client_internal.h"

#define RECONNECT_MS       2000
#define HEARTBEAT_MS       1000
#define LIVENESS_MS        14000
#define CONNECT_TIMEOUT_MS 5000
#define READ_CHUNK         (256 * 1024)
#define READS_PER_TURN     8
#define LINK_BUF_KEEP      ((size_t)1 << 20)   /* empty link buffers above this are freed */

/* ---- events ---------------------------------------------------------- */

/* a connect (code, access point unit) or disconnect event */
static void emit_link_event(sb_sink_writer *w, smartbus_client *c, int type, int code, int unit)
{
    sb_evin ev = { .type = type, .client_id = c->client_id, .code = code, .unit_id = unit };
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
    sb_evin ev = { .type = SMARTBUS_EV_TRACE, .client_id = c->client_id, .code = is_error,
                   .text = msg, .text_len = (size_t)n };
    sb_sink_put(w, c->sink, &ev);
}

/* ---- link state and connecting ------------------------------------------ */

static void link_reset(sb_link *k)
{
    if (k->fd >= 0) {
        /* closed under the lock that fork() holds: a child never finds the
         * number of a closed socket here (see engine.c) */
        sb_sockets_lock();
        close(k->fd);
        k->fd = -1;
        sb_sockets_unlock();
    }
    k->rbuf.len = k->rbuf.off = 0;
    k->wbuf.len = k->wbuf.off = 0;
    k->app_end = 0;
    sb_buf_trim(&k->rbuf, LINK_BUF_KEEP);
    sb_buf_trim(&k->wbuf, LINK_BUF_KEEP);
}

/* A link is lost: the application's packets in its write buffer that the
 * kernel took no byte of go to c->resend, in order, to be sent again on
 * the next link (sendq.c).  A packet the kernel took part of is not sent
 * again (at most once: the server may have read it), nor are the
 * registration, heartbeats and answers the I/O thread wrote. */
static void link_keep_unsent(smartbus_client *c, sb_link *k, sb_sink_writer *w)
{
    size_t from = 0;
    while (from < k->app_end && from < k->wbuf.off) {
        sbw_head h;
        sbw_read_head(k->wbuf.p + from, &h);
        from += (size_t)h.packet_size;
    }
    if (from >= k->app_end) return;
    int msgs = 0;
    for (size_t at = from; at < k->app_end; msgs++) {
        sbw_head h;
        sbw_read_head(k->wbuf.p + at, &h);
        at += (size_t)h.packet_size;
    }
    size_t n = k->app_end - from;
    if (sb_buf_reserve(&c->resend, n) != 0) {
        emit_trace(w, c, 1, "link %d: out of memory, %d unsent messages lost", k->index, msgs);
        return;
    }
    memcpy(c->resend.p + c->resend.len, k->wbuf.p + from, n);
    c->resend.len += n;
    c->resend_msgs += msgs;
    emit_trace(w, c, 0, "link %d: %d messages not yet written are sent again", k->index, msgs);
}

/* appends bytes the I/O thread generates (registration, heartbeat, answers) */
static uint8_t *link_room(sb_link *k, size_t n)
{
    if (sb_buf_reserve(&k->wbuf, n) != 0) return NULL;
    return k->wbuf.p + k->wbuf.len;
}

static void link_broken(smartbus_client *c, sb_link *k, int64_t now, sb_sink_writer *w,
                        const char *why)
{
    int was_registered = k->state == LINK_REGISTERED;
    emit_trace(w, c, 0, "link %d (%s) closed: %s", k->index,
               c->kind == SMARTBUS_KIND_IPC ? c->ipc_path : k->host, why);
    link_keep_unsent(c, k, w);
    link_reset(k);
    k->state = LINK_WAIT;
    if (was_registered) {
        int left = sb_load(&c->registered) - 1;
        sb_store(&c->registered, left);
        if (c->active == k->index) {
            c->active = -1;
            for (int i = 0; i < c->nlinks; i++)
                if (c->links[i].state == LINK_REGISTERED) c->active = i;
        }
        if (left == 0) emit_link_event(w, c, SMARTBUS_EV_DISCONNECT, 0, 0);
        /* reconnect at once, but not in a tight loop against a server that
         * closes every link right after accepting it */
        k->next_connect_at = now - k->registered_at < RECONNECT_MS ? now + RECONNECT_MS : now;
    } else {
        k->next_connect_at = now + RECONNECT_MS;
    }
}

/* a connection attempt failed: retried later; the first failure of a row is
 * reported (a trace saying why, and the -20 event) */
static void link_connect_failed_why(smartbus_client *c, sb_link *k, int64_t now,
                                    sb_sink_writer *w, const char *why)
{
    link_reset(k);
    k->state = LINK_WAIT;
    k->next_connect_at = now + RECONNECT_MS;
    if (!k->fail_reported) {
        k->fail_reported = 1;
        if (c->kind == SMARTBUS_KIND_IPC)
            emit_trace(w, c, 1, "link %d: cannot connect to %s: %s", k->index, c->ipc_path, why);
        else
            emit_trace(w, c, 1, "link %d: cannot connect to %s:%d: %s", k->index, k->host,
                       k->port, why);
        emit_link_event(w, c, SMARTBUS_EV_CONNECT, SMARTBUS_ERR_ESTABLI_CONNECT,
                        sb_load(&c->ap_unit));
    }
}

static void link_connect_failed(smartbus_client *c, sb_link *k, int64_t now, sb_sink_writer *w,
                                int err)
{
    link_connect_failed_why(c, k, now, w, strerror(err));
}

static void send_registration(smartbus_client *c, sb_link *k)
{
    sbw_register r;
    memset(&r, 0, sizeof r);
    r.layout = c->kind == SMARTBUS_KIND_IPC ? SBW_REG_IPC : SBW_REG_NET_A;
    r.client_type = (uint8_t)c->client_type;
    r.unit_id = (uint8_t)sb_own_unit(c);
    r.client_id = (uint8_t)c->client_id;
    r.conn_index = (uint8_t)k->index;
    memcpy(r.user, c->user, sizeof r.user);
    memcpy(r.password, c->password, sizeof r.password);
    memcpy(r.info, c->info, sizeof r.info);
    r.ap_unit = sb_load(&c->ap_unit);
    uint8_t *p = link_room(k, SBW_REG_NET_C_SIZE);
    if (!p) return;
    int n = sbw_put_register(p, SBW_REG_NET_C_SIZE, &r);
    if (n > 0) k->wbuf.len += (size_t)n;
}

static void link_up(smartbus_client *c, sb_link *k, int64_t now)
{
    k->state = LINK_OPEN;
    k->hb_counter = 0;
    k->next_heartbeat_at = now + HEARTBEAT_MS;
    k->last_rx_at = now;
    send_registration(c, k);
}

static void link_start(smartbus_client *c, sb_link *k, int64_t now, sb_sink_writer *w)
{
    int fd = -1, rc;
    if (c->kind == SMARTBUS_KIND_IPC) {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        memcpy(sa.sun_path, c->ipc_path, strlen(c->ipc_path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0) { link_connect_failed(c, k, now, w, errno); return; }
        k->fd = fd;
        sb_set_nonblock(fd);
        sb_socket_nosigpipe(fd);
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
            /* the resolver's own words ("Name or service not known"): no errno says it */
            link_connect_failed_why(c, k, now, w,
                                    gai == 0 ? "no address" :
                                    gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
            return;
        }
        fd = socket(ai->ai_family, SOCK_STREAM, 0);
        if (fd < 0) { freeaddrinfo(ai); link_connect_failed(c, k, now, w, errno); return; }
        k->fd = fd;
        sb_set_nonblock(fd);
        sb_socket_nosigpipe(fd);
        sb_set_nodelay(fd);
        rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
    }
    if (rc == 0) {
        link_up(c, k, now);
    } else if (errno == EINPROGRESS || errno == EAGAIN || errno == EINTR) {
        k->state = LINK_CONNECTING;
        k->next_connect_at = now + CONNECT_TIMEOUT_MS;
    } else {
        link_connect_failed(c, k, now, w, errno);
    }
}

void sb_link_connect_done(smartbus_client *c, sb_link *k, int64_t now, sb_sink_writer *w)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err) link_connect_failed(c, k, now, w, err);
    else link_up(c, k, now);
}

static void send_heartbeat(smartbus_client *c, sb_link *k)
{
    int ap = sb_load(&c->ap_unit);
    sbw_head h = sb_client_head(c, SMARTBUS_CMD_HEARTBEAT, SMARTBUS_CMDTYPE_INTERNAL,
                                SMARTBUS_NODECLI_TYPE_NODE, ap >= 0 ? ap : 0xFF, 0xFF);
    sbw_heartbeat hb;
    memset(&hb, 0, sizeof hb);
    hb.layout = SBW_HB_OLD;
    hb.counter = k->hb_counter++;
    hb.send_time = (int64_t)time(NULL);
    uint8_t *p = link_room(k, SBW_HB_OLD_SIZE);
    if (!p) return;
    int n = sbw_put_heartbeat(p, SBW_HB_OLD_SIZE, &h, &hb);
    if (n > 0) k->wbuf.len += (size_t)n;
}

/* ---- received packets ------------------------------------------------------ */

static void on_register_ack(smartbus_client *c, sb_link *k, const uint8_t *pkt,
                            const sbw_head *h, int64_t now, sb_sink_writer *w)
{
    int ap;
    int32_t result;
    if (sbw_get_register_ack(pkt, (size_t)h->packet_size, &ap, &result) != SBW_OK) return;
    if (k->state != LINK_OPEN && k->state != LINK_REGISTERED) return;
    sb_store(&c->ap_unit, ap);
    if (result != 0) {
        emit_trace(w, c, 1, "link %d: registration refused (%d)", k->index, (int)result);
        emit_link_event(w, c, SMARTBUS_EV_CONNECT, result, ap);
        int was_registered = k->state == LINK_REGISTERED;
        if (was_registered) link_broken(c, k, now, w, "registration refused");
        else link_reset(k);
        /* -10 (already connected) is retried every 2 s; anything else is final */
        k->state = result == SMARTBUS_ERR_CONNECTED ? LINK_WAIT : LINK_DEAD;
        k->next_connect_at = now + RECONNECT_MS;
        return;
    }
    if (c->kind == SMARTBUS_KIND_IPC) sb_store(&c->unit_id, ap);
    int first = 1;
    if (k->state != LINK_REGISTERED) {
        k->state = LINK_REGISTERED;
        k->registered_at = now;
        k->fail_reported = 0;          /* the next outage's -20 is reported again */
        int before = sb_load(&c->registered);
        first = before == 0;
        sb_store(&c->registered, before + 1);
        if (c->active < 0) c->active = k->index;
    }
    /* reported when no other link of this client was registered already,
     * and again for a repeated ack on the same link */
    if (first) emit_link_event(w, c, SMARTBUS_EV_CONNECT, 0, ap);
}

/* the delivery filter of NET.md §6.2 (the IPC client checks nothing) */
static int deliverable(smartbus_client *c, const sbw_head *h)
{
    if (c->kind == SMARTBUS_KIND_IPC) return 1;
    return !(h->dst_client & 0x80) || h->dst_type == (uint8_t)c->client_type;
}

static void answer_ping(smartbus_client *c, sb_link *k, const uint8_t *pkt, const sbw_head *h)
{
    int req_unit = (int)(int8_t)h->src_unit;
    if (req_unit >= MAX_SMARTBUS_NODE_NUM) return;
    if (c->kind == SMARTBUS_KIND_NET && h->src_unit == (uint8_t)sb_own_unit(c)) return;
    size_t need = sbw_packet_room(h->datalen);
    uint8_t *p = link_room(k, need);
    if (!p) return;
    sbw_head a = sb_client_head(c, SMARTBUS_SYSCMD_PING_ACK, SMARTBUS_CMDTYPE_SYSTEM, h->src_type,
                                h->src_unit, h->src_client);
    int n = sbw_put_packet(p, need, &a, pkt + SBW_HEAD_SIZE, h->datalen, SBW_PAD_CLIENT);
    if (n > 0) k->wbuf.len += (size_t)n;
}

static void on_global(smartbus_client *c, sb_link *k, const uint8_t *pkt, const sbw_head *h,
                      sb_sink_writer *w)
{
    sbw_global g;
    /* no destination filter here: the vendor client reports (and answers)
     * a cmd 9 addressed to ff/ff/ff (vector global_connect.json,
     * cmd9_broadcast_dst), although NET.md §10 says the filter applies */
    if (sbw_get_global(pkt + SBW_HEAD_SIZE, (size_t)h->datalen, &g) != SBW_OK) return;
    sb_evin ev = { .type = SMARTBUS_EV_GLOBAL_CONNECT, .client_id = c->client_id,
                   .unit_id = g.unit_id, .g_client_id = g.client_id,
                   .g_client_type = g.client_type, .g_ap_unit_id = g.ap_unit,
                   .code = g.status, .text = g.info, .text_len = strlen(g.info) };
    sb_sink_put(w, c->sink, &ev);

    /* tell a newcomer about ourselves (NET.md §10, IPC.md §6.6) */
    if (h->cmd != SMARTBUS_SYSCMD_GLOBAL_CONNECT || g.status != SMARTBUS_GLOBAL_CONNECTED) return;
    if (k->state != LINK_REGISTERED) return;
    if (c->kind == SMARTBUS_KIND_NET && g.unit_id == (uint8_t)sb_own_unit(c)) return;
    size_t need = sbw_packet_room(SBW_GLOBAL_PAYLOAD);
    uint8_t *p = link_room(k, need);
    if (!p) return;
    sbw_head a = sb_client_head(c, SMARTBUS_SYSCMD_GLOBAL_CONNECT_ANSWER, SMARTBUS_CMDTYPE_SYSTEM,
                                g.client_type, g.unit_id, g.client_id);
    sbw_global me;
    memset(&me, 0, sizeof me);
    me.inner = a;
    int ap = sb_load(&c->ap_unit);
    me.unit_id = (uint8_t)(c->kind == SMARTBUS_KIND_IPC ? ap : sb_own_unit(c));
    me.client_id = (uint8_t)c->client_id;
    me.client_type = (uint8_t)c->client_type;
    me.ap_unit = (uint8_t)ap;
    me.status = SMARTBUS_GLOBAL_EXISTING;
    memcpy(me.info, c->info, sizeof me.info);
    int n = sbw_put_global(p, need, &a, &me, SBW_PAD_CLIENT);
    if (n > 0) k->wbuf.len += (size_t)n;
}

static void on_packet(smartbus_client *c, sb_link *k, const uint8_t *pkt, const sbw_head *h,
                      int64_t now, sb_sink_writer *w)
{
    if (h->cmdtype == SMARTBUS_CMDTYPE_INTERNAL) {
        if (h->cmd == SMARTBUS_CMD_REGISTER_ACK) on_register_ack(c, k, pkt, h, now, w);
        return;       /* heartbeat acks and anything else: liveness only */
    }
    if (h->cmdtype == SMARTBUS_CMDTYPE_SYSTEM) {
        switch (h->cmd) {
        case SMARTBUS_SYSCMD_PING:
            if (k->state == LINK_REGISTERED) answer_ping(c, k, pkt, h);
            break;    /* and delivered below */
        case SMARTBUS_SYSCMD_GLOBAL_CONNECT:
        case SMARTBUS_SYSCMD_GLOBAL_CONNECT_ANSWER:
            on_global(c, k, pkt, h, w);
            return;
        case SMARTBUS_SYSCMD_FLOW_RESULT:
        case SMARTBUS_SYSCMD_FLOW_ACK: {
            int foreign = sb_flows_on_reply(c, pkt, h, w);
            if (foreign)
                emit_trace(w, c, 1, "flow %s for invoke %d from %u/%u/%u ignored: the invoke "
                           "went to another IPSC", h->cmd == SMARTBUS_SYSCMD_FLOW_ACK ? "ack"
                           : "result", foreign, h->src_type, h->src_unit, h->src_client);
            return;
        }
        default:
            break;
        }
    }
    if (!deliverable(c, h)) return;
    sb_add(&c->st.recv_msgs, 1);
    sb_add(&c->st.recv_bytes, (uint64_t)h->datalen);
    sb_evin ev = { .type = SMARTBUS_EV_DATA, .client_id = c->client_id, .head = pkt,
                   .data = pkt + SBW_HEAD_SIZE, .size = (size_t)h->datalen };
    sb_sink_put(w, c->sink, &ev);
}

/* parses every complete packet in the read buffer; -1 when the link closed */
static int link_parse(smartbus_client *c, sb_link *k, int64_t now, sb_sink_writer *w)
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
            link_broken(c, k, now, w, "protocol error");
            return -1;
        }
        if ((size_t)h.packet_size > avail) {
            /* the rest is read after it; the buffer grows as bytes arrive
             * (sb_link_read), not by what a head claims: 20 bytes never
             * make the client allocate SBW_MAX_PACKET */
            sb_buf_compact(b);
            break;
        }
        on_packet(c, k, p, &h, now, w);
        if (k->fd < 0) return -1;
        b->off += (size_t)h.packet_size;
    }
    if (b->off == b->len) b->len = b->off = 0;
    return 0;
}

/* sb_link_received; on_socket: the bytes came from k's socket (not the
 * fuzz target's), and then
 * - what the parse queued for the server (ping answers: the asker waits
 *   for them) is written before the events are handed over, not after
 *   their callback thread was woken;
 * - while inline callbacks run, the direct-write token of the link is
 *   offered as when the thread sleeps (it touches no socket meanwhile): a
 *   ping the callback sends leaves from within the call (measured: about
 *   2 us sooner than queueing it for the write after the read) */
static int link_received(smartbus_client *c, sb_link *k, size_t n, int64_t now,
                         sb_sink_writer *w, int on_socket)
{
    size_t queued = k->wbuf.len;
    k->rbuf.len += n;
    k->last_rx_at = now;
    int rc = link_parse(c, k, now, w);
    if (on_socket && rc == 0 && k->wbuf.len > queued) rc = sb_link_write(c, k, now, w);
    /* the callback threads take the batch; inline sinks get it now (a
     * callback cannot close a link: nothing here changes under us) */
    sb_sink_flush(w);
    int offer = on_socket && rc == 0 && w->ready;
    if (offer) sb_link_offer(c);
    sb_sink_deliver(w);
    if (offer) sb_link_reclaim(c);
    return rc;
}

int sb_link_received(smartbus_client *c, sb_link *k, size_t n, int64_t now, sb_sink_writer *w)
{
    return link_received(c, k, n, now, w, 0);
}

void sb_link_read(smartbus_client *c, sb_link *k, int64_t now, sb_sink_writer *w)
{
    for (int turn = 0; turn < READS_PER_TURN; turn++) {
        if (sb_sink_full(w, c->sink)) return;
        sb_buf *b = &k->rbuf;
        if (b->cap - b->len < READ_CHUNK / 4) sb_buf_compact(b);
        if (sb_buf_reserve(b, READ_CHUNK / 4) != 0) {
            link_broken(c, k, now, w, "out of memory");
            return;
        }
        size_t room = b->cap - b->len;
        ssize_t n = recv(k->fd, b->p + b->len, room, 0);
        if (n > 0) {
            if (link_received(c, k, (size_t)n, now, w, 1) < 0 || (size_t)n < room)
                return;                     /* closed, or drained */
        } else if (n == 0) {
            link_broken(c, k, now, w, "closed by the server");
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            link_broken(c, k, now, w, strerror(errno));
            return;
        }
    }
}

/* writes what the link has queued; -1 when the link closed */
int sb_link_write(smartbus_client *c, sb_link *k, int64_t now, sb_sink_writer *w)
{
    sb_buf *b = &k->wbuf;
    while (b->off < b->len) {
        ssize_t n = sb_send_nosignal(k->fd, b->p + b->off, b->len - b->off);
        if (n > 0) {
            b->off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            link_broken(c, k, now, w, n < 0 ? strerror(errno) : "send returned 0");
            return -1;
        }
    }
    b->len = b->off = 0;
    k->app_end = 0;
    return 0;
}


void sb_link_timers(smartbus_client *c, sb_link *k, int64_t now, int *timeout,
                        int paused, sb_sink_writer *w)
{
    int64_t due = -1;
    switch (k->state) {
    case LINK_WAIT:
        if (now >= k->next_connect_at) link_start(c, k, now, w);
        else due = k->next_connect_at;
        break;
    case LINK_CONNECTING:
        if (now >= k->next_connect_at) link_connect_failed(c, k, now, w, ETIMEDOUT);
        else due = k->next_connect_at;
        break;
    case LINK_OPEN:
    case LINK_REGISTERED:
        /* liveness: NET only; an idle IPC server sends nothing and the IPC
         * client learns of a lost server from the socket (IPC.md §5.5) */
        if (k->state == LINK_REGISTERED && c->kind == SMARTBUS_KIND_NET) {
            if (paused) k->last_rx_at = now;   /* we are not reading: not the server's fault */
            if (now - k->last_rx_at > LIVENESS_MS) {
                link_broken(c, k, now, w, "no data from the server for 14 s");
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
        if (k->state == LINK_REGISTERED && c->kind == SMARTBUS_KIND_NET) {
            int64_t live = k->last_rx_at + LIVENESS_MS + 1;
            if (due < 0 || live < due) due = live;
        }
        break;
    default:
        break;
    }
    if (k->state == LINK_WAIT && due < 0) due = k->next_connect_at;
    if (due >= 0) {
        int64_t wait = due - now;
        if (wait < 0) wait = 0;
        if (wait < *timeout) *timeout = (int)wait;
    }
}

void sb_link_offer(smartbus_client *c)
{
    if (c->active < 0 || c->linger_until || c->resend.len) return;
    sb_link *k = &c->links[c->active];
    if (k->state != LINK_REGISTERED || k->wbuf.len != 0 || sb_sendq_count(c) != 0) return;
    c->direct_fd = k->fd;
    c->direct_link = k->index;
    sb_store(&c->direct, DIRECT_IDLE);
}

void sb_link_reclaim(smartbus_client *c)
{
    for (;;) {
        int v = sb_load(&c->direct);
        if (v == DIRECT_OFF) return;
        if (v == DIRECT_WRITING) {          /* one send() in progress */
            sched_yield();
            continue;
        }
        if (__atomic_compare_exchange_n(&c->direct, &v, DIRECT_OFF, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            break;
    }
    if (c->direct_rest.len) {
        /* the link's write buffer is empty (sb_link_offer): the rest goes
         * first, as the I/O thread's own bytes (app_end 0) */
        sb_link *k = &c->links[c->direct_link];
        sb_buf_swap(&k->wbuf, &c->direct_rest);
        k->app_end = 0;
        c->direct_rest.len = c->direct_rest.off = 0;
    }
}

void sb_link_close_all(smartbus_client *c)
{
    for (int i = 0; i < c->nlinks; i++) {
        link_reset(&c->links[i]);
        c->links[i].state = LINK_OFF;
    }
    sb_store(&c->registered, 0);
    c->active = -1;
}
