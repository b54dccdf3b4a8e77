/*
 * wire.c - the SmartBus packet codec (see smartbus_wire.h): the one place
 * that knows where each field of a head or payload sits.  Pure functions:
 * no allocation, no global state, every read bounds-checked.
 */
#include "platform.h"
#include <string.h>

#include "smartbus_wire.h"

/* ---- field sizes and offsets ------------------------------------------------
 * Offsets are from the start of the payload (20 bytes after the head flag)
 * unless said otherwise. */

/* text fields */
#define USER_SIZE        64
#define PASSWORD_SIZE    128
#define INFO_SIZE        256
#define VERSION_SIZE     20
#define PROJECT_SIZE     32
#define FLOW_ID_SIZE     32
#define TITLE_SIZE       102

/* registration (offset in the whole packet) */
#define REG_CONN_INDEX   SBW_HEAD_SIZE

/* global connect (NET.md §10): the inner head, then: */
#define GLOBAL_UNIT      20
#define GLOBAL_CLIENT    21
#define GLOBAL_TYPE      22
#define GLOBAL_AP_UNIT   23
#define GLOBAL_STATUS    24
#define GLOBAL_INFO      25

/* every flow-family payload (invoke, notify, flow ack / result) starts so */
#define TAG_AT           0
#define PROJECT_AT       1

/* flow invoke (NET.md §7) */
#define INVOKE_FLOW      33
#define INVOKE_MODE      65
#define INVOKE_CHANNEL   66
#define INVOKE_ID        70
#define INVOKE_PARAMS_LEN 74
#define INVOKE_RESERVED  78      /* zeros up to the parameters */
#define INVOKE_PARAMS    112     /* parameters, then two NULs: SBW_INVOKE_FIXED = 114 */

/* notify (NET.md §9) */
#define NOTIFY_MODE      33
#define NOTIFY_ID        34
#define NOTIFY_EXPIRES   38
#define NOTIFY_TITLE     42
#define NOTIFY_PARAMS_LEN 144
#define NOTIFY_PARAMS    148     /* parameters, then two NULs: SBW_NOTIFY_FIXED = 150 */

/* flow ack and flow result (NET.md §8) */
#define REPLY_INVOKE_ID  33
#define REPLY_CHANNEL    37
#define REPLY_CODE       41
#define ACK_TEXT_LEN     45      /* the ack carries its text length ... */
#define ACK_TEXT         49
#define RESULT_TEXT      45      /* ... the result does not */

/* ---- strings ------------------------------------------------------------ */

static void put_field(uint8_t *field, size_t size, const char *s, int allow_full)
{
    size_t n = 0;
    size_t max = allow_full ? size : size - 1;
    if (s) {
        while (n < max && s[n]) n++;
        memcpy(field, s, n);
    }
    memset(field + n, 0, size - n);
}

void sbw_get_str(char *out, const uint8_t *field, size_t size)
{
    size_t n = 0;
    while (n < size && field[n]) n++;
    memcpy(out, field, n);
    out[n] = '\0';
}

/* length of a NUL-terminated string inside [p, p+max), or max */
static int32_t bounded_len(const uint8_t *p, size_t max)
{
    const void *z = memchr(p, 0, max);
    return (int32_t)(z ? (size_t)((const uint8_t *)z - p) : max);
}

/* ---- head ---------------------------------------------------------------- */

void sbw_put_head(uint8_t *p, const sbw_head *h)
{
    sbw_put_u16(p, SMARTBUS_HEAD_FLAG);
    p[2] = h->cmd;
    p[3] = h->cmdtype;
    p[4] = h->src_type;
    p[5] = h->src_unit;
    p[6] = h->src_client;
    p[7] = h->dst_type;
    p[8] = h->dst_unit;
    p[9] = h->dst_client;
    p[10] = h->reserved[0];
    p[11] = h->reserved[1];
    sbw_put_i32(p + SBW_HEAD_PACKET_SIZE_AT, h->packet_size);
    sbw_put_i32(p + SBW_HEAD_DATALEN_AT, h->datalen);
}

