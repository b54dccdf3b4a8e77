/*
 * wire.c - the SmartBus packet codec (see smartbus_wire.h).  Pure functions:
 * no allocation, no global state, every read bounds-checked.
 */
#include <string.h>

#include "smartbus_wire.h"

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

void sbw_put_str(uint8_t *field, size_t size, const char *s)
{
    put_field(field, size, s, 0);
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
    sbw_put_i32(p + 12, h->packet_size);
    sbw_put_i32(p + 16, h->datalen);
}

int sbw_get_head(const uint8_t *p, size_t n, sbw_head *h)
{
    if (n < SBW_HEAD_SIZE) return SBW_ESHORT;
    if (sbw_get_u16(p) != SMARTBUS_HEAD_FLAG) return SBW_EFLAG;
    h->cmd = p[2];
    h->cmdtype = p[3];
    h->src_type = p[4];
    h->src_unit = p[5];
    h->src_client = p[6];
    h->dst_type = p[7];
    h->dst_unit = p[8];
    h->dst_client = p[9];
    h->reserved[0] = p[10];
    h->reserved[1] = p[11];
    h->packet_size = sbw_get_i32(p + 12);
    h->datalen = sbw_get_i32(p + 16);
    if (h->datalen < 0 || h->datalen > SMARTBUS_MAX_DATA_SIZE) return SBW_ESIZE;
    if (h->packet_size < SBW_HEAD_SIZE + h->datalen) return SBW_ESIZE;
    /* any padding is accepted (NET.md §3.2), within the largest packet */
    if (h->packet_size > SBW_MAX_PACKET) return SBW_ESIZE;
    return SBW_OK;
}

/* Writes the head for a payload of `len` bytes, returns the packet size or
 * SBW_ESPACE; the payload itself is written by the caller at out + 20, the
 * padding (zeroed here) after it. */
static int begin_packet(uint8_t *out, size_t cap, sbw_head *h, int32_t len, int client_rule)
{
    int32_t pad = sbw_pad(len, client_rule);
    size_t total = (size_t)SBW_HEAD_SIZE + (size_t)len + (size_t)pad;
    if (len < 0 || total > cap || total > (size_t)INT32_MAX) return SBW_ESPACE;
    h->datalen = len;
    h->packet_size = (int32_t)total;
    sbw_put_head(out, h);
    if (pad) memset(out + SBW_HEAD_SIZE + len, 0, (size_t)pad);
    return (int)total;
}

int sbw_put_packet(uint8_t *out, size_t cap, sbw_head *h, const void *payload,
                   int32_t len, int client_rule)
{
    int total = begin_packet(out, cap, h, len, client_rule);
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
    out[20] = ipc ? 0 : r->conn_index;
    /* IPC fields may fill the whole field without a terminator (IPC.md §5.2) */
    put_field(out + L->user, 64, r->user, ipc);
    put_field(out + L->password, 128, r->password, ipc);
    put_field(out + L->info, 256, r->info, ipc);
    if (L->version >= 0) put_field(out + L->version, 20, r->version, 0);
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
        put_field(e + ENTRY_INFO, 256, r->info, 0);
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
    r->conn_index = p[20];
    sbw_get_str(r->user, p + L->user, 64);
    sbw_get_str(r->password, p + L->password, 128);
    sbw_get_str(r->info, p + L->info, 256);
    if (L->version >= 0) sbw_get_str(r->version, p + L->version, 20);
    if (L->pid >= 0) r->pid = sbw_get_i64(p + L->pid);
    r->ap_unit = layout == SBW_REG_IPC ? -1 : sbw_get_i32(p + L->node + NODE_AP_UNIT);
    return SBW_OK;
}

/* ---- registration ack ---------------------------------------------------- */

int sbw_put_register_ack(uint8_t *out, size_t cap, const sbw_head *hin, int32_t result,
                         int node_size)
{
    size_t total = (size_t)SBW_HEAD_SIZE + 4 + (size_t)(node_size > 0 ? node_size : 0);
    if (cap < total) return SBW_ESPACE;
    sbw_head h = *hin;
    h.cmd = SMARTBUS_CMD_REGISTER_ACK;
    h.cmdtype = SMARTBUS_CMDTYPE_INTERNAL;
    h.packet_size = (int32_t)total;
    h.datalen = (int32_t)total - SBW_HEAD_SIZE;
    sbw_put_head(out, &h);
    sbw_put_i32(out + 20, result);
    memset(out + 24, 0, total - 24);
    return (int)total;
}

int sbw_get_register_ack(const uint8_t *p, size_t n, int *ap_unit, int32_t *result)
{
    sbw_head h;
    int rc = sbw_get_head(p, n, &h);
    if (rc != SBW_OK) return rc;
    if (h.datalen < 4 || n < 24) return SBW_EFORMAT;
    *ap_unit = (int)(int8_t)h.src_unit;   /* a signed byte (NET.md §5.2) */
    *result = sbw_get_i32(p + 20);
    return SBW_OK;
}

