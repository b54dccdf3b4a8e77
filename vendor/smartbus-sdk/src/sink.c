/*
 * sink.c - event sinks: the queue between the I/O thread and the user.
 *
 * The I/O thread appends compact records to the sink's back buffer (one
 * lock per read burst, see sb_sink_writer).  The sink's callback thread
 * swaps the back buffer for its empty front buffer (one lock per batch),
 * decodes the records into smartbus_event structs and calls the user's
 * batch callback with up to SINK_BATCH events at a time; once nothing is
 * queued any more it calls it with count 0 before it sleeps (the binding
 * keeps the GIL from the first batch of a burst to that call), and with
 * count -1 once when the thread ends.  Bounded: when
 * the back buffer holds more than max_bytes, the I/O thread stops reading
 * this sink's sockets until the callback thread has taken the batch
 * (TCP back-pressure instead of unbounded memory) and called the resume
 * hook the I/O thread handed it.
 *
 * Inline sinks (smartbus_sink_new_inline) have no thread: the I/O thread
 * fills their buffer the same way, then at its next safe point (right after
 * each read, and after each turn's other work: sb_sink_deliver) decodes it
 * and calls the callback itself, then the count-0 call.  Nothing queues up
 * (each read is delivered before the next one) and no thread is woken.
 * The discard sink (sb_sink_discard) is an inline sink that drops events.
 *
 * fork(): a sink's callback thread stays in the parent.  In the child the
 * sink never runs, and smartbus_sink_free() leaks it (its lock may have
 * been copied held).
 */
#include "platform.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sb_internal.h"

#define SINK_BATCH          256
#define SINK_DEFAULT_MAX    (32u << 20)
#define SINK_KEEP_CAPACITY  (4u << 20)

#define REC_HEAD    1u
#define REC_PROJECT 2u
#define REC_TEXT    4u

/* one record in a sink buffer; followed by [head 20][data][project\0][text\0] */
typedef struct sb_rec {
    uint32_t size;               /* whole record, multiple of 8 */
    uint32_t flags;
    int32_t type, client_id, code, unit_id, invoke_id;
    int32_t g_client_id, g_client_type, g_ap_unit_id;
    uint32_t data_len, project_len, text_len;
    uint32_t reserved;
} sb_rec;

struct smartbus_sink {
    pthread_mutex_t lock;
    pthread_cond_t cond;         /* callback thread waits for events */
    pthread_cond_t done_cond;    /* free() waits for the thread */
    sb_buf back;                 /* filled by the I/O thread */
    sb_buf front;                /* delivered by the callback thread */
    size_t max_bytes;
    size_t queued;               /* back.len, readable without the lock */
    int paused;                  /* the producer stopped reading for us */
    sb_resume_fn resume;         /* how to tell it that we have room again */
    void *resume_arg;
    int stop, done, orphaned;
    unsigned epoch;              /* sink_epoch when made */
    pthread_t thread;            /* the callback thread (not for inline sinks) */
    int on_io_thread;            /* inline: the I/O thread calls cb; no thread */
    int delivering;              /* inline: the I/O thread is in cb (under lock) */
    int ready;                   /* inline: on a writer's ready list (under lock) */
    smartbus_sink *ready_next;
    smartbus_batch_cb cb;
    void *arg;
};

/* fork()s this process is the child of: sinks of another epoch are the parent's */
static unsigned sink_epoch;
static pthread_once_t fork_watch = PTHREAD_ONCE_INIT;

static void sink_after_fork_in_child(void)
{
    sink_epoch++;
}

static void watch_forks(void)
{
    pthread_atfork(NULL, NULL, sink_after_fork_in_child);
}

static size_t rec_size(const sb_evin *ev, size_t project_len)
{
    size_t n = sizeof(sb_rec) + (ev->head ? SBW_HEAD_SIZE : 0) + ev->size;
    if (ev->project_id) n += project_len + 1;
    if (ev->text) n += ev->text_len + 1;
    return (n + 7) & ~(size_t)7;
}

