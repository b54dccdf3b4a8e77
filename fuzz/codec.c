/*
 * fuzz/codec.c - libFuzzer target: the wire codec (wire.c).  Every sbw_get_*
 * decoder reads the input, as a whole packet and as a bare payload.  Where
 * one succeeds, the packet is encoded from what it decoded (e1), decoded
 * and encoded again (e2): encoding what was decoded must be a fixed point
 * (e1 == e2, byte for byte) and keep the numbers it decoded.  Reads outside
 * the input, overflows and undefined behaviour are the sanitizers' to find.
 * Built and run by .ci/fuzz (see fuzz/README.md).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smartbus_wire.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

/* room for any packet encoded from an input of n bytes: its payload, the
 * largest fixed layout (a registration ack with a node table) and padding */
#define ROOM(n) ((n) + 8192)

typedef struct buffers {
    uint8_t *e1, *e2;
    size_t cap;
} buffers;

/* e1 and e2 (lengths n1, n2) are the same encoding */
static void same(const buffers *b, int n1, int n2)
{
    CHECK(n1 > 0 && n1 == n2 && memcmp(b->e1, b->e2, (size_t)n1) == 0);
}

/* the head a re-encoding starts from: what was decoded (sizes are the encoder's) */
static sbw_head head_of(const uint8_t *p)
{
    sbw_head h;
    sbw_read_head(p, &h);
    return h;
}

static void head_and_forwarding(const buffers *b, const uint8_t *p, const sbw_head *h)
{
    /* plain packet: head bytes and payload kept, padding by the rule asked */
    for (int pad = SBW_PAD_NONE; pad <= SBW_PAD_CLIENT; pad++) {
        sbw_head h1 = *h;
        int n1 = sbw_put_packet(b->e1, b->cap, &h1, p + SBW_HEAD_SIZE, h->datalen,
                                (sbw_padding)pad);
        CHECK(n1 == SBW_HEAD_SIZE + h->datalen + sbw_pad(h->datalen, (sbw_padding)pad));
        CHECK(memcmp(b->e1, p, SBW_HEAD_PACKET_SIZE_AT) == 0);
        CHECK(memcmp(b->e1 + SBW_HEAD_SIZE, p + SBW_HEAD_SIZE, (size_t)h->datalen) == 0);
        sbw_head h2;
        CHECK(sbw_get_head(b->e1, (size_t)n1, &h2) == SBW_OK && h2.datalen == h->datalen);
    }
    /* as the router forwards it (stamped with the source it names):
     * packet_size 20 + datalen, all else kept */
    size_t n = sbw_put_forwarded(b->e2, p, h->datalen, h->src_type, h->src_unit, h->src_client);
    sbw_head f;
    CHECK(sbw_get_head(b->e2, n, &f) == SBW_OK);
    CHECK(f.packet_size == SBW_HEAD_SIZE + h->datalen && f.datalen == h->datalen);
    CHECK(memcmp(b->e2, p, SBW_HEAD_PACKET_SIZE_AT) == 0);
}

static void registration(const buffers *b, const uint8_t *p, size_t n)
{
    sbw_register r1, r2;
    if (sbw_get_register(p, n, &r1) != SBW_OK) return;
    int n1 = sbw_put_register(b->e1, b->cap, &r1);
    CHECK(sbw_get_register(b->e1, (size_t)n1, &r2) == SBW_OK);
    CHECK(r2.layout == r1.layout && r2.client_id == r1.client_id &&
          r2.client_type == r1.client_type && r2.pid == r1.pid);
    same(b, n1, sbw_put_register(b->e2, b->cap, &r2));
}

static void registration_ack(const buffers *b, const uint8_t *p, size_t n)
{
    int ap1, ap2;
    int32_t res1, res2;
    if (sbw_get_register_ack(p, n, &ap1, &res1) != SBW_OK) return;
    sbw_head h = head_of(p);
    int n1 = sbw_put_register_ack(b->e1, b->cap, &h, res1, SBW_NODE_NET_SIZE);
    CHECK(sbw_get_register_ack(b->e1, (size_t)n1, &ap2, &res2) == SBW_OK);
    CHECK(ap2 == ap1 && res2 == res1);
    same(b, n1, sbw_put_register_ack(b->e2, b->cap, &h, res2, SBW_NODE_NET_SIZE));
}

static void heartbeat(const buffers *b, const uint8_t *p, size_t n)
{
    sbw_heartbeat hb1, hb2;
    if (sbw_get_heartbeat(p, n, &hb1) != SBW_OK) return;
    sbw_head h = head_of(p);
    int n1 = sbw_put_heartbeat(b->e1, b->cap, &h, &hb1);
    CHECK(sbw_get_heartbeat(b->e1, (size_t)n1, &hb2) == SBW_OK);
    CHECK(hb2.layout == hb1.layout && hb2.counter == hb1.counter &&
          hb2.send_time == hb1.send_time && hb2.return_time == hb1.return_time);
    same(b, n1, sbw_put_heartbeat(b->e2, b->cap, &h, &hb2));
    /* the router's answer echoes the payload */
    sbw_head in = head_of(p);
    int na = sbw_put_heartbeat_ack(b->e1, b->cap, p, in.datalen);
    CHECK(na == SBW_HEAD_SIZE + in.datalen);
    CHECK(memcmp(b->e1 + SBW_HEAD_SIZE, p + SBW_HEAD_SIZE, (size_t)in.datalen) == 0);
}

/* ---- payloads: encoded from what was decoded, decoded again ------------- */