/* ---- heartbeat ------------------------------------------------------------- */

int sbw_put_heartbeat(uint8_t *out, size_t cap, sbw_head *h, const sbw_heartbeat *hb)
{
    int old = hb->layout == SBW_HB_OLD;
    int32_t len = old ? SBW_HB_OLD_SIZE - SBW_HEAD_SIZE : SBW_HB_NEW_SIZE - SBW_HEAD_SIZE;
    int total = begin_packet(out, cap, h, len, 0);
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

/* ---- global connect ------------------------------------------------------ */

int sbw_put_global(uint8_t *out, size_t cap, sbw_head *h, const sbw_global *g, int client_rule)
{
    int total = begin_packet(out, cap, h, SBW_GLOBAL_PAYLOAD, client_rule);
    if (total < 0) return total;
    uint8_t *q = out + SBW_HEAD_SIZE;
    sbw_head inner = g->inner;
    inner.packet_size = SBW_GLOBAL_PAYLOAD;
    inner.datalen = SBW_GLOBAL_PAYLOAD - SBW_HEAD_SIZE;
    sbw_put_head(q, &inner);
    q[20] = g->unit_id;
    q[21] = g->client_id;
    q[22] = g->client_type;
    q[23] = g->ap_unit;
    q[24] = g->status;
    put_field(q + 25, 256, g->info, 0);
    return total;
}

int sbw_get_global(const uint8_t *payload, size_t len, sbw_global *g)
{
    if (len != SBW_GLOBAL_PAYLOAD) return SBW_EFORMAT;
    memset(g, 0, sizeof *g);
    /* the inner head is not validated: receivers ignore it */
    const uint8_t *q = payload;
    g->inner.cmd = q[2];
    g->inner.cmdtype = q[3];
    g->inner.src_type = q[4];
    g->inner.src_unit = q[5];
    g->inner.src_client = q[6];
    g->inner.dst_type = q[7];
    g->inner.dst_unit = q[8];
    g->inner.dst_client = q[9];
    g->inner.packet_size = sbw_get_i32(q + 12);
    g->inner.datalen = sbw_get_i32(q + 16);
    g->unit_id = q[20];
    g->client_id = q[21];
    g->client_type = q[22];
    g->ap_unit = q[23];
    g->status = q[24];
    sbw_get_str(g->info, q + 25, 256);
    return SBW_OK;
}

/* ---- flow invoke ----------------------------------------------------------- */

int sbw_invoke_payload_size(int32_t params_len)
{
    return SBW_INVOKE_FIXED + params_len;
}

int sbw_put_invoke(uint8_t *out, size_t cap, sbw_head *h, const sbw_invoke *v, int client_rule)
{
    if (v->params_len < 0 || v->params_len > SMARTBUS_MAX_DATA_SIZE - SBW_INVOKE_FIXED)
        return SBW_EFORMAT;
    int32_t len = sbw_invoke_payload_size(v->params_len);
    int total = begin_packet(out, cap, h, len, client_rule);
    if (total < 0) return total;
    uint8_t *q = out + SBW_HEAD_SIZE;
    q[0] = SMARTBUS_SYSCMD_INVOKE_FLOW;
    put_field(q + 1, 32, v->project, 0);
    put_field(q + 33, 32, v->flow, 0);
    q[65] = v->mode;
    sbw_put_i32(q + 66, v->channel);
    sbw_put_i32(q + 70, v->invoke_id);
    sbw_put_i32(q + 74, v->params_len);
    memset(q + 78, 0, 34);
    if (v->params_len) memcpy(q + 112, v->params, (size_t)v->params_len);
    q[112 + v->params_len] = 0;
    q[113 + v->params_len] = 0;
    return total;
}

int sbw_get_invoke(const uint8_t *payload, size_t len, sbw_invoke *v)
{
    if (len < SBW_INVOKE_FIXED) return SBW_EFORMAT;
    const uint8_t *q = payload;
    memset(v, 0, sizeof *v);
    sbw_get_str(v->project, q + 1, 32);
    sbw_get_str(v->flow, q + 33, 32);
    v->mode = q[65];
    v->channel = sbw_get_i32(q + 66);
    v->invoke_id = sbw_get_i32(q + 70);
    int32_t L = sbw_get_i32(q + 74);
    size_t room = len - 112;                 /* bytes from the params start */
    if (L < 0 || (size_t)L > room) return SBW_EFORMAT;
    v->params = (const char *)(q + 112);
    v->params_len = bounded_len(q + 112, (size_t)L);
    return SBW_OK;
}

/* ---- flow ack / result ---------------------------------------------------- */

/* tag, project[32], invoke id, channel, code, [length,] text, NUL (padded
 * with NULs up to the minimum size the clients accept) */
static int put_flow_reply(uint8_t *out, size_t cap, sbw_head *h, const sbw_flow_reply *r,
                          int client_rule, uint8_t tag, int text_at, int32_t min_len)
{
    if (r->text_len < 0 || r->text_len > SMARTBUS_MAX_DATA_SIZE - 64) return SBW_EFORMAT;
    int32_t len = text_at + r->text_len + 1;
    if (len < min_len) len = min_len;
    int total = begin_packet(out, cap, h, len, client_rule);
    if (total < 0) return total;
    uint8_t *q = out + SBW_HEAD_SIZE;
    q[0] = tag;
    put_field(q + 1, 32, r->project, 0);
    sbw_put_i32(q + 33, r->invoke_id);
    sbw_put_i32(q + 37, r->channel);
    sbw_put_i32(q + 41, r->code);
    if (text_at == 49) sbw_put_i32(q + 45, r->text_len);
    if (r->text_len) memcpy(q + text_at, r->text, (size_t)r->text_len);
    memset(q + text_at + r->text_len, 0, (size_t)(len - text_at - r->text_len));
    return total;
}

int sbw_put_flow_ack(uint8_t *out, size_t cap, sbw_head *h, const sbw_flow_reply *r, int client_rule)
{
    return put_flow_reply(out, cap, h, r, client_rule, SMARTBUS_SYSCMD_FLOW_ACK, 49, SBW_FLOW_ACK_MIN);
}

int sbw_put_flow_result(uint8_t *out, size_t cap, sbw_head *h, const sbw_flow_reply *r,
                        int client_rule)
{
    return put_flow_reply(out, cap, h, r, client_rule, SMARTBUS_SYSCMD_FLOW_RESULT, 45,
                          SBW_FLOW_RET_MIN);
}

static void get_flow_common(const uint8_t *q, sbw_flow_reply *r)
{
    memset(r, 0, sizeof *r);
    sbw_get_str(r->project, q + 1, 32);
    r->invoke_id = sbw_get_i32(q + 33);
    r->channel = sbw_get_i32(q + 37);
}

int sbw_get_flow_ack(const uint8_t *payload, size_t len, sbw_flow_reply *r)
{
    if (len < SBW_FLOW_ACK_MIN) return SBW_EFORMAT;
    get_flow_common(payload, r);
    r->code = sbw_get_i32(payload + 41);
    r->text = (const char *)(payload + 49);
    r->text_len = bounded_len(payload + 49, len - 49);
    return SBW_OK;
}

int sbw_get_flow_result(const uint8_t *payload, size_t len, sbw_flow_reply *r)
{
    if (len < SBW_FLOW_RET_MIN) return SBW_EFORMAT;
    get_flow_common(payload, r);
    r->code = sbw_get_i32(payload + 41);
    r->text = (const char *)(payload + 45);
    r->text_len = bounded_len(payload + 45, len - 45);
    return SBW_OK;
}

/* ---- notify ---------------------------------------------------------------- */

int sbw_notify_payload_size(int32_t params_len)
{
    return SBW_NOTIFY_FIXED + params_len;
}

int sbw_put_notify(uint8_t *out, size_t cap, sbw_head *h, const sbw_notify *v, int client_rule)
{
    if (v->params_len < 0 || v->params_len > SMARTBUS_MAX_DATA_SIZE - SBW_NOTIFY_FIXED)
        return SBW_EFORMAT;
    int32_t len = sbw_notify_payload_size(v->params_len);
    int total = begin_packet(out, cap, h, len, client_rule);
    if (total < 0) return total;
    uint8_t *q = out + SBW_HEAD_SIZE;
    q[0] = SMARTBUS_SYSCMD_NOTIFY;
    put_field(q + 1, 32, v->project, 0);
    q[33] = v->mode;
    sbw_put_i32(q + 34, v->notify_id);
    sbw_put_i32(q + 38, v->expires);
    put_field(q + 42, 102, v->title, 0);
    sbw_put_i32(q + 144, v->params_len);
    if (v->params_len) memcpy(q + 148, v->params, (size_t)v->params_len);
    q[148 + v->params_len] = 0;
    q[149 + v->params_len] = 0;
    return total;
}

int sbw_get_notify(const uint8_t *payload, size_t len, sbw_notify *v)
{
    if (len < SBW_NOTIFY_FIXED) return SBW_EFORMAT;
    const uint8_t *q = payload;
    memset(v, 0, sizeof *v);
    sbw_get_str(v->project, q + 1, 32);
    v->mode = q[33];
    v->notify_id = sbw_get_i32(q + 34);
    v->expires = sbw_get_i32(q + 38);
    sbw_get_str(v->title, q + 42, 102);
    int32_t L = sbw_get_i32(q + 144);
    size_t room = len - 148;
    if (L < 0 || (size_t)L > room) return SBW_EFORMAT;
    v->params = (const char *)(q + 148);
    v->params_len = bounded_len(q + 148, (size_t)L);
    return SBW_OK;
}