void sb_sink_put(sb_sink_writer *w, smartbus_sink *s, const sb_evin *ev)
{
    if (w->sink != s) {
        sb_sink_flush(w);
        w->sink = s;
    }
    if (!w->locked) {
        pthread_mutex_lock(&s->lock);
        w->locked = 1;
        w->signal = s->back.len == 0;
    }
    size_t plen = ev->project_id ? strlen(ev->project_id) : 0;
    size_t need = rec_size(ev, plen);
    if (need > UINT32_MAX || sb_buf_reserve(&s->back, need) != 0) {
        sb_trace("sink: out of memory, event of type %d dropped", ev->type);
        return;
    }
    uint8_t *p = s->back.p + s->back.len;
    sb_rec r;
    memset(&r, 0, sizeof r);
    r.size = (uint32_t)need;
    r.type = ev->type;
    r.client_id = ev->client_id;
    r.code = ev->code;
    r.unit_id = ev->unit_id;
    r.invoke_id = ev->invoke_id;
    r.g_client_id = ev->g_client_id;
    r.g_client_type = ev->g_client_type;
    r.g_ap_unit_id = ev->g_ap_unit_id;
    r.data_len = (uint32_t)ev->size;
    r.project_len = (uint32_t)plen;
    r.text_len = (uint32_t)ev->text_len;
    r.flags = (ev->head ? REC_HEAD : 0) | (ev->project_id ? REC_PROJECT : 0) |
              (ev->text ? REC_TEXT : 0);
    memcpy(p, &r, sizeof r);
    uint8_t *q = p + sizeof r;
    if (ev->head) { memcpy(q, ev->head, SBW_HEAD_SIZE); q += SBW_HEAD_SIZE; }
    if (ev->size) { memcpy(q, ev->data, ev->size); q += ev->size; }
    if (ev->project_id) { memcpy(q, ev->project_id, plen); q += plen; *q++ = 0; }
    if (ev->text) {
        if (ev->text_len) memcpy(q, ev->text, ev->text_len);
        q += ev->text_len;
        *q++ = 0;
    }
    memset(q, 0, (size_t)(p + need - q));
    s->back.len += need;
    __atomic_store_n(&s->queued, s->back.len, __ATOMIC_RELAXED);
}

/* an inline sink that got its first events since its last delivery joins
 * the writer's ready list (in the order of their first events); lock held */
static void sink_make_ready(sb_sink_writer *w, smartbus_sink *s)
{
    if (s->ready) return;                 /* an event was dropped: still listed */
    s->ready = 1;
    s->ready_next = NULL;
    if (w->ready_last) w->ready_last->ready_next = s;
    else w->ready = s;
    w->ready_last = s;
}

void sb_sink_flush(sb_sink_writer *w)
{
    smartbus_sink *s = w->sink;
    if (s && w->locked) {
        if (w->signal) {
            if (s->on_io_thread) sink_make_ready(w, s);
            else pthread_cond_signal(&s->cond);
        }
        pthread_mutex_unlock(&s->lock);
    }
    w->locked = 0;
    w->signal = 0;
    w->sink = NULL;
}

int sb_sink_full(sb_sink_writer *w, smartbus_sink *s)
{
    if (__atomic_load_n(&s->queued, __ATOMIC_RELAXED) < s->max_bytes) return 0;
    /* the writer may hold this sink's (non-recursive) lock already */
    int held = w->locked && w->sink == s;
    if (!held) pthread_mutex_lock(&s->lock);
    int full = s->back.len >= s->max_bytes;
    if (full) {
        s->paused = 1;
        s->resume = w->resume;
        s->resume_arg = w->resume_arg;
    }
    if (!held) pthread_mutex_unlock(&s->lock);
    return full;
}

size_t smartbus_sink_pending(smartbus_sink *s)
{
    return __atomic_load_n(&s->queued, __ATOMIC_RELAXED);
}

/* frees a sink whose callback thread has ended (or never started), or an
 * inline sink whose callback is not running */
static void sink_destroy(smartbus_sink *s)
{
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->done_cond);
    sb_buf_free(&s->back);
    sb_buf_free(&s->front);
    free(s);
}