int sbw_get_head(const uint8_t *p, size_t n, sbw_head *h)
{
    if (n < SBW_HEAD_SIZE) return SBW_ESHORT;
    if (sbw_get_u16(p) != SMARTBUS_HEAD_FLAG) return SBW_EFLAG;
    sbw_read_head(p, h);
    if (h->datalen < 0 || h->datalen > SMARTBUS_MAX_DATA_SIZE) return SBW_ESIZE;
    if (h->packet_size < SBW_HEAD_SIZE + h->datalen) return SBW_ESIZE;
    /* any padding is accepted (NET.md §3.2), within the largest packet */
    if (h->packet_size > SBW_MAX_PACKET) return SBW_ESIZE;
    return SBW_OK;
}

/* Writes the head for a payload of `len` bytes, returns the packet size or
 * SBW_ESPACE; the payload itself is written by the caller at out + 20, the
 * padding (zeroed here) after it. */
static int begin_packet(uint8_t *out, size_t cap, sbw_head *h, int32_t len, sbw_padding padding)
{
    int32_t pad = sbw_pad(len, padding);
    size_t total = (size_t)SBW_HEAD_SIZE + (size_t)len + (size_t)pad;
    if (len < 0 || total > cap || total > (size_t)INT32_MAX) return SBW_ESPACE;
    h->datalen = len;
    h->packet_size = (int32_t)total;
    sbw_put_head(out, h);
    if (pad) memset(out + SBW_HEAD_SIZE + len, 0, (size_t)pad);
    return (int)total;
}

int sbw_put_packet(uint8_t *out, size_t cap, sbw_head *h, const void *payload,
                   int32_t len, sbw_padding padding)
{
    int total = begin_packet(out, cap, h, len, padding);
    if (total > 0 && len > 0) memcpy(out + SBW_HEAD_SIZE, payload, (size_t)len);
    return total;
}

/* ---- registration --------------------------------------------------------- */

/* offsets inside the whole packet, per layout */
typedef struct reg_layout {
    int size, user, password, info, node, node_size, version, pid;
} reg_layout;

static const reg_layout REG_LAYOUTS[3] = {
    /* NET_A */ { SBW_REG_NET_A_SIZE, 21, 85, 213, 469, SBW_NODE_NET_SIZE, -1, -1 },
    /* NET_C */ { SBW_REG_NET_C_SIZE, 41, 105, 241, 497, SBW_NODE_NET_SIZE, 21, 233 },
    /* IPC   */ { SBW_REG_IPC_SIZE, 21, 85, 213, 469, SBW_NODE_IPC_SIZE, -1, -1 },
};

/* NET node table (NET.md §5.1.1) */
#define NODE_USED        0
#define NODE_CONNECTED   1
#define NODE_UNIT        2
#define NODE_AP_UNIT     6
#define NODE_IS_NET      10
#define NODE_CLI_COUNT   147
#define NODE_CLIENTS     148
#define NODE_ENTRY_SIZE  338
#define ENTRY_USED       0
#define ENTRY_CONNECTED  1
#define ENTRY_CLIENT_ID  2
#define ENTRY_CLIENT_TYPE 6
#define ENTRY_INFO       10

