/*
 * engine.c - the process-wide client engine: one I/O thread that serves
 * every started client (its links, timers, flows and send queue), and the
 * engine's life: the thread starts with the first client and stops after
 * the last one has been let go.
 *
 * fork(): the child has no I/O thread, so its engine starts afresh (with
 * the first client started in the child).  The parent's clients stay the
 * parent's: in the child their sockets are closed (else the child would
 * hold the parent's connections open after the parent closed them) and
 * their memory is leaked, never freed (their locks may have been copied
 * held); smartbus_client_free() of such a client returns at once.
 */
#include "platform.h"
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_internal.h"

#define LINGER_MS          2000    /* close: time given to flush the send queue */
#define IDLE_POLL_MS       1000    /* longest sleep when no timer is due */

sb_engine sb_io_engine = {
    .life = PTHREAD_MUTEX_INITIALIZER, .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER, .sockets = PTHREAD_MUTEX_INITIALIZER,
    .waker = { -1, -1 }
};

/* marks the I/O thread (sb_on_io_thread) */
static pthread_key_t io_thread_key;
static pthread_once_t io_thread_key_once = PTHREAD_ONCE_INIT;

static void make_io_thread_key(void)
{
    pthread_key_create(&io_thread_key, NULL);
}

int sb_on_io_thread(void)
{
    pthread_once(&io_thread_key_once, make_io_thread_key);
    return pthread_getspecific(io_thread_key) != NULL;
}

/* the resume hook handed to sinks: a paused sink has room again */
static void wake_io_thread(void *waker)
{
    sb_waker_wake(waker);
}

/* ---- the I/O thread -------------------------------------------------------- */

/* the descriptors of one poll() and the link each belongs to */
typedef struct pollset {
    struct pollfd *fds;
    smartbus_client **cli;
    sb_link **link;
    size_t n, cap;
} pollset;

static int pollset_add(pollset *ps, int fd, short events, smartbus_client *c, sb_link *k)
{
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 16;
        struct pollfd *f = realloc(ps->fds, cap * sizeof *f);
        if (!f) return -1;
        ps->fds = f;
        smartbus_client **cl = realloc(ps->cli, cap * sizeof *cl);
        if (!cl) return -1;
        ps->cli = cl;
        sb_link **lk = realloc(ps->link, cap * sizeof *lk);
        if (!lk) return -1;
        ps->link = lk;
        ps->cap = cap;
    }
    ps->fds[ps->n].fd = fd;
    ps->fds[ps->n].events = events;
    ps->fds[ps->n].revents = 0;
    ps->cli[ps->n] = c;
    ps->link[ps->n] = k;
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
    return sb_sendq_count(c) > 0 || c->links[c->active].wbuf.len > 0;
}

/* Adopts new clients, lets go of closing ones; 1 when the thread ends:
 * asked to stop, or it let go of the last client itself (freed from an
 * inline callback: nobody waits to join it, so it detaches itself). */
static int io_update_lists(void)
{
    pthread_mutex_lock(&sb_io_engine.lock);
    if (sb_io_engine.stop) {
        pthread_mutex_unlock(&sb_io_engine.lock);
        return 1;
    }
    int64_t now = sb_now_ms();
    while (sb_io_engine.adds) {
        smartbus_client *c = sb_io_engine.adds;
        sb_io_engine.adds = c->next;
        c->next = sb_io_engine.live;
        sb_io_engine.live = c;
        for (int i = 0; i < c->nlinks; i++) {
            c->links[i].state = LINK_WAIT;
            c->links[i].next_connect_at = now;
        }
    }
    smartbus_client *reaped = NULL;
    for (smartbus_client **pp = &sb_io_engine.live; *pp;) {
        smartbus_client *c = *pp;
        if (c->closing && !client_lingers(c, now)) {
            *pp = c->next;
            sb_link_close_all(c);
            c->detached = 1;
            if (c->reap) {                /* freed on this thread: nobody waits */
                sb_io_engine.nclients--;
                c->next = reaped;
                reaped = c;
            }
            pthread_cond_broadcast(&sb_io_engine.cond);
        } else {
            pp = &c->next;
        }
    }
    int ends = reaped && sb_io_engine.nclients == 0;
    if (ends) {
        sb_io_engine.running = 0;     /* the next client starts a new thread */
        pthread_detach(pthread_self());
    }
    pthread_mutex_unlock(&sb_io_engine.lock);
    while (reaped) {
        smartbus_client *c = reaped;
        reaped = c->next;
        sb_client_destroy(c);
    }
    return ends;
}