/* decodes the records of buf and hands them to the callback in batches */
static void deliver(smartbus_sink *s, sb_buf *buf)
{
    smartbus_event evs[SINK_BATCH];
    int n = 0;
    size_t off = 0;
    while (off + sizeof(sb_rec) <= buf->len) {
        sb_rec r;
        const uint8_t *p = buf->p + off;
        memcpy(&r, p, sizeof r);
        const uint8_t *q = p + sizeof r;
        smartbus_event *e = &evs[n];
        e->type = r.type;
        e->client_id = r.client_id;
        e->code = r.code;
        e->unit_id = r.unit_id;
        e->invoke_id = r.invoke_id;
        e->g_client_id = r.g_client_id;
        e->g_client_type = r.g_client_type;
        e->g_ap_unit_id = r.g_ap_unit_id;
        e->head = NULL;
        if (r.flags & REC_HEAD) { e->head = q; q += SBW_HEAD_SIZE; }
        e->size = (int)r.data_len;
        e->data = r.data_len ? q : NULL;
        q += r.data_len;
        e->project_id = NULL;
        if (r.flags & REC_PROJECT) { e->project_id = (const char *)q; q += r.project_len + 1; }
        e->text = NULL;
        e->text_len = 0;
        if (r.flags & REC_TEXT) { e->text = (const char *)q; e->text_len = (int)r.text_len; }
        off += r.size;
        if (++n == SINK_BATCH) {
            s->cb(s->arg, evs, n);
            n = 0;
            if (__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST)) return;
        }
    }
    if (n) s->cb(s->arg, evs, n);
}

/* the end of an inline sink: its last call, then it is freed */
static void inline_sink_end(smartbus_sink *s)
{
    s->cb(s->arg, NULL, -1);
    sink_destroy(s);
}

/* I/O thread: one inline sink's events, then the count-0 call (none once
 * it is being freed: undelivered events are discarded) */
static void inline_sink_deliver(smartbus_sink *s)
{
    pthread_mutex_lock(&s->lock);
    s->ready = 0;
    int live = !s->stop;
    if (live) {
        /* a thread freeing it waits while `delivering`: s stays ours */
        s->delivering = 1;
        sb_buf_swap(&s->back, &s->front);
        __atomic_store_n(&s->queued, 0, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&s->lock);
        deliver(s, &s->front);
        s->front.len = 0;
        sb_buf_trim(&s->front, SINK_KEEP_CAPACITY);
        if (!__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST)) s->cb(s->arg, NULL, 0);
        pthread_mutex_lock(&s->lock);
        s->delivering = 0;
    }
    /* freed from a callback (or given up on by a waiting thread): ours to
     * end; else a thread that waits for the callback may free it as soon as
     * the lock is released */
    int orphaned = s->orphaned;
    pthread_cond_broadcast(&s->done_cond);
    pthread_mutex_unlock(&s->lock);
    if (orphaned) inline_sink_end(s);
}

int sb_sink_deliver(sb_sink_writer *w)
{
    sb_sink_flush(w);
    int n = 0;
    while (w->ready) {
        smartbus_sink *s = w->ready;
        w->ready = s->ready_next;
        if (!w->ready) w->ready_last = NULL;
        inline_sink_deliver(s);
        n++;
    }
    w->delivered += n;
    return n;
}

static void discard_events(void *arg, const smartbus_event *events, int count)
{
    (void)arg;
    (void)events;
    (void)count;
}

/* never freed; its buffers stay reachable (and bounded: each delivery
 * empties them) */
static smartbus_sink discard_sink = {
    .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
    .done_cond = PTHREAD_COND_INITIALIZER, .max_bytes = SIZE_MAX, .on_io_thread = 1,
    .cb = discard_events
};

smartbus_sink *sb_sink_discard(void)
{
    return &discard_sink;
}