int sbw_put_register(uint8_t *out, size_t cap, const sbw_register *r)
{
    if (r->layout < SBW_REG_NET_A || r->layout > SBW_REG_IPC) return SBW_EFORMAT;
    const reg_layout *L = &REG_LAYOUTS[r->layout];
    if (cap < (size_t)L->size) return SBW_ESPACE;
    int ipc = r->layout == SBW_REG_IPC;
    memset(out, 0, (size_t)L->size);
    sbw_head h;
    memset(&h, 0, sizeof h);
    h.cmd = SMARTBUS_CMD_REGISTER;
    h.cmdtype = SMARTBUS_CMDTYPE_INTERNAL;
    h.src_type = r->client_type;
    h.src_unit = ipc ? 0 : r->unit_id;   /* IPC: not written by the vendor client */
    h.src_client = r->client_id;
    h.packet_size = L->size;
    h.datalen = L->size - SBW_HEAD_SIZE;
    sbw_put_head(out, &h);
    out[REG_CONN_INDEX] = ipc ? 0 : r->conn_index;
    /* IPC fields may fill the whole field without a terminator (IPC.md §5.2) */
    put_field(out + L->user, USER_SIZE, r->user, ipc);
    put_field(out + L->password, PASSWORD_SIZE, r->password, ipc);
    put_field(out + L->info, INFO_SIZE, r->info, ipc);
    if (L->version >= 0) put_field(out + L->version, VERSION_SIZE, r->version, 0);
    if (L->pid >= 0) sbw_put_i64(out + L->pid, r->pid);
    if (!ipc) {
        uint8_t *node = out + L->node;
        node[NODE_USED] = 1;
        node[NODE_CONNECTED] = 1;
        sbw_put_i32(node + NODE_UNIT, r->unit_id);
        sbw_put_i32(node + NODE_AP_UNIT, r->ap_unit);
        node[NODE_IS_NET] = 1;
        node[NODE_CLI_COUNT] = 1;
        uint8_t *e = node + NODE_CLIENTS;
        e[ENTRY_USED] = 1;
        e[ENTRY_CONNECTED] = 1;
        sbw_put_i32(e + ENTRY_CLIENT_ID, r->client_id);
        sbw_put_i32(e + ENTRY_CLIENT_TYPE, r->client_type);
        put_field(e + ENTRY_INFO, INFO_SIZE, r->info, 0);
    }
    return L->size;
}

int sbw_get_register(const uint8_t *p, size_t n, sbw_register *r)
{
    sbw_head h;
    int rc = sbw_get_head(p, n, &h);
    if (rc != SBW_OK) return rc;
    if (h.cmdtype != SMARTBUS_CMDTYPE_INTERNAL || h.cmd != SMARTBUS_CMD_REGISTER) return SBW_EFORMAT;
    int layout;
    switch (h.packet_size) {
    case SBW_REG_NET_A_SIZE: layout = SBW_REG_NET_A; break;
    case SBW_REG_NET_C_SIZE: layout = SBW_REG_NET_C; break;
    case SBW_REG_IPC_SIZE: layout = SBW_REG_IPC; break;
    default: return SBW_EFORMAT;
    }
    const reg_layout *L = &REG_LAYOUTS[layout];
    if (n < (size_t)L->size || h.datalen != L->size - SBW_HEAD_SIZE) return SBW_ESHORT;
    memset(r, 0, sizeof *r);
    r->layout = layout;
    r->client_type = h.src_type;
    r->unit_id = h.src_unit;
    r->client_id = h.src_client;
    r->conn_index = p[REG_CONN_INDEX];
    sbw_get_str(r->user, p + L->user, USER_SIZE);
    sbw_get_str(r->password, p + L->password, PASSWORD_SIZE);
    sbw_get_str(r->info, p + L->info, INFO_SIZE);
    if (L->version >= 0) sbw_get_str(r->version, p + L->version, VERSION_SIZE);
    if (L->pid >= 0) r->pid = sbw_get_i64(p + L->pid);
    r->ap_unit = layout == SBW_REG_IPC ? -1 : sbw_get_i32(p + L->node + NODE_AP_UNIT);
    return SBW_OK;
}

/* ---- registration ack ---------------------------------------------------- */

