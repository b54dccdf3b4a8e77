/*
 * sendq.c - the send API of a client and its send queue.  Application
 * threads check their arguments (NET.md §6.1, IPC.md §4.2), encode the
 * packet (data, ping, flow invoke, notify, flow ack / result) and append
 * it to the client's send queue under the client's lock; the I/O thread
 * hands the whole queue to the active link (sb_sendq_pump).
 *
 * Wake-up rule: the I/O thread is woken only when a queue goes from empty
 * to non-empty while it sleeps in poll(), at most once per sleep: no system
 * call per message.  Bounded: max_send_msgs / max_send_bytes, then
 * SMARTBUS_ERR_BUFF_FULL.  A ping on an idle link skips the queue: the
 * calling thread writes it (direct_write; client_internal.h says how the
 * token makes that safe).
 */
#include "platform.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>

#include "client_internal.h"

#define PUMP_ROUNDS 4           /* queue hand-offs per link and I/O turn */

/* Invoke ids: a random start per process, then +1 per invoke.  The vendor
 * counts from 1 (NET.md §8.1), which lets any client guess the ids of
 * another process's pending flows; flows.c also checks the reply's source.
 * The wire field is an int32 and the API returns ids > 0, so ids are
 * 1..INT32_MAX; the start is drawn from 1..INVOKE_ID_START_SPAN (30
 * random bits) so that a process invokes 2^30 flows before its ids wrap
 * to 1. */
#define INVOKE_ID_UNDRAWN     (-1)            /* no id given yet in this process */
#define INVOKE_ID_START_SPAN  (1 << 30)

static int32_t g_invoke_id = INVOKE_ID_UNDRAWN;   /* the last invoke id given (0: next is 1) */
static int32_t g_notify_id;                       /* per-process counter, first id 1 */

/* ---- checks --------------------------------------------------------------- */

/* a client does not send to itself: a NET client not to its own unit, an
 * IPC client not to its own address */
static int check_not_self(smartbus_client *c, int dst_unit, int dst_client)
{
    if (c->kind == SMARTBUS_KIND_NET)
        return dst_unit == c->unit_id ? SMARTBUS_ERR_SEND_OWN : 0;
    return (dst_unit == sb_load(&c->ap_unit) && dst_client == c->client_id)
           ? SMARTBUS_ERR_SEND_OWN : 0;
}

/* The checks of a flow invocation or a notify, in the vendor's order: the
 * IPSC it goes to, the caller's other arguments (args_ok), the parameter
 * text (*params_len: up to the NUL when < 0; need_params: not empty). */
static int check_flow_call(int server_unit, int process_index, int args_ok, const char *params,
                           int *params_len, int need_params)
{
    if (server_unit < 0 || server_unit >= MAX_GLOBAL_SMART_NODE) return SMARTBUS_ERR_UNITID_INVALID;
    if (process_index < 0 || process_index > 255) return SMARTBUS_ERR_CLIENTID_INVALID;
    if (!args_ok) return SMARTBUS_ERR_ARGUMENT;
    if (*params_len < 0) *params_len = (int)strnlen(params, SMARTBUS_MAX_FLOW_PARAM_SIZE + 1);
    if (need_params && *params_len == 0) return SMARTBUS_ERR_ARGUMENT;
    if (*params_len > SMARTBUS_MAX_FLOW_PARAM_SIZE) return SMARTBUS_ERR_MAX_DATASIZE;
    return 0;
}

/* the next notify id: 1, 2, ... and 1 again after wrapping */
static int32_t next_notify_id(void)
{
    int32_t id = __atomic_add_fetch(&g_notify_id, 1, __ATOMIC_SEQ_CST);
    if (id <= 0) {
        __atomic_store_n(&g_notify_id, 1, __ATOMIC_SEQ_CST);
        id = 1;
    }
    return id;
}