static void *sink_thread(void *arg)
{
    smartbus_sink *s = arg;
    int busy = 0;                /* batches delivered since the last idle call */
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->stop && s->back.len == 0) {
            if (busy) {
                /* nothing queued: tell the callback before sleeping */
                busy = 0;
                pthread_mutex_unlock(&s->lock);
                s->cb(s->arg, NULL, 0);
                pthread_mutex_lock(&s->lock);
                continue;
            }
            pthread_cond_wait(&s->cond, &s->lock);
        }
        if (s->stop) break;
        busy = 1;
        sb_buf_swap(&s->back, &s->front);
        __atomic_store_n(&s->queued, 0, __ATOMIC_RELAXED);
        sb_resume_fn resume = s->paused ? s->resume : NULL;
        void *resume_arg = s->resume_arg;
        s->paused = 0;
        pthread_mutex_unlock(&s->lock);
        if (resume) resume(resume_arg);
        deliver(s, &s->front);
        s->front.len = 0;
        sb_buf_trim(&s->front, SINK_KEEP_CAPACITY);
        pthread_mutex_lock(&s->lock);
    }
    /* the thread ends: last call, whether or not a burst was in progress */
    pthread_mutex_unlock(&s->lock);
    s->cb(s->arg, NULL, -1);
    pthread_mutex_lock(&s->lock);
    s->done = 1;
    int orphaned = s->orphaned;
    pthread_cond_broadcast(&s->done_cond);
    pthread_mutex_unlock(&s->lock);
    if (orphaned) {
        /* smartbus_sink_free gave up waiting (or was called from this
         * thread): the last one out frees */
        sink_destroy(s);
    }
    return NULL;
}

/* a sink with its lock and condition variables, no thread yet */
static smartbus_sink *sink_alloc(smartbus_batch_cb cb, void *arg, size_t max_bytes)
{
    if (!cb) return NULL;
    pthread_once(&fork_watch, watch_forks);
    smartbus_sink *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->epoch = sink_epoch;
    s->cb = cb;
    s->arg = arg;
    s->max_bytes = max_bytes;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    sb_cond_init_timed(&s->done_cond);
    return s;
}

smartbus_sink *smartbus_sink_new(smartbus_batch_cb cb, void *arg, size_t max_queued_bytes)
{
    smartbus_sink *s = sink_alloc(cb, arg, max_queued_bytes ? max_queued_bytes
                                                            : SINK_DEFAULT_MAX);
    if (s && pthread_create(&s->thread, NULL, sink_thread, s) != 0) {
        sink_destroy(s);
        return NULL;
    }
    return s;
}

smartbus_sink *smartbus_sink_new_inline(smartbus_batch_cb cb, void *arg)
{
    /* never full: each read is delivered before the next one */
    smartbus_sink *s = sink_alloc(cb, arg, SIZE_MAX);
    if (s) s->on_io_thread = 1;
    return s;
}

/* s->lock held: a callback of s runs (or, inline, is due) */
static int sink_busy(smartbus_sink *s)
{
    return s->on_io_thread ? s->delivering || s->ready : !s->done;
}

void smartbus_sink_free(smartbus_sink *s, int timeout_ms)
{
    if (!s || s->epoch != sink_epoch) return;     /* the parent's (fork): leaked */
    pthread_mutex_lock(&s->lock);
    __atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
    pthread_cond_signal(&s->cond);
    if (sb_on_io_thread() || (!s->on_io_thread && pthread_equal(pthread_self(), s->thread))) {
        /* called from a callback: never wait (for itself, or for a callback
         * thread that may be waiting for the I/O thread); the last one out
         * frees the sink */
        int busy = sink_busy(s);       /* always, for a callback thread: it ends now */
        if (busy) s->orphaned = 1;
        pthread_mutex_unlock(&s->lock);
        if (!s->on_io_thread) pthread_detach(s->thread);
        else if (!busy) inline_sink_end(s);
        return;
    }
    int64_t deadline = sb_now_ms() + timeout_ms;
    while (sink_busy(s)) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&s->done_cond, &s->lock);
        } else if (sb_cond_wait_until(&s->done_cond, &s->lock, deadline) == ETIMEDOUT) {
            break;
        }
    }
    if (sink_busy(s)) {
        sb_trace("sink: callback still busy after %d ms, %s", timeout_ms,
                 s->on_io_thread ? "left to the I/O thread" : "detached");
        s->orphaned = 1;
        pthread_mutex_unlock(&s->lock);
        if (!s->on_io_thread) pthread_detach(s->thread);
        return;
    }
    pthread_mutex_unlock(&s->lock);
    if (s->on_io_thread) {
        inline_sink_end(s);
        return;
    }
    pthread_join(s->thread, NULL);
    sink_destroy(s);
}