static void *io_thread(void *arg)
{
    (void)arg;
    pollset ps;
    memset(&ps, 0, sizeof ps);
    sb_sink_writer w;
    memset(&w, 0, sizeof w);
    w.resume = wake_io_thread;            /* a sink we pause calls it once drained */
    w.resume_arg = &sb_io_engine.waker;
    pthread_once(&io_thread_key_once, make_io_thread_key);
    pthread_setspecific(io_thread_key, &sb_io_engine);
    while (!io_update_lists()) {
        int64_t now = sb_now_ms();
        int timeout = IDLE_POLL_MS;
        ps.n = 0;
        pollset_add(&ps, sb_io_engine.waker.rfd, POLLIN, NULL, NULL);
        for (smartbus_client *c = sb_io_engine.live; c; c = c->next) {
            int paused = sb_sink_full(&w, c->sink);
            for (int i = 0; i < c->nlinks; i++)
                sb_link_timers(c, &c->links[i], now, &timeout, paused, &w);
            int flow_wait = sb_flows_tick(c, now, &w);
            if (flow_wait >= 0 && flow_wait < timeout) timeout = flow_wait;
            sb_sendq_pump(c, now, &w);
            if (c->linger_until) {            /* closing: detach as soon as flushed */
                int64_t left = client_lingers(c, now) ? c->linger_until - now : 0;
                if (left < timeout) timeout = left < 0 ? 0 : (int)left;
            }
            for (int i = 0; i < c->nlinks; i++) {
                sb_link *k = &c->links[i];
                short ev = 0;
                if (k->fd < 0) continue;
                if (k->state == LINK_CONNECTING) ev = POLLOUT;
                else if (k->state >= LINK_OPEN) {
                    if (!paused) ev |= POLLIN;
                    if (k->wbuf.len > k->wbuf.off) ev |= POLLOUT;
                }
                if (ev) pollset_add(&ps, k->fd, ev, c, k);
            }
        }
        sb_sink_deliver(&w);              /* what inline callbacks send stops the sleep */

        /* sleep unless an application thread queued data meanwhile (see
         * sb_engine_wake_sleeper) */
        sb_store(&sb_io_engine.polling, 1);
        for (smartbus_client *c = sb_io_engine.live; c && timeout > 0; c = c->next) {
            if (c->active >= 0 && c->links[c->active].wbuf.len == 0 && sb_sendq_count(c) > 0)
                timeout = 0;
        }
        if (timeout != 0) {
            /* asleep: application threads may write pings themselves */
            for (smartbus_client *c = sb_io_engine.live; c; c = c->next) sb_link_offer(c);
        }
        int nready = poll(ps.fds, (nfds_t)ps.n, timeout);
        sb_store(&sb_io_engine.polling, 0);
        for (smartbus_client *c = sb_io_engine.live; c; c = c->next) sb_link_reclaim(c);
        if (nready <= 0) continue;

        now = sb_now_ms();
        if (ps.fds[0].revents) sb_waker_drain(&sb_io_engine.waker);
        for (size_t i = 1; i < ps.n; i++) {
            short re = ps.fds[i].revents;
            if (!re) continue;
            smartbus_client *c = ps.cli[i];
            sb_link *k = ps.link[i];
            if (k->fd != ps.fds[i].fd) continue;
            if (k->state == LINK_CONNECTING) {
                sb_link_connect_done(c, k, now, &w);
            } else {
                w.delivered = 0;
                if (re & (POLLIN | POLLHUP | POLLERR)) sb_link_read(c, k, now, &w);
                /* inline callbacks ran (each read is delivered at once): what
                 * they sent on this client is written now, in this turn */
                if (w.delivered) sb_sendq_pump(c, now, &w);
                if (k->fd >= 0 && (re & POLLOUT)) sb_link_write(c, k, now, &w);
            }
            sb_sink_deliver(&w);
        }
    }
    free(ps.fds);
    free(ps.cli);
    free(ps.link);
    return NULL;
}

/* ---- fork() ----------------------------------------------------------------- */

/* The engine's locks are held across fork(), in their usual order: the
 * child then finds the client lists and the link sockets consistent.  (A
 * fork() while a client is being freed waits for that, at most LINGER_MS.) */
static void engine_before_fork(void)
{
    pthread_mutex_lock(&sb_io_engine.life);
    pthread_mutex_lock(&sb_io_engine.lock);
    sb_sockets_lock();
}

static void engine_after_fork_in_parent(void)
{
    sb_sockets_unlock();
    pthread_mutex_unlock(&sb_io_engine.lock);
    pthread_mutex_unlock(&sb_io_engine.life);
}

static void close_links_of(smartbus_client *list)
{
    for (smartbus_client *c = list; c; c = c->next) {
        c->direct = DIRECT_OFF;         /* no direct write to a closed (or reused) number */
        for (int i = 0; i < c->nlinks; i++) {
            if (c->links[i].fd >= 0) close(c->links[i].fd);
            c->links[i].fd = -1;
        }
    }
}