int sbw_put_register_ack(uint8_t *out, size_t cap, const sbw_head *hin, int32_t result,
                         int node_size)
{
    size_t node = (size_t)(node_size > 0 ? node_size : 0);
    size_t total = (size_t)SBW_HEAD_SIZE + SBW_REG_ACK_FIXED + node;
    if (cap < total) return SBW_ESPACE;
    sbw_head h = *hin;
    h.cmd = SMARTBUS_CMD_REGISTER_ACK;
    h.cmdtype = SMARTBUS_CMDTYPE_INTERNAL;
    h.packet_size = (int32_t)total;
    h.datalen = (int32_t)total - SBW_HEAD_SIZE;
    sbw_put_head(out, &h);
    sbw_put_i32(out + SBW_HEAD_SIZE, result);
    memset(out + SBW_HEAD_SIZE + SBW_REG_ACK_FIXED, 0, node);
    return (int)total;
}

int sbw_get_register_ack(const uint8_t *p, size_t n, int *ap_unit, int32_t *result)
{
    sbw_head h;
    int rc = sbw_get_head(p, n, &h);
    if (rc != SBW_OK) return rc;
    if (h.datalen < SBW_REG_ACK_FIXED || n < SBW_HEAD_SIZE + SBW_REG_ACK_FIXED) return SBW_EFORMAT;
    *ap_unit = (int)(int8_t)h.src_unit;   /* a signed byte (NET.md §5.2) */
    *result = sbw_get_i32(p + SBW_HEAD_SIZE);
    return SBW_OK;
}

/* ---- heartbeat ------------------------------------------------------------- */

int sbw_put_heartbeat(uint8_t *out, size_t cap, sbw_head *h, const sbw_heartbeat *hb)
{
    int old = hb->layout == SBW_HB_OLD;
    int32_t len = old ? SBW_HB_OLD_SIZE - SBW_HEAD_SIZE : SBW_HB_NEW_SIZE - SBW_HEAD_SIZE;
    int total = begin_packet(out, cap, h, len, SBW_PAD_NONE);
    if (total < 0) return total;
    uint8_t *q = out + SBW_HEAD_SIZE;
    if (old) {
        sbw_put_i64(q, hb->counter);
        sbw_put_i64(q + 8, hb->resend);
        sbw_put_i64(q + 16, hb->send_time);
        sbw_put_i64(q + 24, hb->return_time);
    } else {
        sbw_put_i32(q, (int32_t)hb->counter);
        sbw_put_i32(q + 4, (int32_t)hb->resend);
        sbw_put_i64(q + 8, hb->send_time);
        sbw_put_i64(q + 16, hb->return_time);
    }
    return total;
}

int sbw_get_heartbeat(const uint8_t *p, size_t n, sbw_heartbeat *hb)
{
    sbw_head h;
    int rc = sbw_get_head(p, n, &h);
    if (rc != SBW_OK) return rc;
    if ((size_t)h.packet_size > n) return SBW_ESHORT;
    const uint8_t *q = p + SBW_HEAD_SIZE;
    if (h.datalen == SBW_HB_OLD_SIZE - SBW_HEAD_SIZE) {
        hb->layout = SBW_HB_OLD;
        hb->counter = sbw_get_i64(q);
        hb->resend = sbw_get_i64(q + 8);
        hb->send_time = sbw_get_i64(q + 16);
        hb->return_time = sbw_get_i64(q + 24);
    } else if (h.datalen == SBW_HB_NEW_SIZE - SBW_HEAD_SIZE) {
        hb->layout = SBW_HB_NEW;
        hb->counter = sbw_get_i32(q);
        hb->resend = sbw_get_i32(q + 4);
        hb->send_time = sbw_get_i64(q + 8);
        hb->return_time = sbw_get_i64(q + 16);
    } else {
        return SBW_EFORMAT;
    }
    return SBW_OK;
}

