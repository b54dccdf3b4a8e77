/*
 * smartbus_wire.h - encode/decode of every SmartBus packet (NET.md §3-§10,
 * IPC.md §3-§6).  Pure functions on byte buffers, shared by the client, the
 * router and the Python binding: the only code of the SDK that reads or
 * writes head and payload bytes.
 *
 * Encoders write into a caller buffer of `cap` bytes and return the number
 * of bytes written, or SBW_ESPACE.  They write zeros into every byte the
 * protocol leaves undefined.  Decoders never read outside [p, p + n) and
 * return SBW_OK or a negative SBW_E* code for a malformed packet.
 */
#ifndef SMARTBUS_WIRE_H
#define SMARTBUS_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smartbus.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SBW_OK        0
#define SBW_ESHORT   -1   /* fewer bytes than the packet (or field) needs */
#define SBW_EFLAG    -2   /* head flag is not 0x5B15 */
#define SBW_ESIZE    -3   /* packet_size / datalen inconsistent */
#define SBW_ESPACE   -4   /* output buffer too small */
#define SBW_EFORMAT  -5   /* payload does not have this message's layout */

#define SBW_HEAD_SIZE 20
/* largest packet_size accepted: the largest payload plus generous padding */
#define SBW_MAX_PACKET (SBW_HEAD_SIZE + SMARTBUS_MAX_DATA_SIZE + 4096)

/* registration layouts and sizes (whole packet) */
#define SBW_REG_NET_A       0     /* builds A/B: 6025 bytes, what our client sends */
#define SBW_REG_NET_C       1     /* build C (1.0.1.0465): 6053 bytes */
#define SBW_REG_IPC         2     /* IPC: 5961 bytes */
#define SBW_REG_NET_A_SIZE  6025
#define SBW_REG_NET_C_SIZE  6053
#define SBW_REG_IPC_SIZE    5961
#define SBW_NODE_NET_SIZE   5556  /* node table, 64-bit layout */
#define SBW_NODE_IPC_SIZE   5492  /* node block, 32-bit layout */
#define SBW_REG_ACK_FIXED   4     /* ack payload: the int32 result, then a node structure */

/* heartbeat layouts and sizes (whole packet) */
#define SBW_HB_OLD          0     /* builds A/B: 52 bytes, 64-bit counters */
#define SBW_HB_NEW          1     /* build C: 44 bytes, 32-bit counter */
#define SBW_HB_OLD_SIZE     52
#define SBW_HB_NEW_SIZE     44

#define SBW_GLOBAL_PAYLOAD  281   /* global connect payload (inner head included) */
#define SBW_INVOKE_FIXED    114   /* flow invoke payload = 114 + L */
#define SBW_NOTIFY_FIXED    150   /* notify payload = 150 + L */
#define SBW_FLOW_ACK_MIN    51    /* clients ignore acks with datalen <= 50 */
#define SBW_FLOW_RET_MIN    47    /* clients ignore results with datalen <= 46 */
#define SBW_FLOW_REPLY_MAX_FIXED 64 /* flow ack / result payload <= 64 + text length */

/* decoded packet head (host byte order) */
typedef struct sbw_head {
    uint8_t cmd, cmdtype;
    uint8_t src_type, src_unit, src_client;
    uint8_t dst_type, dst_unit, dst_client;
    uint8_t reserved[2];
    int32_t packet_size;
    int32_t datalen;
} sbw_head;

/* little-endian helpers */
static inline void sbw_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void sbw_put_i32(uint8_t *p, int32_t v) {
    uint32_t u = (uint32_t)v;
    p[0] = (uint8_t)u; p[1] = (uint8_t)(u >> 8); p[2] = (uint8_t)(u >> 16); p[3] = (uint8_t)(u >> 24);
}
static inline void sbw_put_i64(uint8_t *p, int64_t v) {
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(u >> (8 * i));
}
static inline uint16_t sbw_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline int32_t sbw_get_i32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
    return (int32_t)u;
}
static inline int64_t sbw_get_i64(const uint8_t *p) {
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--) u = (u << 8) | p[i];
    return (int64_t)u;
}

/* The padding a sender writes after a payload (NET.md §3.2): clients pad
 * by datalen % 4 (the vendor rule), servers send none. */
typedef enum sbw_padding {
    SBW_PAD_NONE = 0,                      /* servers (our router) */
    SBW_PAD_CLIENT = 1                     /* clients: datalen % 4 zero bytes */
} sbw_padding;

