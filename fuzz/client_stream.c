/*
 * fuzz/client_stream.c - libFuzzer target: what a client does with the
 * bytes its server sends.  The input is handed to a client's link the way
 * the I/O thread hands it what recv() returned (sb_link_received: split
 * into packets, handle each: registration acks, pings and their answers,
 * global-connect events, flow acks and results against pending flows, data
 * for the sink), in chunks, so that packets arrive whole, split and run
 * together.  The first input byte picks the client (NET or IPC), its link's
 * state (registered or waiting for its ack) and the chunk size (at most
 * MAX_CHUNKS chunks); then comes the stream.  Events go to a sink whose callback thread drops them.
 * Built and run by .ci/fuzz (see fuzz/README.md).
 */
#define _GNU_SOURCE 1
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sanitizer/asan_interface.h>

#include "client_internal.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

#define PENDING_FLOWS 4          /* invoke ids 1..4 wait for an ack and a result */
#define MAX_CHUNKS 256           /* an input arrives in at most so many chunks: bounded time */
#define IPSC_UNIT 0
#define IPSC_PROCESS 1

static smartbus_sink *sink;
static smartbus_client *clients[2];   /* NET, IPC */
static int null_fd = -1;              /* the links' descriptors are copies of it */

/* Drops the events; sleeping after each batch, it finds many queued the
 * next time, so the feeding side seldom has to wake it (a wake-up costs
 * more than an input). */
static void drop_events(void *arg, const smartbus_event *events, int count)
{
    (void)arg;
    (void)events;
    if (count > 0) usleep(2000);
}

static smartbus_client *make_client(int kind)
{
    smartbus_client_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.kind = kind;
    cfg.unit_id = 20;
    cfg.client_id = 5;
    cfg.client_type = 11;
    cfg.master_ip = "127.0.0.1";
    cfg.master_port = 1;
    cfg.ipc_path = "/nonexistent";
    smartbus_client *c = NULL;
    CHECK(smartbus_client_new(&cfg, sink, &c) == 0);
    return c;
}

static void setup(void)
{
    sink = smartbus_sink_new(drop_events, NULL, 0);
    CHECK(sink != NULL);
    clients[0] = make_client(SMARTBUS_KIND_NET);
    clients[1] = make_client(SMARTBUS_KIND_IPC);
    null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    CHECK(null_fd >= 0);
}

/* the state the I/O thread leaves a client in after connecting (and
 * registering) its link, with flows pending */
static void open_link(smartbus_client *c, sb_link *k, int registered, int64_t now)
{
    if (k->rbuf.p) ASAN_POISON_MEMORY_REGION(k->rbuf.p, k->rbuf.cap);   /* nothing arrived */
    k->fd = dup(null_fd);            /* closed by the link when it breaks */
    CHECK(k->fd >= 0);
    k->state = registered ? LINK_REGISTERED : LINK_OPEN;
    k->last_rx_at = k->registered_at = now;
    c->registered = registered;
    c->active = registered ? 0 : -1;
    pthread_mutex_lock(&c->lock);
    for (int id = 1; id <= PENDING_FLOWS; id++)
        CHECK(sb_flow_start(c, id, IPSC_UNIT, id == PENDING_FLOWS ? 0xFF : IPSC_PROCESS, "proj",
                            0, 1000) != NULL);
    pthread_mutex_unlock(&c->lock);
}

/* back to a client with no link and nothing pending */
static void reset_client(smartbus_client *c, sb_sink_writer *w)
{
    sb_buf *b = &c->links[0].rbuf;
    if (b->p) ASAN_UNPOISON_MEMORY_REGION(b->p, b->cap);
    sb_link_close_all(c);
    c->next_flow_check = 0;
    (void)sb_flows_tick(c, INT64_MAX / 2, w);     /* every pending flow times out */
    sb_sink_flush(w);
    c->resend.len = 0;
    c->resend_msgs = 0;
    c->ap_unit = -1;
    if (c->kind == SMARTBUS_KIND_IPC) c->unit_id = -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!sink) setup();
    if (size < 1) return 0;
    smartbus_client *c = clients[data[0] & 1];
    int registered = !(data[0] & 2);
    size_t chunk = (size_t)(data[0] >> 2);         /* 0: all at once, else chunk^2 bytes */
    data++;
    size--;
    chunk = chunk ? chunk * chunk : size;
    if (chunk < size / MAX_CHUNKS + 1) chunk = size / MAX_CHUNKS + 1;

    sb_sink_writer w;
    memset(&w, 0, sizeof w);
    sb_link *k = &c->links[0];
    int64_t now = sb_now_ms();
    open_link(c, k, registered, now);
    for (size_t fed = 0; fed < size && k->fd >= 0;) {
        if (sb_sink_full(&w, c->sink)) {              /* the I/O thread waits so */
            usleep(1000);
            continue;
        }
        /* The read buffer's spare room stays poisoned: a read past what
         * arrived is the sanitizer's to see, as if the buffer ended there.
         * Only what changes is (un)poisoned: a whole buffer per chunk would
         * cost more than the parse. */
        size_t n = size - fed < chunk ? size - fed : chunk;
        sb_buf *b = &k->rbuf;
        uint8_t *was = b->p;
        size_t cap_was = b->cap;
        CHECK(sb_buf_reserve(b, n) == 0);
        if (b->p != was || b->cap != cap_was)
            ASAN_POISON_MEMORY_REGION(b->p + b->len, b->cap - b->len);   /* a new buffer */
        ASAN_UNPOISON_MEMORY_REGION(b->p + b->len, n);
        memcpy(b->p + b->len, data + fed, n);
        size_t end = b->len + n;
        fed += n;
        (void)sb_link_received(c, k, n, now, &w);
        if (k->fd >= 0 && b->len < end)                 /* parsed, or moved to the front */
            ASAN_POISON_MEMORY_REGION(b->p + b->len, end - b->len);
    }
    reset_client(c, &w);
    return 0;
}
