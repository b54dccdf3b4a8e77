/*
 * router_loop.c - the router's run loop: one poll() per turn, then the
 * phases of the turn in order (input, accept, output, closings and stalls,
 * resume paused senders, sweep), then the timeout of the next poll();
 * and smartbus_router_stop(), which wakes it.
 */
#include "platform.h"
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "router_internal.h"

#define RT_DRAIN_MS 2000          /* refused peers: wait this long for their close */

/* where prepare_poll_set() put what in r->pfds */
typedef struct poll_set {
    nfds_t nfds;
    int tcp_at, ipc_at;           /* the listeners' slots, -1 when not polled */
    size_t peers_at;              /* slot of peers[0] */
    size_t npolled;               /* peers polled (later ones were accepted since) */
} poll_set;

/* waker, listeners (unless accepting is paused), then every connection:
 * input unless refused or paused, output when it has bytes to write.
 * -1 when out of memory. */
static int prepare_poll_set(smartbus_router *r, poll_set *ps)
{
    size_t need = r->npeers + 3;      /* the waker, two listeners, the peers */
    if (need > r->cappfds) {
        size_t cap = r->cappfds ? r->cappfds : 16;
        while (cap < need) cap *= 2;
        struct pollfd *np = realloc(r->pfds, cap * sizeof *np);
        if (!np) return -1;
        r->pfds = np;
        r->cappfds = cap;
    }
    nfds_t n = 0;
    r->pfds[n].fd = r->waker.rfd;
    r->pfds[n++].events = POLLIN;
    int listen_ok = r->now >= r->accept_pause_until;
    ps->tcp_at = ps->ipc_at = -1;
    if (r->tcp_fd >= 0 && listen_ok) {
        ps->tcp_at = (int)n;
        r->pfds[n].fd = r->tcp_fd;
        r->pfds[n++].events = POLLIN;
    }
    if (r->ipc_fd >= 0 && listen_ok) {
        ps->ipc_at = (int)n;
        r->pfds[n].fd = r->ipc_fd;
        r->pfds[n++].events = POLLIN;
    }
    ps->peers_at = n;
    ps->npolled = r->npeers;
    for (size_t i = 0; i < ps->npolled; i++) {
        rt_peer *c = r->peers[i];
        short ev = 0;
        if ((!c->closing && !c->blocked_on) || c->draining) ev |= POLLIN;
        if (out_pending(c) > 0) ev |= POLLOUT;
        r->pfds[n].fd = c->fd;
        r->pfds[n].events = ev;
        r->pfds[n++].revents = 0;
    }
    ps->nfds = n;
    return 0;
}

/* 1. read every readable connection once and handle its complete packets */
static void phase_input(smartbus_router *r, const poll_set *ps)
{
    for (size_t i = 0; i < ps->npolled; i++) {
        rt_peer *c = r->peers[i];
        const struct pollfd *pf = &r->pfds[ps->peers_at + i];
        short re = pf->revents;
        c->skip_write = (pf->events & POLLOUT) && !(re & (POLLOUT | POLLERR | POLLHUP | POLLNVAL));
        if (c->dead || !re) continue;
        const char *why = NULL;
        if (re & POLLNVAL) {
            sb_route_disconnect(r, c, "invalid descriptor");
        } else if (c->draining) {
            if (sb_peer_drain(c) < 0) sb_route_disconnect(r, c, "registration refused");
        } else if (!c->closing && !c->blocked_on && (re & (POLLIN | POLLHUP | POLLERR))) {
            int got = sb_peer_read(r, c, &why);
            if (got > 0) sb_route_input(r, c);
            else if (got < 0) sb_route_disconnect(r, c, why);
        } else if (re & (POLLHUP | POLLERR)) {
            sb_route_disconnect(r, c, "hang-up");
        }
    }
}

/* 2. new connections */
static void phase_accept(smartbus_router *r, const poll_set *ps)
{
    if (ps->tcp_at >= 0 && (r->pfds[ps->tcp_at].revents & POLLIN)) sb_peer_accept(r, r->tcp_fd, 0);
    if (ps->ipc_at >= 0 && (r->pfds[ps->ipc_at].revents & POLLIN)) sb_peer_accept(r, r->ipc_fd, 1);
}