static void engine_after_fork_in_child(void)
{
    close_links_of(sb_io_engine.adds);
    close_links_of(sb_io_engine.live);
    sb_io_engine.adds = sb_io_engine.live = NULL;
    sb_io_engine.nclients = 0;
    sb_io_engine.running = sb_io_engine.stop = sb_io_engine.polling = 0;
    sb_io_engine.epoch++;
    if (sb_io_engine.waker_ok) {        /* the parent's: waking it would wake the parent */
        sb_waker_close(&sb_io_engine.waker);
        sb_io_engine.waker_ok = 0;
    }
    sb_sendq_after_fork();
    engine_after_fork_in_parent();      /* the same unlocking */
}

static pthread_once_t fork_watch = PTHREAD_ONCE_INIT;

static void watch_forks(void)
{
    pthread_atfork(engine_before_fork, engine_after_fork_in_parent, engine_after_fork_in_child);
}

/* ---- engine life ------------------------------------------------------------ */

static int engine_attach(smartbus_client *c)
{
    pthread_once(&fork_watch, watch_forks);
    /* From an inline callback the engine runs (this is its thread, and it
     * ends only between turns), and `life` may be held by a thread that
     * waits for this one (sb_engine_detach): not taken. */
    int own_thread = sb_on_io_thread();
    if (!own_thread) pthread_mutex_lock(&sb_io_engine.life);
    if (!sb_io_engine.waker_ok) {
        if (sb_waker_open(&sb_io_engine.waker) != 0) {
            if (!own_thread) pthread_mutex_unlock(&sb_io_engine.life);
            return SMARTBUS_ERR_OTHER;
        }
        sb_store(&sb_io_engine.waker_ok, 1);
    }
    pthread_mutex_lock(&sb_io_engine.lock);
    c->next = sb_io_engine.adds;
    sb_io_engine.adds = c;
    c->started = 1;
    c->epoch = sb_io_engine.epoch;
    sb_io_engine.nclients++;
    int need_thread = !sb_io_engine.running;
    if (need_thread) {
        sb_io_engine.stop = 0;
        sb_io_engine.running = 1;
    }
    pthread_mutex_unlock(&sb_io_engine.lock);
    int rc = 0;
    if (need_thread && pthread_create(&sb_io_engine.thread, NULL, io_thread, NULL) != 0) {
        pthread_mutex_lock(&sb_io_engine.lock);
        sb_io_engine.adds = c->next;
        c->started = 0;
        sb_io_engine.nclients--;
        sb_io_engine.running = 0;
        pthread_mutex_unlock(&sb_io_engine.lock);
        rc = SMARTBUS_ERR_OTHER;
    }
    if (!own_thread) pthread_mutex_unlock(&sb_io_engine.life);
    sb_engine_wake();
    return rc;
}

int sb_engine_detach(smartbus_client *c)
{
    pthread_mutex_lock(&sb_io_engine.lock);
    int started = c->started;
    int inherited = started && c->epoch != sb_io_engine.epoch;
    pthread_mutex_unlock(&sb_io_engine.lock);
    if (inherited) return -1;
    if (!started) return 0;
    if (sb_on_io_thread()) {
        /* from an inline callback: the thread cannot wait for itself; it
         * lets go of the client between turns (after the linger) and frees
         * it; no event of it is delivered any more */
        pthread_mutex_lock(&sb_io_engine.lock);
        c->closing = 1;
        c->reap = 1;
        pthread_mutex_unlock(&sb_io_engine.lock);
        c->sink = sb_sink_discard();
        sb_engine_wake();
        return 1;
    }
    pthread_mutex_lock(&sb_io_engine.life);
    pthread_mutex_lock(&sb_io_engine.lock);
    c->closing = 1;
    sb_waker_wake(&sb_io_engine.waker);
    while (!c->detached) pthread_cond_wait(&sb_io_engine.cond, &sb_io_engine.lock);
    int last = --sb_io_engine.nclients == 0;
    if (last) sb_io_engine.stop = 1;
    pthread_mutex_unlock(&sb_io_engine.lock);
    if (last) {
        sb_waker_wake(&sb_io_engine.waker);
        pthread_join(sb_io_engine.thread, NULL);
        pthread_mutex_lock(&sb_io_engine.lock);
        sb_io_engine.running = 0;
        sb_io_engine.live = NULL;
        pthread_mutex_unlock(&sb_io_engine.lock);
    }
    pthread_mutex_unlock(&sb_io_engine.life);
    return 0;
}

int smartbus_client_start(smartbus_client *c)
{
    pthread_mutex_lock(&sb_io_engine.lock);
    int started = c->started;
    pthread_mutex_unlock(&sb_io_engine.lock);
    if (started) return 0;
    return engine_attach(c);
}