typedef int (*encode_fn)(uint8_t *out, size_t cap, sbw_head *h, const void *v);
typedef int (*decode_fn)(const uint8_t *payload, size_t len, void *v);
typedef int (*same_fields_fn)(const void *a, const void *b);

/* a payload kind: its decoder, encoder and the fields that must survive */
typedef struct payload_kind {
    decode_fn decode;
    encode_fn encode;
    same_fields_fn same_fields;
} payload_kind;

static int same_text(const char *a, int32_t alen, const char *b, int32_t blen)
{
    return alen == blen && memcmp(a, b, (size_t)alen) == 0;
}

static int enc_global(uint8_t *o, size_t cap, sbw_head *h, const void *v)
{ return sbw_put_global(o, cap, h, v, SBW_PAD_CLIENT); }
static int dec_global(const uint8_t *q, size_t len, void *v) { return sbw_get_global(q, len, v); }
static int same_global(const void *a, const void *b)
{
    const sbw_global *x = a, *y = b;
    return x->unit_id == y->unit_id && x->client_id == y->client_id &&
           x->client_type == y->client_type && x->ap_unit == y->ap_unit &&
           x->status == y->status && x->inner.cmd == y->inner.cmd;
}

static int enc_invoke(uint8_t *o, size_t cap, sbw_head *h, const void *v)
{ return sbw_put_invoke(o, cap, h, v, SBW_PAD_CLIENT); }
static int dec_invoke(const uint8_t *q, size_t len, void *v) { return sbw_get_invoke(q, len, v); }
static int same_invoke(const void *a, const void *b)
{
    const sbw_invoke *x = a, *y = b;
    return x->invoke_id == y->invoke_id && x->mode == y->mode && x->channel == y->channel &&
           same_text(x->params, x->params_len, y->params, y->params_len);
}

static int enc_notify(uint8_t *o, size_t cap, sbw_head *h, const void *v)
{ return sbw_put_notify(o, cap, h, v, SBW_PAD_CLIENT); }
static int dec_notify(const uint8_t *q, size_t len, void *v) { return sbw_get_notify(q, len, v); }
static int same_notify(const void *a, const void *b)
{
    const sbw_notify *x = a, *y = b;
    return x->notify_id == y->notify_id && x->mode == y->mode && x->expires == y->expires &&
           same_text(x->params, x->params_len, y->params, y->params_len);
}

static int enc_ack(uint8_t *o, size_t cap, sbw_head *h, const void *v)
{ return sbw_put_flow_ack(o, cap, h, v, SBW_PAD_CLIENT); }
static int dec_ack(const uint8_t *q, size_t len, void *v) { return sbw_get_flow_ack(q, len, v); }
static int enc_result(uint8_t *o, size_t cap, sbw_head *h, const void *v)
{ return sbw_put_flow_result(o, cap, h, v, SBW_PAD_CLIENT); }
static int dec_result(const uint8_t *q, size_t len, void *v)
{ return sbw_get_flow_result(q, len, v); }
static int same_reply(const void *a, const void *b)
{
    const sbw_flow_reply *x = a, *y = b;
    return x->invoke_id == y->invoke_id && x->code == y->code && x->channel == y->channel &&
           same_text(x->text, x->text_len, y->text, y->text_len);
}

static const payload_kind PAYLOADS[] = {
    { dec_global, enc_global, same_global },
    { dec_invoke, enc_invoke, same_invoke },
    { dec_notify, enc_notify, same_notify },
    { dec_ack, enc_ack, same_reply },
    { dec_result, enc_result, same_reply },
};

/* the decoded structs of any kind, with their text pointers */
typedef union decoded {
    sbw_global global;
    sbw_invoke invoke;
    sbw_notify notify;
    sbw_flow_reply reply;
} decoded;

/* Every payload decoder on q[0, len); where one succeeds: e1 = encode(v1),
 * v2 = decode(e1) keeps v1's fields, encode(v2) == e1.  The head of the
 * re-encoding is p's. */
static void payloads(const buffers *b, const uint8_t *p, const uint8_t *q, size_t len)
{
    for (size_t i = 0; i < sizeof PAYLOADS / sizeof PAYLOADS[0]; i++) {
        const payload_kind *k = &PAYLOADS[i];
        decoded v1, v2;
        if (k->decode(q, len, &v1) != SBW_OK) continue;
        sbw_head h = head_of(p);
        int n1 = k->encode(b->e1, b->cap, &h, &v1);
        CHECK(n1 > 0 && k->decode(b->e1 + SBW_HEAD_SIZE, (size_t)h.datalen, &v2) == SBW_OK);
        CHECK(k->same_fields(&v1, &v2));
        same(b, n1, k->encode(b->e2, b->cap, &h, &v2));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly `size` bytes: ASan sees any read past the input */
    uint8_t *p = malloc(size ? size : 1);
    buffers b = { malloc(ROOM(size)), malloc(ROOM(size)), ROOM(size) };
    CHECK(p && b.e1 && b.e2);
    memcpy(p, data, size);

    registration(&b, p, size);
    registration_ack(&b, p, size);
    heartbeat(&b, p, size);
    sbw_head h;
    if (sbw_get_head(p, size, &h) == SBW_OK && (size_t)h.packet_size <= size) {
        head_and_forwarding(&b, p, &h);
        payloads(&b, p, p + SBW_HEAD_SIZE, (size_t)h.datalen);
    }
    /* the payload decoders on the whole input too, read as a payload (they
     * must hold whatever they are given); a head is made up for re-encoding */
    if (size >= SBW_HEAD_SIZE) payloads(&b, p, p, size);

    free(p);
    free(b.e1);
    free(b.e2);
    return 0;
}