/* the most padding any sender writes (datalen % 4) */
#define SBW_MAX_PAD 3

/* Bytes of padding after a payload of `datalen` bytes. */
static inline int32_t sbw_pad(int32_t datalen, sbw_padding padding) {
    return padding == SBW_PAD_CLIENT ? datalen % 4 : 0;
}

/* Room an encoder needs for a packet with a payload of `datalen` bytes,
 * whatever the padding. */
static inline size_t sbw_packet_room(int32_t datalen) {
    return (size_t)SBW_HEAD_SIZE + (size_t)datalen + SBW_MAX_PAD;
}

/* ---- head --------------------------------------------------------------- */
/* offsets of the two size fields inside the head */
#define SBW_HEAD_PACKET_SIZE_AT 12
#define SBW_HEAD_DATALEN_AT     16

void sbw_put_head(uint8_t *p, const sbw_head *h);          /* writes 20 bytes */
/* Reads the 20 head bytes at p as they are, flag and sizes unchecked (for
 * a head that has been validated already, or that is only shown).  Inline:
 * the parse and event-dispatch paths read one per message. */
static inline void sbw_read_head(const uint8_t *p, sbw_head *h) {
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
    h->packet_size = sbw_get_i32(p + SBW_HEAD_PACKET_SIZE_AT);
    h->datalen = sbw_get_i32(p + SBW_HEAD_DATALEN_AT);
}
/* Decodes and validates a head: flag, datalen >= 0, packet_size >= 20 + datalen. */
int  sbw_get_head(const uint8_t *p, size_t n, sbw_head *h);
/* Head + payload + zero padding; h->packet_size and h->datalen are set here. */
int  sbw_put_packet(uint8_t *out, size_t cap, sbw_head *h, const void *payload,
                    int32_t len, sbw_padding padding);

/* A received packet made the packet the router forwards, in place: every
 * head byte kept except the source triple, which becomes the sender's
 * registered identity (src_type, src_unit, src_client), and packet_size,
 * which becomes 20 + datalen (the sender's padding, after the payload, is
 * left out of what is forwarded).  `pkt` is a validated packet of datalen
 * payload bytes; returns the bytes to forward from pkt.  Inline: the
 * router's per-message path. */
static inline size_t sbw_stamp_forwarded(uint8_t *pkt, int32_t datalen, uint8_t src_type,
                                         uint8_t src_unit, uint8_t src_client) {
    size_t n = (size_t)SBW_HEAD_SIZE + (size_t)datalen;
    pkt[4] = src_type;
    pkt[5] = src_unit;
    pkt[6] = src_client;
    sbw_put_i32(pkt + SBW_HEAD_PACKET_SIZE_AT, (int32_t)n);
    return n;
}

/* The same, copied: the forwarded packet is written at `out` (room for
 * 20 + datalen bytes), `pkt` is left as it is; returns the bytes written. */
static inline size_t sbw_put_forwarded(uint8_t *out, const uint8_t *pkt, int32_t datalen,
                                       uint8_t src_type, uint8_t src_unit, uint8_t src_client) {
    memcpy(out, pkt, (size_t)SBW_HEAD_SIZE + (size_t)datalen);
    return sbw_stamp_forwarded(out, datalen, src_type, src_unit, src_client);
}

/* ---- registration (cmdtype 0, cmd 1) ------------------------------------ */
typedef struct sbw_register {
    int layout;                            /* SBW_REG_* */
    uint8_t client_type, unit_id, client_id;
    uint8_t conn_index;                    /* 0 master, 1 slave (IPC: 0) */
    char user[65], password[129], info[257];
    char version[21];                      /* NET_C only */
    int64_t pid;                           /* NET_C only */
    int32_t ap_unit;                       /* node table: access point (-1 before an ack) */
} sbw_register;
int sbw_put_register(uint8_t *out, size_t cap, const sbw_register *r);
/* p/n: the whole packet; the layout is told apart by packet_size */
int sbw_get_register(const uint8_t *p, size_t n, sbw_register *r);

/* ---- registration ack (cmdtype 0, cmd 2) -------------------------------- */
/* node_size: 0 for the 24-byte form, SBW_NODE_NET_SIZE or SBW_NODE_IPC_SIZE
 * for the full structure (node table zero). */