/* 3. output: one send per connection (not when poll said it would block) */
static void phase_output(smartbus_router *r)
{
    for (size_t i = 0; i < r->npeers; i++) {
        rt_peer *c = r->peers[i];
        const char *why = NULL;
        if (!c->dead && !c->skip_write && sb_peer_write(r, c, &why) < 0)
            sb_route_disconnect(r, c, why);
        c->skip_write = 0;
    }
}

/* 4. refused connections flushed (shut the write side, then drain) or
 * drained for too long; connections not registered in time; stalled peers */
static void phase_closings(smartbus_router *r)
{
    for (size_t i = 0; i < r->npeers; i++) {
        rt_peer *c = r->peers[i];
        if (c->dead) continue;
        if (c->draining) {
            if (r->now >= c->drain_until) sb_route_disconnect(r, c, "registration refused");
        } else if (!c->registered && r->now >= c->register_by) {
            ST_ADD(r, registration_timeouts, 1);
            sb_route_disconnect(r, c, "not registered in time");
        } else if (c->closing && out_pending(c) == 0) {
            if (shutdown(c->fd, SHUT_WR) != 0) {
                sb_route_disconnect(r, c, "registration refused");
            } else {
                c->draining = 1;
                c->drain_until = r->now + RT_DRAIN_MS;
            }
        } else if (c->congested && r->now - c->stall_ref >= r->stall_ms) {
            ST_ADD(r, stalled_disconnects, 1);
            sb_route_disconnect(r, c, "stalled (queue not below half the bound in time)");
        }
    }
}

/* 5. resume paused senders whose destination has drained (or closed) */
static void phase_resume(smartbus_router *r)
{
    for (size_t i = 0; i < r->npeers; i++) {
        rt_peer *c = r->peers[i];
        if (c->dead) continue;
        if (c->blocked_on && !c->blocked_on->congested) c->blocked_on = NULL;
        if (sb_peer_input_ready(r, c)) sb_route_input(r, c);
    }
}

/* the deadline of connection c that comes first: drain, registration or
 * stall (-1: none) */
static int64_t peer_deadline(const smartbus_router *r, const rt_peer *c)
{
    if (c->draining) return c->drain_until;
    if (!c->registered) return c->register_by;
    return c->congested ? c->stall_ref + r->stall_ms : -1;
}

/* the next poll()'s timeout: 0 with buffered input left (a sender resumed
 * by a close), else until the nearest stall, drain, registration or accept
 * deadline, else none (-1) */
static int next_timeout(const smartbus_router *r)
{
    int64_t deadline = -1;
    for (size_t i = 0; i < r->npeers; i++) {
        const rt_peer *c = r->peers[i];
        if (sb_peer_input_ready(r, c)) {
            deadline = r->now;
            break;
        }
        int64_t d = peer_deadline(r, c);
        if (d >= 0 && (deadline < 0 || d < deadline)) deadline = d;
    }
    if (r->now < r->accept_pause_until) {
        if (deadline < 0 || r->accept_pause_until < deadline) deadline = r->accept_pause_until;
    }
    if (deadline < 0) return -1;
    int64_t t = deadline - r->now;
    return t <= 0 ? 0 : (t > INT_MAX ? INT_MAX : (int)t);
}

int sb_router_turn(smartbus_router *r, int *timeout_ms)
{
    poll_set ps;
    if (prepare_poll_set(r, &ps) != 0) return SMARTBUS_ERR_MEM_ALLOC;
    int n = poll(r->pfds, ps.nfds, *timeout_ms);
    r->now = sb_now_ms();
    if (n < 0) {
        if (errno != EINTR) {
            sb_trace("router: poll: %s", strerror(errno));
            return SMARTBUS_ERR_OTHER;
        }
        *timeout_ms = 0;
        return 0;
    }
    if (r->pfds[0].revents) sb_waker_drain(&r->waker);
    if (sb_load(&r->stop)) return 0;

    phase_input(r, &ps);
    phase_accept(r, &ps);
    phase_output(r);
    phase_closings(r);
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
