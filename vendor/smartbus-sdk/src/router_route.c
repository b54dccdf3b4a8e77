/*
 * router_route.c - the bus behind the router: what each received packet
 * means and where it goes.  Registration (and its refusal), heartbeat
 * answers, global-connect events about arrivals and departures, routing by
 * destination with back-pressure on the sender, disconnects.  The rules
 * are in router_internal.h.
 */
#include "platform.h"
#include <errno.h>
#include <string.h>

#include "router_internal.h"

#define RT_HB_MAX_ECHO       1024                 /* larger "heartbeats" are not echoed */

/* ---- packets the router makes -------------------------------------------- */

/* the head of a packet from the router (a node, client 0) */
static sbw_head router_head(const smartbus_router *r, uint8_t cmd, uint8_t cmdtype,
                            uint8_t dst_type, uint8_t dst_unit, uint8_t dst_client)
{
    sbw_head h = { .cmd = cmd, .cmdtype = cmdtype, .src_type = SMARTBUS_NODECLI_TYPE_NODE,
                   .src_unit = r->unit, .src_client = 0, .dst_type = dst_type,
                   .dst_unit = dst_unit, .dst_client = dst_client };
    return h;
}

static void run_end(smartbus_router *r);

/* Room for `need` bytes of control traffic to c (it pauses nobody); NULL
 * when c's budget is spent or memory is out, and c is then disconnected. */
static uint8_t *control_room(smartbus_router *r, rt_peer *c, size_t need)
{
    if (r->run.to == c) run_end(r);          /* the run's packets come first */
    if (out_pending(c) + need > r->budget) {
        ST_ADD(r, stalled_disconnects, 1);
        sb_route_disconnect(r, c, "stalled (its queue reached the budget)");
        return NULL;
    }
    if (out_reserve(c, need) != 0) {
        sb_route_disconnect(r, c, "out of memory");
        return NULL;
    }
    return c->out.p + c->out.len;
}

/* accounts the `n` bytes encoded at control_room() */
static void control_added(smartbus_router *r, rt_peer *c, int n)
{
    if (n <= 0) return;              /* cannot happen: room was reserved */
    c->out.len += (size_t)n;
    c->mon.msgs_out++;
    out_appended(r, c);
}

/* cmd 9 / 10 to `to` about `about` (NET.md §10) */
static void send_global(smartbus_router *r, rt_peer *to, uint8_t cmd, const rt_peer *about,
                        uint8_t status)
{
    size_t need = SBW_HEAD_SIZE + SBW_GLOBAL_PAYLOAD;
    uint8_t *q = control_room(r, to, need);
    if (!q) return;
    sbw_head h = router_head(r, cmd, SMARTBUS_CMDTYPE_SYSTEM, to->type, to->unit, to->client);
    sbw_global g;
    memset(&g, 0, sizeof g);
    g.inner = h;
    g.unit_id = about->unit;
    g.client_id = about->client;
    g.client_type = about->type;
    g.ap_unit = r->unit;
    g.status = status;
    memcpy(g.info, about->info, sizeof g.info);
    control_added(r, to, sbw_put_global(q, need, &h, &g, SBW_PAD_NONE));
}

/* cmd 5 -> cmd 6 with the payload echoed, src and dst swapped (NET.md §5.4);
 * not to a congested client, and at most once per hb_answer_ms (see
 * router_internal.h) */
static void answer_heartbeat(smartbus_router *r, rt_peer *c, const uint8_t *p, int32_t datalen)
{
    ST_ADD(r, heartbeats, 1);
    if (datalen > RT_HB_MAX_ECHO || c->congested || r->now < c->answer_heartbeat_at) return;
    size_t need = SBW_HEAD_SIZE + (size_t)datalen;
    uint8_t *q = control_room(r, c, need);
    if (!q) return;
    control_added(r, c, sbw_put_heartbeat_ack(q, need, p, datalen));
    c->answer_heartbeat_at = r->now + r->hb_answer_ms;
    ST_ADD(r, heartbeat_answers, 1);
}

static void send_register_ack(smartbus_router *r, rt_peer *c, uint8_t type, uint8_t unit,
                              uint8_t client, int32_t result)
{
    int node = c->ipc ? SBW_NODE_IPC_SIZE : SBW_NODE_NET_SIZE;
    size_t need = SBW_HEAD_SIZE + SBW_REG_ACK_FIXED + (size_t)node;
    uint8_t *q = control_room(r, c, need);
    if (!q) return;
    sbw_head h = router_head(r, 0, 0, type, unit, client);
    control_added(r, c, sbw_put_register_ack(q, need, &h, result, node));
}

/* ---- disconnects ------------------------------------------------------------ */