/* cmd 5 -> cmd 6 */
int sbw_put_heartbeat_ack(uint8_t *out, size_t cap, const uint8_t *hb, int32_t datalen)
{
    sbw_head in;
    sbw_read_head(hb, &in);
    sbw_head h = { .cmd = SMARTBUS_CMD_HEARTBEAT_ACK, .cmdtype = SMARTBUS_CMDTYPE_INTERNAL,
                   .src_type = in.dst_type, .src_unit = in.dst_unit, .src_client = in.dst_client,
                   .dst_type = in.src_type, .dst_unit = in.src_unit, .dst_client = in.src_client };
    return sbw_put_packet(out, cap, &h, hb + SBW_HEAD_SIZE, datalen, SBW_PAD_NONE);
}

/* ---- global connect ------------------------------------------------------ */

int sbw_put_global(uint8_t *out, size_t cap, sbw_head *h, const sbw_global *g,
                   sbw_padding padding)
{
    int total = begin_packet(out, cap, h, SBW_GLOBAL_PAYLOAD, padding);
    if (total < 0) return total;
    uint8_t *q = out + SBW_HEAD_SIZE;
    sbw_head inner = g->inner;
    inner.packet_size = SBW_GLOBAL_PAYLOAD;
    inner.datalen = SBW_GLOBAL_PAYLOAD - SBW_HEAD_SIZE;
    sbw_put_head(q, &inner);
    q[GLOBAL_UNIT] = g->unit_id;
    q[GLOBAL_CLIENT] = g->client_id;
    q[GLOBAL_TYPE] = g->client_type;
    q[GLOBAL_AP_UNIT] = g->ap_unit;
    q[GLOBAL_STATUS] = g->status;
    put_field(q + GLOBAL_INFO, INFO_SIZE, g->info, 0);
    return total;
}

int sbw_get_global(const uint8_t *payload, size_t len, sbw_global *g)
{
    if (len != SBW_GLOBAL_PAYLOAD) return SBW_EFORMAT;
    memset(g, 0, sizeof *g);
    /* the inner head is not validated: receivers ignore it */
    const uint8_t *q = payload;
    sbw_read_head(q, &g->inner);
    g->unit_id = q[GLOBAL_UNIT];
    g->client_id = q[GLOBAL_CLIENT];
    g->client_type = q[GLOBAL_TYPE];
    g->ap_unit = q[GLOBAL_AP_UNIT];
    g->status = q[GLOBAL_STATUS];
    sbw_get_str(g->info, q + GLOBAL_INFO, INFO_SIZE);
    return SBW_OK;
}

/* ---- the flow family: invoke, notify, flow ack / result ---------------------- */

/* Writes the head, the tag byte and the project of a flow-family payload of
 * `len` bytes; returns the packet size or SBW_ESPACE. */
static int begin_tagged(uint8_t *out, size_t cap, sbw_head *h, int32_t len, sbw_padding padding,
                        uint8_t tag, const char *project)
{
    int total = begin_packet(out, cap, h, len, padding);
    if (total < 0) return total;
    uint8_t *q = out + SBW_HEAD_SIZE;
    q[TAG_AT] = tag;
    put_field(q + PROJECT_AT, PROJECT_SIZE, project, 0);
    return total;
}

/* Reads the project of a flow-family payload of at least `fixed` bytes;
 * SBW_EFORMAT when it is shorter. */
static int get_tagged(const uint8_t *payload, size_t len, size_t fixed, char *project)
{
    if (len < fixed) return SBW_EFORMAT;
    sbw_get_str(project, payload + PROJECT_AT, PROJECT_SIZE);
    return SBW_OK;
}

/* begin_tagged() for an invoke or notify: a payload of `fixed` bytes plus
 * `params_len` of parameter text (SBW_EFORMAT when that does not fit) */
static int begin_with_params(uint8_t *out, size_t cap, sbw_head *h, int32_t fixed,
                             int32_t params_len, sbw_padding padding, uint8_t tag,
                             const char *project)
{
    if (params_len < 0 || params_len > SMARTBUS_MAX_DATA_SIZE - fixed) return SBW_EFORMAT;
    return begin_tagged(out, cap, h, fixed + params_len, padding, tag, project);
}

