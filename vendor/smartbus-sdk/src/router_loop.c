/*
 * router_loop.c - the router's run loop: one wait on the poller per turn,
 * then the phases of the turn in order (input, accept, output, deadlines,
 * resume paused senders, sweep), then the timeout of the next wait; and
 * smartbus_router_stop(), which wakes it.  Each phase walks what is active
 * (the events of the wait, the lists of router_internal.h), never every
 * connection.
 */
#include "platform.h"
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "router_internal.h"

#define RT_DRAIN_MS 2000          /* refused peers: wait this long for their close */

/* the listeners are watched unless accepting is paused (after EMFILE and
 * the like) */
static void watch_listeners(smartbus_router *r)
{
    int want = r->now >= r->accept_pause_until;
    if (want == r->listening) return;
    unsigned ev = want ? SB_POLL_IN : 0;
    int ok = 1;
    if (r->tcp_fd >= 0) ok &= sb_poller_set(&r->poller, r->tcp_fd, ev, &r->tcp_fd) == 0;
    if (r->ipc_fd >= 0) ok &= sb_poller_set(&r->poller, r->ipc_fd, ev, &r->ipc_fd) == 0;
    if (ok) r->listening = want;       /* else tried again next turn */
}

/* 1. what one connection's event says: room to write (written in phase 3),
 * input to read and handle, or its end */
static void on_event(smartbus_router *r, rt_peer *c, unsigned ev)
{
    if (c->dead) return;
    if (ev & SB_POLL_OUT) rt_list_push(&r->to_write, &c->writer);
    const char *why = NULL;
    if (c->draining) {
        if (sb_peer_drain(c) < 0) sb_route_disconnect(r, c, "registration refused");
    } else if (!c->closing && !c->blocked_on && (ev & (SB_POLL_IN | SB_POLL_ERR))) {
        int got = sb_peer_read(r, c, &why);
        if (got > 0) sb_route_input(r, c);
        else if (got < 0) sb_route_disconnect(r, c, why);
    } else if (ev & SB_POLL_ERR) {
        sb_route_disconnect(r, c, "hang-up");
    }
}

/* 3. output: one send per connection listed (bytes queued this turn, or
 * room reported); a refused one whose ack is out gets its write side shut,
 * then drains */
static void phase_output(smartbus_router *r)
{
    rt_peer *c;
    while ((c = rt_list_first(&r->to_write)) != NULL) {
        rt_node_unlink(&c->writer);
        const char *why = NULL;
        if (sb_peer_write(r, c, &why) < 0) {
            sb_route_disconnect(r, c, why);
            continue;
        }
        if (c->closing && !c->draining && out_pending(c) == 0) {
            if (shutdown(c->fd, SHUT_WR) != 0) {
                sb_route_disconnect(r, c, "registration refused");
                continue;
            }
            c->draining = 1;
            c->drain_until = r->now + RT_DRAIN_MS;
            rt_list_push(&r->draining, &c->deadline);
        }
        if (sb_peer_watch(r, c) != 0) sb_route_disconnect(r, c, "the poller refused");
    }
}

/* 4. deadlines: refused connections drained for too long, connections not
 * registered in time, stalled peers, large empty out buffers on trial
 * (each list in deadline order) */
static void phase_deadlines(smartbus_router *r)
{
    rt_peer *c;
    while ((c = rt_list_first(&r->idle_out)) != NULL && r->now >= c->idle_at) {
        rt_node_unlink(&c->idle);
        sb_buf_trim(&c->out, 0);      /* only if empty (else listed again once it is) */
    }
    while ((c = rt_list_first(&r->draining)) != NULL && r->now >= c->drain_until)
        sb_route_disconnect(r, c, "registration refused");
    while ((c = rt_list_first(&r->registering)) != NULL && r->now >= c->register_by) {
        ST_ADD(r, registration_timeouts, 1);
        sb_route_disconnect(r, c, "not registered in time");
    }
    while ((c = rt_list_first(&r->stalls)) != NULL && r->now - c->stall_ref >= r->stall_ms) {
        ST_ADD(r, stalled_disconnects, 1);
        sb_route_disconnect(r, c, "stalled (queue not below half the bound in time)");
    }
}