int sbw_put_register_ack(uint8_t *out, size_t cap, const sbw_head *h, int32_t result,
                         int node_size);
int sbw_get_register_ack(const uint8_t *p, size_t n, int *ap_unit, int32_t *result);

/* ---- heartbeat (cmdtype 0, cmd 5) and ack (cmd 6) ----------------------- */
typedef struct sbw_heartbeat {
    int layout;                            /* SBW_HB_OLD or SBW_HB_NEW */
    int64_t counter, resend, send_time, return_time;
} sbw_heartbeat;
int sbw_put_heartbeat(uint8_t *out, size_t cap, sbw_head *h, const sbw_heartbeat *hb);
int sbw_get_heartbeat(const uint8_t *p, size_t n, sbw_heartbeat *hb);
/* The server's answer to a received heartbeat (NET.md §5.4): cmd 6, src and
 * dst swapped, reserved bytes zero, the payload of `datalen` bytes echoed,
 * no padding.  `hb` is the validated heartbeat packet. */
int sbw_put_heartbeat_ack(uint8_t *out, size_t cap, const uint8_t *hb, int32_t datalen);

/* ---- global connect (cmdtype 1, cmd 9 / 10) ----------------------------- */
typedef struct sbw_global {
    sbw_head inner;                        /* inner head (ignored by receivers) */
    uint8_t unit_id, client_id, client_type, ap_unit, status;
    char info[257];
} sbw_global;
/* Writes the outer packet; the inner head gets flag, packet_size 281,
 * datalen 261 and the other fields from g->inner. */
int sbw_put_global(uint8_t *out, size_t cap, sbw_head *h, const sbw_global *g,
                   sbw_padding padding);
/* payload/len: the outer payload (must be exactly 281 bytes) */
int sbw_get_global(const uint8_t *payload, size_t len, sbw_global *g);

/* ---- flow invoke (cmdtype 1, cmd 11) ------------------------------------ */
typedef struct sbw_invoke {
    char project[33], flow[33];
    uint8_t mode;
    int32_t channel;                       /* -1 from clients */
    int32_t invoke_id;
    const char *params;                    /* decoded: points into the payload */
    int32_t params_len;
} sbw_invoke;
static inline int sbw_invoke_payload_size(int32_t params_len) {
    return SBW_INVOKE_FIXED + params_len;
}
int sbw_put_invoke(uint8_t *out, size_t cap, sbw_head *h, const sbw_invoke *v,
                   sbw_padding padding);
int sbw_get_invoke(const uint8_t *payload, size_t len, sbw_invoke *v);

/* ---- flow ack (cmd 13) and flow result (cmd 12) ------------------------- */
typedef struct sbw_flow_reply {
    char project[33];
    int32_t invoke_id, channel;
    int32_t code;                          /* ack code (13) or result code (12) */
    const char *text;                      /* ack message / result JSON */
    int32_t text_len;
} sbw_flow_reply;
int sbw_put_flow_ack(uint8_t *out, size_t cap, sbw_head *h, const sbw_flow_reply *r,
                     sbw_padding padding);
int sbw_put_flow_result(uint8_t *out, size_t cap, sbw_head *h, const sbw_flow_reply *r,
                        sbw_padding padding);
/* What a client reads (NET.md §8.2/8.3): invoke id, code (ack only), text. */
int sbw_get_flow_ack(const uint8_t *payload, size_t len, sbw_flow_reply *r);
int sbw_get_flow_result(const uint8_t *payload, size_t len, sbw_flow_reply *r);

/* ---- notify (cmdtype 1, cmd 15) ----------------------------------------- */
typedef struct sbw_notify {
    char project[33];
    uint8_t mode;
    int32_t notify_id;
    int32_t expires;                       /* ms */
    char title[102];
    const char *params;
    int32_t params_len;
} sbw_notify;
static inline int sbw_notify_payload_size(int32_t params_len) {
    return SBW_NOTIFY_FIXED + params_len;
}
int sbw_put_notify(uint8_t *out, size_t cap, sbw_head *h, const sbw_notify *v,
                   sbw_padding padding);
int sbw_get_notify(const uint8_t *payload, size_t len, sbw_notify *v);

/* read a fixed field of `size` bytes into out[size+1], always terminated */
void sbw_get_str(char *out, const uint8_t *field, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* SMARTBUS_WIRE_H */
