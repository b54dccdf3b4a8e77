/*
 * router_monitor.c - snapshots of the router for monitoring: its
 * statistics and every connection (identity, address, counters, queues),
 * asked for from any thread by smartbus_router_snapshot().
 *
 * Why the loop thread copies them: a connection's counters and buffers
 * belong to the loop thread, which changes them without locks or atomics
 * (the forwarding path must not pay for monitoring).  So a requester
 * parks its buffers in the one request slot (under a mutex), marks the
 * request pending and wakes the loop; the loop sees the pending flag
 * between two turns (one relaxed load per turn), copies under the mutex
 * and signals.  When the loop is not running (before run(), after stop)
 * the requester copies under the same mutex, which run() takes to start
 * and to end: the two never overlap.  A requester that gives up (timeout)
 * clears the slot under the mutex, so the loop never writes into buffers
 * that are gone.
 */
#include "platform.h"
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "router_internal.h"

/* ---- the slot's lock and condition ---------------------------------------- */

int sb_monitor_init(smartbus_router *r)
{
    rt_monitor *m = &r->mon;
    if (sb_cond_init_timed(&m->cond) != 0) return -1;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        pthread_cond_destroy(&m->cond);
        return -1;
    }
    m->ready = 1;
    return 0;
}

void sb_monitor_free(smartbus_router *r)
{
    if (!r->mon.ready) return;
    pthread_mutex_destroy(&r->mon.lock);
    pthread_cond_destroy(&r->mon.cond);
}

/* ---- what a connection looks like from outside ------------------------------ */

void sb_monitor_accepted(rt_peer *c, const struct sockaddr *sa, socklen_t salen)
{
    c->mon.since = sb_now_ms();
    c->mon.peer[0] = '\0';
    if (c->ipc) {
        long pid = sb_peer_pid(c->fd);
        if (pid >= 0) snprintf(c->mon.peer, sizeof c->mon.peer, "pid %ld", pid);
        return;
    }
    char host[INET6_ADDRSTRLEN], serv[8];      /* numeric: an IPv6 address, a port */
    if (!sa || getnameinfo(sa, salen, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return;
    const char *fmt = sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s";
    snprintf(c->mon.peer, sizeof c->mon.peer, fmt, host, serv);
}

static void describe(smartbus_router_conn *d, const rt_peer *c, int64_t now)
{
    memset(d, 0, sizeof *d);
    d->registered = c->registered;
    d->ipc = c->ipc;
    d->type = c->type;
    d->unit = c->unit;
    d->client = c->client;
    d->paused = c->blocked_on != NULL;
    d->congested = c->congested;
    memcpy(d->peer, c->mon.peer, sizeof d->peer);
    memcpy(d->info, c->info, sizeof d->info);
    d->msgs_in = c->mon.msgs_in;
    d->bytes_in = c->mon.bytes_in;
    d->msgs_out = c->mon.msgs_out;
    d->bytes_out = c->mon.bytes_out;
    d->queued_bytes = out_pending(c);
    d->buffered_bytes = c->in.len - c->in.off;
    d->connected_ms = now - c->mon.since;
}

/* copies into the slot's buffers (the loop's data: loop thread, or the
 * loop not running); the number of live connections */
static int copy_snapshot(smartbus_router *r, smartbus_router_stats *st,
                         smartbus_router_conn *conns, int cap)
{
    if (st) smartbus_router_get_stats(r, st);
    int64_t now = sb_now_ms();
    int n = 0;
    for (size_t i = 0; i < r->npeers; i++) {
        const rt_peer *c = r->peers[i];
        if (c->dead) continue;
        if (n < cap) describe(&conns[n], c, now);
        n++;
    }
    return n;
}

/* under the lock: serves the pending request, if any */
static void serve_locked(smartbus_router *r)
{
    rt_monitor *m = &r->mon;
    if (!sb_relaxed(&m->pending)) return;
    m->result = copy_snapshot(r, m->st, m->conns, m->cap);
    m->done = 1;
    __atomic_store_n(&m->pending, 0, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&m->cond);
}

void sb_monitor_serve(smartbus_router *r)
{
    pthread_mutex_lock(&r->mon.lock);
    serve_locked(r);
    pthread_mutex_unlock(&r->mon.lock);
}

void sb_monitor_running(smartbus_router *r, int running)
{
    pthread_mutex_lock(&r->mon.lock);
    serve_locked(r);
    r->mon.running = running;
    pthread_mutex_unlock(&r->mon.lock);
}

/* ---- the request ------------------------------------------------------------ */

int smartbus_router_snapshot(smartbus_router *r, smartbus_router_stats *st,
                             smartbus_router_conn *conns, int cap, int timeout_ms)
{
    if (!r || cap < 0 || (cap > 0 && !conns) || timeout_ms < 0) return SMARTBUS_ERR_ARGUMENT;
    rt_monitor *m = &r->mon;
    int64_t deadline = sb_now_ms() + timeout_ms;

    pthread_mutex_lock(&m->lock);
    while (m->busy) {                         /* one request at a time */
        if (sb_cond_wait_until(&m->cond, &m->lock, deadline) == ETIMEDOUT && m->busy) {
            pthread_mutex_unlock(&m->lock);
            return SMARTBUS_ERR_TIMEOUT;
        }
    }
    int n;
    if (!m->running) {
        n = copy_snapshot(r, st, conns, cap);
        pthread_mutex_unlock(&m->lock);
        return n;
    }
    m->busy = 1;
    m->done = 0;
    m->st = st;
    m->conns = conns;
    m->cap = cap;
    __atomic_store_n(&m->pending, 1, __ATOMIC_RELAXED);
    sb_waker_wake(&r->waker);
    while (!m->done) {
        if (sb_cond_wait_until(&m->cond, &m->lock, deadline) == ETIMEDOUT) break;
    }
    n = m->done ? m->result : SMARTBUS_ERR_TIMEOUT;
    /* the slot is free again; an unserved request is withdrawn */
    __atomic_store_n(&m->pending, 0, __ATOMIC_RELAXED);
    m->busy = 0;
    m->st = NULL;
    m->conns = NULL;
    m->cap = 0;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    return n;
}