/* 5. senders whose destination drained (or closed) go on: their input is
 * watched again and what they left buffered is routed */
static void phase_resume(smartbus_router *r)
{
    rt_peer *c;
    while ((c = rt_list_first(&r->resumed)) != NULL) {
        rt_node_unlink(&c->paused);
        if (sb_peer_watch(r, c) != 0) sb_route_disconnect(r, c, "the poller refused");
        else if (sb_peer_input_ready(r, c)) sb_route_input(r, c);
    }
}

/* the nearest of a list's first deadline and `deadline` (-1: none) */
static int64_t nearer(int64_t deadline, const rt_peer *first, int64_t first_deadline)
{
    if (!first) return deadline;
    return deadline < 0 || first_deadline < deadline ? first_deadline : deadline;
}

/* the next wait's timeout: 0 with senders left to resume or bytes queued
 * after the output phase (by a disconnect's announcements, or a resumed
 * sender), else until the nearest stall, drain, registration, idle buffer
 * or accept deadline, else none (-1) */
static int next_timeout(const smartbus_router *r)
{
    if (rt_list_first(&r->resumed) || rt_list_first(&r->to_write)) return 0;
    const rt_peer *d = rt_list_first(&r->draining), *g = rt_list_first(&r->registering),
                  *s = rt_list_first(&r->stalls);
    int64_t deadline = -1;
    deadline = nearer(deadline, d, d ? d->drain_until : 0);
    deadline = nearer(deadline, g, g ? g->register_by : 0);
    deadline = nearer(deadline, s, s ? s->stall_ref + r->stall_ms : 0);
    const rt_peer *i = rt_list_first(&r->idle_out);
    deadline = nearer(deadline, i, i ? i->idle_at : 0);
    if (r->now < r->accept_pause_until) {
        if (deadline < 0 || r->accept_pause_until < deadline) deadline = r->accept_pause_until;
    }
    if (deadline < 0) return -1;
    int64_t t = deadline - r->now;
    return t <= 0 ? 0 : (t > INT_MAX ? INT_MAX : (int)t);
}

int sb_router_turn(smartbus_router *r, int *timeout_ms)
{
    sb_poll_event evs[SB_POLL_BATCH];
    watch_listeners(r);
    int n = sb_poller_wait(&r->poller, evs, *timeout_ms);
    r->now = sb_now_ms();
    if (n < 0) {
        if (errno != EINTR) {
            sb_trace("router: poller wait: %s", strerror(errno));
            return SMARTBUS_ERR_OTHER;
        }
        *timeout_ms = 0;
        return 0;
    }
    if (sb_load(&r->stop)) {
        sb_waker_drain(&r->waker);
        return 0;
    }

    int accept_tcp = 0, accept_ipc = 0;
    for (int i = 0; i < n; i++) {
        void *tag = evs[i].tag;
        if (tag == &r->waker) sb_waker_drain(&r->waker);
        else if (tag == &r->tcp_fd) accept_tcp = r->listening;
        else if (tag == &r->ipc_fd) accept_ipc = r->listening;
        else on_event(r, tag, evs[i].events);
    }
    if (accept_tcp) sb_peer_accept(r, r->tcp_fd, 0);
    if (accept_ipc) sb_peer_accept(r, r->ipc_fd, 1);
    phase_output(r);
    phase_deadlines(r);
    phase_resume(r);
    sb_peers_sweep(r);
    sb_monitor_turn(r);
    *timeout_ms = next_timeout(r);
    return 0;
}

int smartbus_router_run(smartbus_router *r)
{
    if (!r) return SMARTBUS_ERR_ARGUMENT;
    int rc = 0;
    r->now = sb_now_ms();
    int timeout = next_timeout(r);    /* run() again after a stop: deadlines pending */
    sb_monitor_running(r, 1);
    while (!sb_load(&r->stop) && (rc = sb_router_turn(r, &timeout)) == 0)
        continue;
    sb_monitor_running(r, 0);
    sb_store(&r->stop, 0);            /* consumed: run() may be called again */
    return rc;
}

void smartbus_router_stop(smartbus_router *r)
{
    if (!r) return;
    sb_store(&r->stop, 1);
    sb_waker_wake(&r->waker);
}