/* the parameter text of an invoke or notify: its length at len_at, the
 * bytes at text_at, then two NULs */
static void put_params(uint8_t *q, int len_at, int text_at, const char *params, int32_t n)
{
    sbw_put_i32(q + len_at, n);
    if (n) memcpy(q + text_at, params, (size_t)n);
    q[text_at + n] = 0;
    q[text_at + n + 1] = 0;
}

/* reads what put_params wrote; len >= text_at (the fixed part was checked) */
static int get_params(const uint8_t *q, size_t len, int len_at, int text_at,
                      const char **params, int32_t *params_len)
{
    int32_t n = sbw_get_i32(q + len_at);
    size_t room = len - (size_t)text_at;
    if (n < 0 || (size_t)n > room) return SBW_EFORMAT;
    *params = (const char *)(q + text_at);
    *params_len = bounded_len(q + text_at, (size_t)n);
    return SBW_OK;
}

/* ---- flow invoke ----------------------------------------------------------- */

int sbw_put_invoke(uint8_t *out, size_t cap, sbw_head *h, const sbw_invoke *v,
                   sbw_padding padding)
{
    int total = begin_with_params(out, cap, h, SBW_INVOKE_FIXED, v->params_len, padding,
                                  SMARTBUS_SYSCMD_INVOKE_FLOW, v->project);
    if (total < 0) return total;
    uint8_t *q = out + SBW_HEAD_SIZE;
    put_field(q + INVOKE_FLOW, FLOW_ID_SIZE, v->flow, 0);
    q[INVOKE_MODE] = v->mode;
    sbw_put_i32(q + INVOKE_CHANNEL, v->channel);
    sbw_put_i32(q + INVOKE_ID, v->invoke_id);
    memset(q + INVOKE_RESERVED, 0, INVOKE_PARAMS - INVOKE_RESERVED);
    put_params(q, INVOKE_PARAMS_LEN, INVOKE_PARAMS, v->params, v->params_len);
    return total;
}

int sbw_get_invoke(const uint8_t *payload, size_t len, sbw_invoke *v)
{
    memset(v, 0, sizeof *v);
    if (get_tagged(payload, len, SBW_INVOKE_FIXED, v->project) != SBW_OK) return SBW_EFORMAT;
    const uint8_t *q = payload;
    sbw_get_str(v->flow, q + INVOKE_FLOW, FLOW_ID_SIZE);
    v->mode = q[INVOKE_MODE];
    v->channel = sbw_get_i32(q + INVOKE_CHANNEL);
    v->invoke_id = sbw_get_i32(q + INVOKE_ID);
    return get_params(q, len, INVOKE_PARAMS_LEN, INVOKE_PARAMS, &v->params, &v->params_len);
}

/* ---- flow ack / result ---------------------------------------------------- */

/* tag, project, invoke id, channel, code, [length,] text, NUL (padded with
 * NULs up to the minimum size the clients accept) */
static int put_flow_reply(uint8_t *out, size_t cap, sbw_head *h, const sbw_flow_reply *r,
                          sbw_padding padding, uint8_t tag, int text_at, int32_t min_len)
{
    if (r->text_len < 0 || r->text_len > SMARTBUS_MAX_DATA_SIZE - SBW_FLOW_REPLY_MAX_FIXED)
        return SBW_EFORMAT;
    int32_t len = text_at + r->text_len + 1;
    if (len < min_len) len = min_len;
    int total = begin_tagged(out, cap, h, len, padding, tag, r->project);
    if (total < 0) return total;
    uint8_t *q = out + SBW_HEAD_SIZE;
    sbw_put_i32(q + REPLY_INVOKE_ID, r->invoke_id);
    sbw_put_i32(q + REPLY_CHANNEL, r->channel);
    sbw_put_i32(q + REPLY_CODE, r->code);
    if (text_at == ACK_TEXT) sbw_put_i32(q + ACK_TEXT_LEN, r->text_len);
    if (r->text_len) memcpy(q + text_at, r->text, (size_t)r->text_len);
    memset(q + text_at + r->text_len, 0, (size_t)(len - text_at - r->text_len));
    return total;
}