/* the next invoke id: the first one of the process drawn at random */
static int32_t next_invoke_id(void)
{
    int32_t last = sb_load(&g_invoke_id);
    for (;;) {
        int32_t id = last == INVOKE_ID_UNDRAWN
                     ? (int32_t)(sb_random_u32() % INVOKE_ID_START_SPAN) + 1
                     : last == INT32_MAX ? 1 : last + 1;
        if (__atomic_compare_exchange_n(&g_invoke_id, &last, id, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            return id;
    }
}

void smartbus_invoke_ids_start_at(int32_t first)
{
    sb_store(&g_invoke_id, first > 0 ? first - 1 : INVOKE_ID_UNDRAWN);
}

void sb_sendq_after_fork(void)
{
    /* the child draws its own start: the same ids in two processes would
     * be guessable again */
    g_invoke_id = INVOKE_ID_UNDRAWN;
}

/* ---- the queue ------------------------------------------------------------ */

/* 1 when one more packet of `need` bytes fits in the send queue of a
 * locked client after `msgs_ahead` packets of `bytes_ahead` bytes that the
 * same call queues before it.  A packet always fits an empty queue
 * (whatever its size, so that any packet can be sent), else the queue's
 * bounds in messages and bytes hold. */
static int queue_fits(const smartbus_client *c, int msgs_ahead, size_t bytes_ahead, size_t need)
{
    size_t queued = c->sendq[c->half].len + bytes_ahead;
    if (sb_relaxed(&c->sendq_n[c->half]) + msgs_ahead >= c->max_msgs) return 0;
    return queued == 0 || queued + need <= c->max_bytes;
}

/* Makes room for `need` more bytes in the send queue of a client held
 * with sb_sendq_lock.  On success returns 0 still holding it; *was_empty
 * tells whether the queue was empty.  On failure it is released. */
static int queue_begin_locked(smartbus_client *c, size_t need, int *was_empty)
{
    if (sb_load(&c->registered) <= 0) {
        sb_sendq_unlock(c);
        return SMARTBUS_ERR_CONN_NOT_ESTAB;
    }
    if (!queue_fits(c, 0, 0, need)) {
        c->st.send_full++;
        sb_sendq_unlock(c);
        return SMARTBUS_ERR_BUFF_FULL;
    }
    if (sb_buf_reserve(&c->sendq[c->half], need) != 0) {
        sb_sendq_unlock(c);
        return SMARTBUS_ERR_MEM_ALLOC;
    }
    *was_empty = sb_relaxed(&c->sendq_n[c->half]) == 0;
    return 0;
}

/* sb_sendq_lock(), then queue_begin_locked(). */
static int queue_begin(smartbus_client *c, size_t need, int *was_empty)
{
    sb_sendq_lock(c);
    return queue_begin_locked(c, need, was_empty);
}

/* the half being filled, and where its next packet is encoded */
static sb_buf *queue_buf(smartbus_client *c)
{
    return &c->sendq[c->half];
}

static uint8_t *queue_tail(smartbus_client *c)
{
    return queue_buf(c)->p + queue_buf(c)->len;
}

/* Accounts `queued` packets put in the queue and `written` ones written
 * directly, of `bytes` payload, unlocks and wakes the I/O thread when it
 * sleeps and the queue was empty. */
static void queue_end(smartbus_client *c, int queued, int written, uint64_t bytes, int was_empty)
{
    if (queued) {
        int n = sb_relaxed(&c->sendq_n[c->half]) + queued;
        /* the wake-up rule: the count is stored before `polling` is read
         * (sequentially consistent) when the queue was empty; otherwise the
         * I/O thread is not asleep on it, and a plain store will do */
        if (was_empty) sb_store(&c->sendq_n[c->half], n);
        else __atomic_store_n(&c->sendq_n[c->half], n, __ATOMIC_RELAXED);
    }
    c->st.sent_msgs += (uint64_t)(queued + written);
    c->st.direct_msgs += (uint64_t)written;
    c->st.sent_bytes += bytes;
    sb_sendq_unlock(c);
    if (was_empty && queued) sb_engine_wake_sleeper();
}

/* Ends a queue_begin() that encoded one packet of `encoded` bytes (<= 0: an
 * encoder error) carrying `bytes` of the caller's text; 0 or an error code. */
static int queue_commit(smartbus_client *c, int encoded, int bytes, int was_empty)
{
    if (encoded > 0) queue_buf(c)->len += (size_t)encoded;
    queue_end(c, encoded > 0, 0, encoded > 0 ? (uint64_t)bytes : 0, was_empty);
    return encoded > 0 ? 0 : SMARTBUS_ERR_ARGUMENT;
}

/* Encodes one data packet at the tail of a queue with room for it,
 * without queueing it yet; its size, or SMARTBUS_ERR_ARGUMENT. */
static int encode_data(smartbus_client *c, int cmd, int cmdtype, int dst_unit, int dst_client,
                       int dst_type, const void *data, int size)
{
    sbw_head h = sb_client_head(c, cmd, cmdtype, dst_type, dst_unit, dst_client);
    int n = sbw_put_packet(queue_tail(c), sbw_packet_room(size), &h, data, size, SBW_PAD_CLIENT);
    return n < 0 ? SMARTBUS_ERR_ARGUMENT : n;
}

/* Encodes and queues one data packet at the tail of a queue with room for it. */
static int put_data(smartbus_client *c, int cmd, int cmdtype, int dst_unit, int dst_client,
                    int dst_type, const void *data, int size)
{
    int n = encode_data(c, cmd, cmdtype, dst_unit, dst_client, dst_type, data, size);
    if (n < 0) return n;
    queue_buf(c)->len += (size_t)n;
    return 0;
}

/* The packet of n bytes just encoded at the tail of the empty queue of a
 * locked client, written by the calling thread if the I/O thread offers
 * the direct-write token (client_internal.h).  1 when it left (whole, or
 * its rest kept for the I/O thread), 0 when it must be queued. */
static int direct_write(smartbus_client *c, size_t n)
{
    int idle = DIRECT_IDLE;
    if (sb_relaxed(&c->direct) != DIRECT_IDLE ||
        !__atomic_compare_exchange_n(&c->direct, &idle, DIRECT_WRITING, 0, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST))
        return 0;
    const uint8_t *p = queue_tail(c);
    size_t done = 0;
    while (done < n) {
        ssize_t w = sb_send_nosignal(c->direct_fd, p + done, n - done);
        if (w > 0) done += (size_t)w;
        else if (w < 0 && errno == EINTR) continue;
        else break;            /* full or broken: the I/O thread finds out which */
    }
    if (done == 0) {
        sb_store(&c->direct, DIRECT_IDLE);
        return 0;
    }
    if (done == n) {
        sb_store(&c->direct, DIRECT_IDLE);
        return 1;
    }
    /* the kernel took part of it: the rest must follow before anything else */
    if (sb_buf_reserve(&c->direct_rest, n - done) == 0) {
        memcpy(c->direct_rest.p, p + done, n - done);
        c->direct_rest.len = n - done;
    } else {
        /* the stream cannot go on without it: the link is dropped, the I/O
         * thread reconnects (the packet is lost: at most once) */
        shutdown(c->direct_fd, SHUT_RDWR);
    }
    sb_store(&c->direct, DIRECT_REST);
    sb_engine_wake();
    return 1;
}

/* I/O thread: what a lost link had not begun to write (c->resend, see
 * link.c) goes to the front of the send queue, before what the
 * application queued since.  The queue's bounds do not apply: these
 * packets were accepted already. */
static void queue_resend_first(smartbus_client *c)
{
    sb_sendq_lock(c);
    /* resend + queue, built in the resend buffer, becomes the queue */
    sb_buf *q = queue_buf(c);
    if (sb_buf_reserve(&c->resend, q->len) == 0) {
        if (q->len) memcpy(c->resend.p + c->resend.len, q->p, q->len);
        c->resend.len += q->len;
        sb_buf_swap(q, &c->resend);
        sb_store(&c->sendq_n[c->half], sb_relaxed(&c->sendq_n[c->half]) + c->resend_msgs);
    } else {
        sb_trace("client %d: out of memory, %d unsent messages lost", c->client_id,
                 c->resend_msgs);
    }
    sb_sendq_unlock(c);
    c->resend.len = c->resend.off = 0;
    c->resend_msgs = 0;
}

/* I/O thread: the whole queue into the (empty) write buffer of link k,
 * without the producers' lock (client_internal.h, "two halves") */
static void queue_take(smartbus_client *c, sb_link *k)
{
    int f = c->fill;                            /* only this thread changes it */
    sb_store(&c->fill, !f);
    unsigned seq = sb_load(&c->fill_seq);
    if (seq & 1u) {                             /* a producer may still be in half f */
        while (sb_load(&c->fill_seq) == seq) sched_yield();
    }
    sb_buf_swap(&c->sendq[f], &k->wbuf);
    c->sendq[f].len = c->sendq[f].off = 0;
    /* an emptied half keeps its memory up to the queue's byte bound: a
     * 4 MiB cap freed and mapped a fresh buffer at every swap when 1 KiB
     * messages stream at ~1 GB/s (the 1 KiB send rate fell by a fifth).
     * Still bounded: two halves and the link's write buffer, each at most
     * the bound plus one packet */
    sb_buf_trim(&c->sendq[f], c->max_bytes);
    sb_store(&c->sendq_n[f], 0);
    k->app_end = k->wbuf.len;
}

/* I/O thread */
void sb_sendq_pump(smartbus_client *c, int64_t now, sb_sink_writer *w)
{
    if (c->resend.len) queue_resend_first(c);
    for (int i = 0; i < c->nlinks; i++) {
        sb_link *k = &c->links[i];
        if (k->fd < 0 || k->state < LINK_OPEN) continue;
        for (int round = 0; round < PUMP_ROUNDS; round++) {
            if (c->resend.len) queue_resend_first(c);     /* a link was lost just now */
            if (i == c->active && k->wbuf.len == 0 && sb_sendq_count(c) > 0)
                queue_take(c, k);
            if (k->wbuf.len == 0) break;
            if (sb_link_write(c, k, now, w) < 0 || k->wbuf.len != 0) break;
        }
    }
}

/* ---- data and pings --------------------------------------------------------- */

static int send_packet(smartbus_client *c, int cmd, int cmdtype, int dst_unit, int dst_client,
                       int dst_type, const void *data, int size, int flags)
{
    if (size < 0 || !data) size = 0;    /* a negative size is sent as datalen 0 */
    int was_empty;
    size_t need = sbw_packet_room(size);
    int rc;
    if (flags & SMARTBUS_SEND_TRYLOCK) {
        if (sb_sendq_trylock(c) != 0) return SMARTBUS_ERR_WOULDBLOCK;
        rc = queue_begin_locked(c, need, &was_empty);
    } else {
        rc = queue_begin(c, need, &was_empty);
    }
    if (rc != 0) return rc;
    int n = encode_data(c, cmd, cmdtype, dst_unit, dst_client, dst_type, data, size);
    if (n < 0) {
        queue_end(c, 0, 0, 0, was_empty);
        return n;
    }
    /* a ping on an idle link: no hand-off to the I/O thread (its latency) */
    int direct = (flags & SMARTBUS_SEND_PING) && was_empty && direct_write(c, (size_t)n);
    if (!direct) queue_buf(c)->len += (size_t)n;
    queue_end(c, !direct, direct, (uint64_t)size, was_empty);
    return 0;
}

int smartbus_client_send_ex(smartbus_client *c, int cmd, int cmdtype, int dst_unit,
                            int dst_client, int dst_type, const void *data, int size, int flags)
{
    int rc = sb_check_unit_and_size(dst_unit, size);
    if (rc) return rc;
    if (flags & SMARTBUS_SEND_PING) {
        if ((rc = check_not_self(c, dst_unit, dst_client)) != 0) return rc;
        return send_packet(c, SMARTBUS_SYSCMD_PING, SMARTBUS_CMDTYPE_SYSTEM, dst_unit,
                           dst_client, dst_type, data, size, flags);
    }
    if ((cmdtype & 0xFF) == SMARTBUS_CMDTYPE_INTERNAL) return SMARTBUS_ERR_CMDTYPE_INVALID;
    if ((rc = check_not_self(c, dst_unit, dst_client)) != 0) return rc;
    return send_packet(c, cmd, cmdtype, dst_unit, dst_client, dst_type, data, size, flags);
}

int smartbus_client_send(smartbus_client *c, int cmd, int cmdtype, int dst_unit, int dst_client,
                         int dst_type, const void *data, int size)
{
    return smartbus_client_send_ex(c, cmd, cmdtype, dst_unit, dst_client, dst_type, data, size, 0);
}

int smartbus_client_send_many(smartbus_client *c, int cmd, int cmdtype, int dst_unit,
                              int dst_client, int dst_type, const void *const *datas,
                              const int *sizes, int count, int *err)
{
    *err = sb_check_unit_and_size(dst_unit, 0);
    if (!*err && (cmdtype & 0xFF) == SMARTBUS_CMDTYPE_INTERNAL) *err = SMARTBUS_ERR_CMDTYPE_INVALID;
    if (!*err) *err = check_not_self(c, dst_unit, dst_client);
    if (*err || count <= 0) return 0;
    for (int i = 0; i < count; i++) {
        if (sizes[i] > SMARTBUS_MAX_DATA_SIZE) { *err = SMARTBUS_ERR_MAX_DATASIZE; count = i; break; }
    }
    if (count == 0) return 0;
    /* the batch is cut where the queue's bounds are reached, the first
     * packet being judged like a send_data of its own */
    sb_sendq_lock(c);
    size_t total = 0;
    int fit = 0;
    for (; fit < count; fit++) {
        size_t need = sbw_packet_room(sizes[fit] > 0 ? sizes[fit] : 0);
        if (!queue_fits(c, fit, total, need)) break;
        total += need;
    }
    /* none fits: the first packet's own refusal (-2 before -7) */
    int was_empty;
    int rc = queue_begin_locked(c, fit > 0 ? total : sbw_packet_room(sizes[0] > 0 ? sizes[0] : 0),
                                &was_empty);
    if (rc != 0) { *err = rc; return 0; }
    int done = 0;
    uint64_t bytes = 0;
    for (; done < fit; done++) {
        int size = sizes[done] > 0 && datas[done] ? sizes[done] : 0;
        if ((rc = put_data(c, cmd, cmdtype, dst_unit, dst_client, dst_type, datas[done], size)) != 0) {
            *err = rc;
            break;
        }
        bytes += (uint64_t)size;
    }
    if (done == fit && fit < count) { *err = SMARTBUS_ERR_BUFF_FULL; c->st.send_full++; }
    queue_end(c, done, 0, bytes, was_empty);
    return done;
}

int smartbus_client_ping(smartbus_client *c, int dst_unit, int dst_client, int dst_type,
                         const void *data, int size)
{
    return smartbus_client_send_ex(c, 0, 0, dst_unit, dst_client, dst_type, data, size,
                                   SMARTBUS_SEND_PING);
}

/* ---- flows and notifies ------------------------------------------------------- */

/* a message to an IPSC being queued */
typedef struct ipsc_message {
    sbw_head head;
    size_t room;                /* made in the queue for it */
    int was_empty;              /* the queue was empty (queue_begin) */
} ipsc_message;

/* queue_begin() for a message to IPSC (server_unit, process_index) with a
 * payload of `payload_size` bytes */
static int queue_begin_to_ipsc(smartbus_client *c, int cmd, int server_unit, int process_index,
                               int payload_size, ipsc_message *m)
{
    m->head = sb_client_head(c, cmd, SMARTBUS_CMDTYPE_SYSTEM, SMARTBUS_NODECLI_TYPE_IPSC,
                             server_unit, process_index);
    m->room = sbw_packet_room(payload_size);
    return queue_begin(c, m->room, &m->was_empty);
}

int smartbus_client_invoke_flow(smartbus_client *c, int server_unit, int process_index,
                                const char *project_id, const char *flow_id, int mode,
                                int timeout_ms, const char *params, int params_len)
{
    if (!params) params = "";
    int rc = check_flow_call(server_unit, process_index,
                             project_id && flow_id && mode >= 0 && mode <= 255, params,
                             &params_len, 0);
    if (rc) return rc;

    int32_t id = next_invoke_id();
    sbw_invoke v = { .mode = (uint8_t)mode, .channel = -1, .invoke_id = id, .params = params,
                     .params_len = params_len };
    sb_copy_str(v.project, sizeof v.project, project_id);
    sb_copy_str(v.flow, sizeof v.flow, flow_id);
    ipsc_message m;
    rc = queue_begin_to_ipsc(c, SMARTBUS_SYSCMD_INVOKE_FLOW, server_unit, process_index,
                             sbw_invoke_payload_size(params_len), &m);
    if (rc != 0) return rc;
    sb_flow *f = sb_flow_start(c, id, server_unit, process_index, project_id, mode, timeout_ms);
    if (!f) {
        sb_sendq_unlock(c);
        return SMARTBUS_ERR_BUFF_FULL;
    }
    int n = sbw_put_invoke(queue_tail(c), m.room, &m.head, &v, SBW_PAD_CLIENT);
    if (n <= 0) sb_flow_cancel(c, f);
    if ((rc = queue_commit(c, n, params_len, m.was_empty)) != 0) return rc;
    sb_engine_wake();    /* so that the I/O thread starts checking timers */
    return id;
}

int smartbus_client_notify(smartbus_client *c, int server_unit, int process_index,
                           const char *project_id, const char *title, int mode, int expires_ms,
                           const char *params, int params_len)
{
    int rc = check_flow_call(server_unit, process_index,
                             title && *title && params && mode >= 0 && mode <= 255, params,
                             &params_len, 1);
    if (rc) return rc;

    int32_t id = next_notify_id();
    sbw_notify v = { .mode = (uint8_t)mode, .notify_id = id, .expires = expires_ms,
                     .params = params, .params_len = params_len };
    sb_copy_str(v.project, sizeof v.project, project_id);
    sb_copy_str(v.title, sizeof v.title, title);
    ipsc_message m;
    rc = queue_begin_to_ipsc(c, SMARTBUS_SYSCMD_NOTIFY, server_unit, process_index,
                             sbw_notify_payload_size(params_len), &m);
    if (rc != 0) return rc;
    int n = sbw_put_notify(queue_tail(c), m.room, &m.head, &v, SBW_PAD_CLIENT);
    rc = queue_commit(c, n, params_len, m.was_empty);
    return rc ? rc : id;
}

/* a flow ack (cmd 13) or result (cmd 12) back to an invoker */
static int send_flow_reply(smartbus_client *c, int cmd, int dst_unit, int dst_client,
                           int dst_type, const char *project_id, int invoke_id, int code,
                           const char *text, int text_len)
{
    if (dst_unit < 0 || dst_unit > 255 || dst_client < 0 || dst_client > 255 || dst_type < 0 ||
        dst_type > 255)
        return SMARTBUS_ERR_ARGUMENT;
    if (!text) text = "";
    if (text_len < 0) text_len = (int)strlen(text);
    if (text_len > SMARTBUS_MAX_DATA_SIZE - SBW_FLOW_REPLY_MAX_FIXED)
        return SMARTBUS_ERR_MAX_DATASIZE;
    sbw_flow_reply r = { .invoke_id = invoke_id, .channel = -1, .code = code, .text = text,
                         .text_len = text_len };
    sb_copy_str(r.project, sizeof r.project, project_id);
    sbw_head h = sb_client_head(c, cmd, SMARTBUS_CMDTYPE_SYSTEM, dst_type, dst_unit, dst_client);
    size_t need = sbw_packet_room(SBW_FLOW_REPLY_MAX_FIXED + text_len);
    int was_empty;
    int rc = queue_begin(c, need, &was_empty);
    if (rc != 0) return rc;
    int n = cmd == SMARTBUS_SYSCMD_FLOW_RESULT
            ? sbw_put_flow_result(queue_tail(c), need, &h, &r, SBW_PAD_CLIENT)
            : sbw_put_flow_ack(queue_tail(c), need, &h, &r, SBW_PAD_CLIENT);
    return queue_commit(c, n, text_len, was_empty);
}

int smartbus_client_flow_ack(smartbus_client *c, int dst_unit, int dst_client, int dst_type,
                             const char *project_id, int invoke_id, int code, const char *text,
                             int text_len)
{
    return send_flow_reply(c, SMARTBUS_SYSCMD_FLOW_ACK, dst_unit, dst_client, dst_type,
                           project_id, invoke_id, code, text, text_len);
}

int smartbus_client_flow_result(smartbus_client *c, int dst_unit, int dst_client, int dst_type,
                                const char *project_id, int invoke_id, int code,
                                const char *text, int text_len)
{
    return send_flow_reply(c, SMARTBUS_SYSCMD_FLOW_RESULT, dst_unit, dst_client, dst_type,
                           project_id, invoke_id, code, text, text_len);
}