void sb_route_disconnect(smartbus_router *r, rt_peer *c, const char *why)
{
    if (c->dead) return;
    sb_peer_close(r, c, why);
    if (c->registered) {
        c->registered = 0;
        if (r->table[c->unit][c->client] == c) r->table[c->unit][c->client] = NULL;
        st_clients(r, -1);
        for (size_t i = 0; i < r->npeers; i++) {
            rt_peer *o = r->peers[i];
            if (o != c && o->registered && !o->dead)
                send_global(r, o, SMARTBUS_SYSCMD_GLOBAL_CONNECT, c, SMARTBUS_GLOBAL_DISCONNECTED);
        }
    }
}

/* ---- registration -------------------------------------------------------------- */

static void handle_register(smartbus_router *r, rt_peer *c, const uint8_t *p, const sbw_head *h)
{
    sbw_register reg;
    int32_t result = SMARTBUS_ERR_OK;
    uint8_t unit = c->ipc ? r->unit : h->src_unit;
    uint8_t type = h->src_type, client = h->src_client;

    if (sbw_get_register(p, (size_t)h->packet_size, &reg) != SBW_OK) {
        result = SMARTBUS_ERR_ARGUMENT;          /* cmd 1 of none of the three layouts */
    } else if (!c->ipc && (unit < MIN_SMARTBUS_NETCLI_UNITID || unit >= MAX_SMARTBUS_NODE_NUM)) {
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
    rt_node_unlink(&c->deadline);
    c->type = type;
    c->unit = unit;
    c->client = client;
    memcpy(c->info, reg.info, sizeof c->info);
    r->table[unit][client] = c;
    ST_ADD(r, registered, 1);
    st_clients(r, 1);
    sb_trace("router: registered %u/%u/%u (%s)", type, unit, client, c->ipc ? "ipc" : "tcp");

    for (size_t i = 0; i < r->npeers && !c->dead; i++) {
        rt_peer *o = r->peers[i];
        if (o == c || !o->registered || o->dead) continue;
        send_global(r, c, SMARTBUS_SYSCMD_GLOBAL_CONNECT_ANSWER, o, SMARTBUS_GLOBAL_EXISTING);
        if (!o->dead)
            send_global(r, o, SMARTBUS_SYSCMD_GLOBAL_CONNECT, c, SMARTBUS_GLOBAL_CONNECTED);
    }
}

/* ---- routing ------------------------------------------------------------------ */

/* counts one packet forwarded to d */
static void count_forwarded(smartbus_router *r, rt_peer *d, int32_t datalen)
{
    d->mon.msgs_out++;
    ST_ADD(r, routed_msgs, 1);
    ST_ADD(r, routed_bytes, datalen);
}

/* Appends one packet from s to d as forwarded (sbw_put_forwarded: stamped
 * with s's identity); d is not congested.  A d that cannot get the memory
 * is disconnected. */
static void deliver(smartbus_router *r, const rt_peer *s, rt_peer *d, const uint8_t *p,
                    int32_t datalen)
{
    if (r->run.to == d) run_end(r);          /* the run's packets come first */
    if (out_reserve(d, SBW_HEAD_SIZE + (size_t)datalen) != 0) {
        sb_route_disconnect(r, d, "out of memory");
        return;
    }
    d->out.len += sbw_put_forwarded(d->out.p + d->out.len, p, datalen, s->type, s->unit,
                                    s->client);
    count_forwarded(r, d, datalen);
    out_appended(r, d);
}

/* Ends the run: writes it with one sendmsg(), copies what the socket did not
 * take to the destination's out buffer.  A destination that fails (or
 * cannot get the memory) is disconnected. */
static void run_end(smartbus_router *r)
{
    rt_run *run = &r->run;
    rt_peer *d = run->to;
    if (!d) return;
    run->to = NULL;
    if (d->dead) return;
    ssize_t w = sb_sendv_nosignal(d->fd, run->piece, run->npieces);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            sb_route_disconnect(r, d, strerror(errno));
            return;
        }
        w = 0;
    }
    d->mon.bytes_out += (uint64_t)w;
    if ((size_t)w == run->bytes) return;
    if (out_reserve(d, run->bytes - (size_t)w) != 0) {
        sb_route_disconnect(r, d, "out of memory");
        return;
    }
    size_t skip = (size_t)w;
    for (int i = 0; i < run->npieces; i++) {
        size_t len = run->piece[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(d->out.p + d->out.len, (const uint8_t *)run->piece[i].iov_base + skip, len - skip);
        d->out.len += len - skip;
        skip = 0;
    }
    out_appended(r, d);
}

/* Forwards packet p of s to d (not congested) as part of a run: 1 when
 * taken (stamped in place, to be written from s's read buffer), 0 when d
 * has bytes queued (then deliver() copies it behind them). */