int sbw_put_flow_ack(uint8_t *out, size_t cap, sbw_head *h, const sbw_flow_reply *r,
                     sbw_padding padding)
{
    return put_flow_reply(out, cap, h, r, padding, SMARTBUS_SYSCMD_FLOW_ACK, ACK_TEXT,
                          SBW_FLOW_ACK_MIN);
}

int sbw_put_flow_result(uint8_t *out, size_t cap, sbw_head *h, const sbw_flow_reply *r,
                        sbw_padding padding)
{
    return put_flow_reply(out, cap, h, r, padding, SMARTBUS_SYSCMD_FLOW_RESULT, RESULT_TEXT,
                          SBW_FLOW_RET_MIN);
}

/* What a client reads (NET.md §8.2/8.3): invoke id, code, text up to its NUL. */
static int get_flow_reply(const uint8_t *payload, size_t len, size_t min_len, int text_at,
                          sbw_flow_reply *r)
{
    memset(r, 0, sizeof *r);
    if (get_tagged(payload, len, min_len, r->project) != SBW_OK) return SBW_EFORMAT;
    r->invoke_id = sbw_get_i32(payload + REPLY_INVOKE_ID);
    r->channel = sbw_get_i32(payload + REPLY_CHANNEL);
    r->code = sbw_get_i32(payload + REPLY_CODE);
    r->text = (const char *)(payload + text_at);
    r->text_len = bounded_len(payload + text_at, len - (size_t)text_at);
    return SBW_OK;
}

int sbw_get_flow_ack(const uint8_t *payload, size_t len, sbw_flow_reply *r)
{
    return get_flow_reply(payload, len, SBW_FLOW_ACK_MIN, ACK_TEXT, r);
}

int sbw_get_flow_result(const uint8_t *payload, size_t len, sbw_flow_reply *r)
{
    return get_flow_reply(payload, len, SBW_FLOW_RET_MIN, RESULT_TEXT, r);
}

/* ---- notify ---------------------------------------------------------------- */

int sbw_put_notify(uint8_t *out, size_t cap, sbw_head *h, const sbw_notify *v,
                   sbw_padding padding)
{
    int total = begin_with_params(out, cap, h, SBW_NOTIFY_FIXED, v->params_len, padding,
                                  SMARTBUS_SYSCMD_NOTIFY, v->project);
    if (total < 0) return total;
    uint8_t *q = out + SBW_HEAD_SIZE;
    q[NOTIFY_MODE] = v->mode;
    sbw_put_i32(q + NOTIFY_ID, v->notify_id);
    sbw_put_i32(q + NOTIFY_EXPIRES, v->expires);
    put_field(q + NOTIFY_TITLE, TITLE_SIZE, v->title, 0);
    put_params(q, NOTIFY_PARAMS_LEN, NOTIFY_PARAMS, v->params, v->params_len);
    return total;
}

int sbw_get_notify(const uint8_t *payload, size_t len, sbw_notify *v)
{
    memset(v, 0, sizeof *v);
    if (get_tagged(payload, len, SBW_NOTIFY_FIXED, v->project) != SBW_OK) return SBW_EFORMAT;
    const uint8_t *q = payload;
    v->mode = q[NOTIFY_MODE];
    v->notify_id = sbw_get_i32(q + NOTIFY_ID);
    v->expires = sbw_get_i32(q + NOTIFY_EXPIRES);
    sbw_get_str(v->title, q + NOTIFY_TITLE, TITLE_SIZE);
    return get_params(q, len, NOTIFY_PARAMS_LEN, NOTIFY_PARAMS, &v->params, &v->params_len);
}
