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
        int n1 = sbw_put_packet(b->e1, b->cap, &h1, p + SBW_HEAD_SIZE, h->datalen, (sbw_padding)pad);
        CHECK(n1 == SBW_HEAD_SIZE + h->datalen + sbw_pad(h->datalen, (sbw_padding)pad));
        CHECK(memcmp(b->e1, p, SBW_HEAD_PACKET_SIZE_AT) == 0);
        CHECK(memcmp(b->e1 + SBW_HEAD_SIZE, p + SBW_HEAD_SIZE, (size_t)h->datalen) == 0);
        sbw_head h2;
        CHECK(sbw_get_head(b->e1, (size_t)n1, &h2) == SBW_OK && h2.datalen == h->datalen);
    }
    /* as the router forwards it: packet_size 20 + datalen, all else kept */
    size_t n = sbw_put_forwarded(b->e2, p, h->datalen);
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

static void global(const buffers *b, const uint8_t *p, const uint8_t *q, size_t len)
{
    sbw_global g1, g2;
    if (sbw_get_global(q, len, &g1) != SBW_OK) return;
    sbw_head h = head_of(p);
    int n1 = sbw_put_global(b->e1, b->cap, &h, &g1, SBW_PAD_CLIENT);
    CHECK(sbw_get_global(b->e1 + SBW_HEAD_SIZE, SBW_GLOBAL_PAYLOAD, &g2) == SBW_OK);
    CHECK(g2.unit_id == g1.unit_id && g2.client_id == g1.client_id &&
          g2.client_type == g1.client_type && g2.ap_unit == g1.ap_unit &&
          g2.status == g1.status && g2.inner.cmd == g1.inner.cmd);
    same(b, n1, sbw_put_global(b->e2, b->cap, &h, &g2, SBW_PAD_CLIENT));
}

static void invoke(const buffers *b, const uint8_t *p, const uint8_t *q, size_t len)
{
    sbw_invoke v1, v2;
    if (sbw_get_invoke(q, len, &v1) != SBW_OK) return;
    CHECK(v1.params >= (const char *)q && v1.params_len >= 0 &&
          v1.params + v1.params_len <= (const char *)q + len);
    sbw_head h = head_of(p);
    int n1 = sbw_put_invoke(b->e1, b->cap, &h, &v1, SBW_PAD_CLIENT);
    CHECK(sbw_get_invoke(b->e1 + SBW_HEAD_SIZE, (size_t)h.datalen, &v2) == SBW_OK);
    CHECK(v2.invoke_id == v1.invoke_id && v2.mode == v1.mode && v2.channel == v1.channel &&
          v2.params_len == v1.params_len && memcmp(v2.params, v1.params, (size_t)v1.params_len) == 0);
    same(b, n1, sbw_put_invoke(b->e2, b->cap, &h, &v2, SBW_PAD_CLIENT));
}

static void notify(const buffers *b, const uint8_t *p, const uint8_t *q, size_t len)
{
    sbw_notify v1, v2;
    if (sbw_get_notify(q, len, &v1) != SBW_OK) return;
    sbw_head h = head_of(p);
    int n1 = sbw_put_notify(b->e1, b->cap, &h, &v1, SBW_PAD_CLIENT);
    CHECK(sbw_get_notify(b->e1 + SBW_HEAD_SIZE, (size_t)h.datalen, &v2) == SBW_OK);
    CHECK(v2.notify_id == v1.notify_id && v2.mode == v1.mode && v2.expires == v1.expires &&
          v2.params_len == v1.params_len && memcmp(v2.params, v1.params, (size_t)v1.params_len) == 0);
    same(b, n1, sbw_put_notify(b->e2, b->cap, &h, &v2, SBW_PAD_CLIENT));
}

static void flow_reply(const buffers *b, const uint8_t *p, const uint8_t *q, size_t len, int ack)
{
    int (*get)(const uint8_t *, size_t, sbw_flow_reply *) = ack ? sbw_get_flow_ack
                                                                : sbw_get_flow_result;
    int (*put)(uint8_t *, size_t, sbw_head *, const sbw_flow_reply *, sbw_padding) =
        ack ? sbw_put_flow_ack : sbw_put_flow_result;
    sbw_flow_reply r1, r2;
    if (get(q, len, &r1) != SBW_OK) return;
    CHECK(r1.text_len >= 0 && r1.text + r1.text_len <= (const char *)q + len);
    sbw_head h = head_of(p);
    int n1 = put(b->e1, b->cap, &h, &r1, SBW_PAD_CLIENT);
    CHECK(get(b->e1 + SBW_HEAD_SIZE, (size_t)h.datalen, &r2) == SBW_OK);
    CHECK(r2.invoke_id == r1.invoke_id && r2.code == r1.code && r2.channel == r1.channel &&
          r2.text_len == r1.text_len && memcmp(r2.text, r1.text, (size_t)r1.text_len) == 0);
    same(b, n1, put(b->e2, b->cap, &h, &r2, SBW_PAD_CLIENT));
}

/* every payload decoder on q[0, len) */
static void payloads(const buffers *b, const uint8_t *p, const uint8_t *q, size_t len)
{
    global(b, p, q, len);
    invoke(b, p, q, len);
    notify(b, p, q, len);
    flow_reply(b, p, q, len, 1);
    flow_reply(b, p, q, len, 0);
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