static int run_take(smartbus_router *r, const rt_peer *s, rt_peer *d, uint8_t *p, int32_t datalen)
{
    rt_run *run = &r->run;
    size_t n = SBW_HEAD_SIZE + (size_t)datalen;
    int joins = 0;                           /* p follows the run's last piece */
    if (run->to == d) {
        struct iovec *last = &run->piece[run->npieces - 1];
        joins = (uint8_t *)last->iov_base + last->iov_len == p;
        if (run->bytes + n > r->max_out || (!joins && run->npieces == RT_RUN_PIECES)) {
            run_end(r);
            joins = 0;
        }
    }
    if (run->to != d) {
        run_end(r);
        if (d == s || out_pending(d) > 0) return 0;
        run->to = d;
        run->npieces = 0;
        run->bytes = 0;
    }
    sbw_stamp_forwarded(p, datalen, s->type, s->unit, s->client);
    if (joins) {
        run->piece[run->npieces - 1].iov_len += n;
    } else {
        run->piece[run->npieces].iov_base = p;
        run->piece[run->npieces++].iov_len = n;
    }
    run->bytes += n;
    count_forwarded(r, d, datalen);
    return 1;
}

/* pauses sender s until destination `full` is no longer congested: its
 * input is no longer watched */
static int pause_sender(smartbus_router *r, rt_peer *s, rt_peer *full)
{
    sb_peer_pause(s, full);
    ST_ADD(r, paused_reads, 1);
    if (sb_peer_watch(r, s) != 0) sb_route_disconnect(r, s, "the poller refused");
    return 1;
}

/* Routes the packet p from s by its destination.  1 when s was paused
 * instead (a destination is congested: the packet stays for later), else
 * 0 (delivered, or dropped for want of a destination). */
static int route(smartbus_router *r, rt_peer *s, uint8_t *p, const sbw_head *h)
{
    int delivered = 0;
    if (h->dst_client == 0xFF) {
        rt_peer *const *row = r->table[h->dst_unit];
        for (int i = 0; i < 256; i++) {          /* all or none: none may be congested */
            rt_peer *d = row[i];
            if (d && d != s && d->type == h->dst_type && d->congested)
                return pause_sender(r, s, d);
        }
        for (int i = 0; i < 256; i++) {
            rt_peer *d = row[i];
            if (!d || d == s || d->type != h->dst_type) continue;
            deliver(r, s, d, p, h->datalen);
            delivered = 1;
        }
    } else {
        rt_peer *d = r->table[h->dst_unit][h->dst_client];
        if (d) {
            if (d->congested) return pause_sender(r, s, d);
            if (!run_take(r, s, d, p, h->datalen)) deliver(r, s, d, p, h->datalen);
            delivered = 1;
        }
    }
    if (!delivered) ST_ADD(r, dropped_no_route, 1);
    return 0;
}

/* ---- received packets ------------------------------------------------------------ */

/* Handles one packet of c: 1 when c was paused on it (it stays in c's
 * input), else 0. */
static int handle_packet(smartbus_router *r, rt_peer *c, uint8_t *p, const sbw_head *h)
{
    if (!c->registered) {                 /* only a registration counts */
        if (h->cmdtype == SMARTBUS_CMDTYPE_INTERNAL && h->cmd == SMARTBUS_CMD_REGISTER)
            handle_register(r, c, p, h);
        else
            ST_ADD(r, dropped_unregistered, 1);
        return 0;
    }
    if (h->cmdtype == SMARTBUS_CMDTYPE_INTERNAL) {
        if (h->cmd == SMARTBUS_CMD_HEARTBEAT) answer_heartbeat(r, c, p, h->datalen);
        return 0;                         /* other cmdtype-0 packets: ignored */
    }
    if (h->cmdtype == SMARTBUS_CMDTYPE_SYSTEM) {
        if (h->cmd == SMARTBUS_SYSCMD_GLOBAL_CONNECT) {
            ST_ADD(r, dropped_forged, 1);   /* only the router originates them */
            return 0;
        }
        if (h->cmd == SMARTBUS_SYSCMD_GLOBAL_CONNECT_ANSWER)
            return 0;                     /* absorbed, see router_internal.h */
    }
    return route(r, c, p, h);
}

void sb_route_input(smartbus_router *r, rt_peer *c)
{
    sb_buf *b = &c->in;
    while (!c->dead && !c->closing && !c->blocked_on) {
        size_t avail = b->len - b->off;
        if (avail < SBW_HEAD_SIZE) break;
        uint8_t *p = b->p + b->off;
        sbw_head h;
        if (rt_get_head(r, c, p, avail, &h) != SBW_OK) {
            sb_route_disconnect(r, c, sb_peer_bad_head(r));
            break;
        }
        if ((size_t)h.packet_size > avail) break;
        if (handle_packet(r, c, p, &h)) break;     /* paused: the packet stays */
        c->mon.msgs_in++;
        b->off += (size_t)h.packet_size;
    }
    run_end(r);                                    /* before c's buffer changes hands */
    if (b->off == b->len) sb_peer_input_empty(r, c);
}
