/*
 * flows.c - the pending-flow table of a client: the invocations it sent
 * and still waits for an ack or a result from, their timers, and the
 * matching of the acks and results that arrive (NET.md §7-§8).
 *
 * An open-addressing hash table of FLOW_TABLE_SIZE slots by invoke id,
 * under the client's lock (application threads insert, the I/O thread
 * settles and expires).  Timeouts give the event code -25 and no head.
 *
 * A reply settles a flow only when it comes from the IPSC the invoke went
 * to: source type IPSC, the invoke's unit and process index (any process
 * of that unit for an invoke to process 0xFF, which the router delivers
 * to all of them).  The vendor client matches by invoke id only (IPC.md
 * §6.4), so any client that guessed an id could answer another's flow.
 */
#include "platform.h"
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

#define FLOW_CHECK_MS      100
#define FLOW_TABLE_SIZE    8192          /* power of two */
#define FLOW_MAX_PENDING   5000
#define FLOW_EMPTY         0
#define FLOW_TOMB          (-1)
#define FLOW_ACK_MIN_MS    1000          /* the ack timeout is the call's, within 1..5 s */
#define FLOW_ACK_MAX_MS    5000

#define FLOW_ANY_PROCESS   0xFF          /* an invoke to every process of a unit */

struct sb_flow {
    int32_t id;                 /* FLOW_EMPTY, FLOW_TOMB or the invoke id */
    uint8_t wait_ack, wait_result;
    uint8_t server_unit, process_index;   /* where the invoke went */
    int64_t ack_at, result_at;
    char project[33];
};

static sb_flow *flow_find(smartbus_client *c, int32_t id)
{
    /* invoke ids are > 0: a reply naming 0 or -1 would find an empty or a
     * deleted slot and delete it (again), and the count of live flows
     * would drift until their timers stopped and the table filled up */
    if (!c->flows || id <= 0) return NULL;
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

sb_flow *sb_flow_start(smartbus_client *c, int32_t id, int server_unit, int process_index,
                       const char *project_id, int mode, int timeout_ms)
{
    sb_flow *f = flow_insert(c, id);
    if (!f) return NULL;
    int64_t now = sb_now_ms();
    f->server_unit = (uint8_t)server_unit;
    f->process_index = (uint8_t)process_index;
    int ack_ms = timeout_ms < FLOW_ACK_MIN_MS ? FLOW_ACK_MIN_MS
                 : timeout_ms > FLOW_ACK_MAX_MS ? FLOW_ACK_MAX_MS : timeout_ms;
    sb_copy_str(f->project, sizeof f->project, project_id);
    f->wait_ack = 1;
    f->ack_at = now + ack_ms;
    /* the mode of *this* call decides (the vendor's build C looked at the
     * previous one); a timeout <= 0 times the result out at the next check */
    f->wait_result = mode != SMARTBUS_FLOW_MODE_NORESULT;
    f->result_at = now + (timeout_ms > 0 ? timeout_ms : 0);
    return f;
}

void sb_flow_cancel(smartbus_client *c, sb_flow *f)
{
    flow_delete(c, f);
}

static void emit_flow(sb_sink_writer *w, smartbus_client *c, int type, const uint8_t *head,
                      const sb_flow *f, int code, const char *text, size_t text_len)
{
    sb_evin ev = { .type = type, .client_id = c->client_id, .head = head, .invoke_id = f->id,
                   .code = code, .project_id = f->project, .text = text ? text : "",
                   .text_len = text ? text_len : 0 };
    sb_sink_put(w, c->sink, &ev);
}

/* fires expired ack / result timers (-25, no head) */
static void flows_expire(smartbus_client *c, int64_t now, sb_sink_writer *w)
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

int sb_flows_tick(smartbus_client *c, int64_t now, sb_sink_writer *w)
{
    if (sb_load(&c->flows_live) <= 0) return -1;
    if (now >= c->next_flow_check) {
        flows_expire(c, now, w);
        c->next_flow_check = now + FLOW_CHECK_MS;
    }
    int wait = (int)(c->next_flow_check - now);
    return wait < 0 ? 0 : wait;
}

/* 1 when a reply with head h comes from the IPSC that flow f went to */
static int from_invoked_ipsc(const sb_flow *f, const sbw_head *h)
{
    return h->src_type == SMARTBUS_NODECLI_TYPE_IPSC && h->src_unit == f->server_unit &&
           (f->process_index == FLOW_ANY_PROCESS || h->src_client == f->process_index);
}

int sb_flows_on_reply(smartbus_client *c, const uint8_t *pkt, const sbw_head *h,
                      sb_sink_writer *w)
{
    sbw_flow_reply r;
    int is_ack = h->cmd == SMARTBUS_SYSCMD_FLOW_ACK;
    const uint8_t *payload = pkt + SBW_HEAD_SIZE;
    int rc = is_ack ? sbw_get_flow_ack(payload, (size_t)h->datalen, &r)
                    : sbw_get_flow_result(payload, (size_t)h->datalen, &r);
    if (rc != SBW_OK) return 0;                       /* too short: ignored */
    int foreign = 0;
    pthread_mutex_lock(&c->lock);
    sb_flow *f = flow_find(c, r.invoke_id);
    if (f && !from_invoked_ipsc(f, h)) {
        foreign = r.invoke_id;
        f = NULL;
    }
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
    return foreign;
}
