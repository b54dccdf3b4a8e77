/*
 * send_stress_test.c - several threads sending on one client, with the I/O
 * thread taking the send queue (its two halves) and pings written
 * directly on an idle link: a router on a thread of this process, client
 * A (unit 20) sent to by PRODUCERS threads, client B (unit 21) receiving.
 * Each thread numbers its messages (data, and a ping every PING_EVERY,
 * then IDLE_PINGS pings 3 ms apart: the link is often idle then);
 * B checks that each thread's arrive complete and in order, A that every
 * ping was answered.  Built with ASan/UBSan by tests/test_c_api.py and,
 * for a data-race check, with -fsanitize=thread (docs/design.md).
 *
 * usage: send_stress_test [messages per thread].  Prints "OK <direct
 * pings>", or "FAIL <reason>" and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>

#include "smartbus.h"
#include "smartbus_ext.h"

#include "c_test.h"

#define PRODUCERS   3
#define PING_EVERY  50
#define IDLE_PINGS  100           /* each thread ends with pings 3 ms apart */
#define PAYLOAD     16

static smartbus_client *sender;
static int per_thread = 20000;
static int connected;                      /* registrations seen (under lock) */
static uint32_t next_seq[PRODUCERS];       /* B: each thread's next number (under lock) */
static int received, answers, out_of_order;

static void *run_router(void *r)
{
    smartbus_router_run(r);
    return NULL;
}

/* B's and A's events: registrations; B counts and checks each thread's
 * numbers (data cmd 1 and pings), A counts the ping answers */
static void on_events(void *arg, const smartbus_event *evs, int count)
{
    int is_receiver = arg != NULL;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < count; i++) {
        const smartbus_event *e = &evs[i];
        if (e->type == SMARTBUS_EV_CONNECT && e->code == 0) connected++;
        if (e->type != SMARTBUS_EV_DATA || e->size != PAYLOAD) continue;
        if (!is_receiver) {
            if (e->head[2] == SMARTBUS_SYSCMD_PING_ACK) answers++;
            continue;
        }
        int t = e->data[0];
        uint32_t seq = (uint32_t)e->data[1] << 24 | (uint32_t)e->data[2] << 16 |
                       (uint32_t)e->data[3] << 8 | e->data[4];
        if (t >= PRODUCERS || seq != next_seq[t]) out_of_order++;
        else next_seq[t]++;
        received++;
    }
    pthread_mutex_unlock(&lock);
}

static int is_ping(uint32_t seq)
{
    return seq % PING_EVERY == 0 || seq + IDLE_PINGS >= (uint32_t)per_thread;
}

static void *produce(void *arg)
{
    int t = (int)(intptr_t)arg;
    unsigned char p[PAYLOAD] = { 0 };
    p[0] = (unsigned char)t;
    for (uint32_t seq = 0; seq < (uint32_t)per_thread; seq++) {
        p[1] = (unsigned char)(seq >> 24);
        p[2] = (unsigned char)(seq >> 16);
        p[3] = (unsigned char)(seq >> 8);
        p[4] = (unsigned char)seq;
        for (;;) {
            int rc = is_ping(seq)
                     ? smartbus_client_ping(sender, 21, 1, 11, p, PAYLOAD)
                     : smartbus_client_send(sender, 1, 3, 21, 1, 11, p, PAYLOAD);
            if (rc == 0) break;
            if (rc != SMARTBUS_ERR_BUFF_FULL) FAIL("send: %d", rc);
            struct timespec ts = { 0, 200 * 1000 };       /* full: let it drain */
            nanosleep(&ts, NULL);
        }
        if (seq % 997 == 0 || seq + IDLE_PINGS >= (uint32_t)per_thread) {
            struct timespec ts = { 0, 3000 * 1000 };      /* idle now and then */
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1) per_thread = atoi(argv[1]);
    smartbus_router_config rc;
    memset(&rc, 0, sizeof rc);
    smartbus_router *r = NULL;
    char err[256];
    CHECK(smartbus_router_new(&rc, &r, err, sizeof err) == 0);
    pthread_t rt;
    CHECK(pthread_create(&rt, NULL, run_router, r) == 0);

    smartbus_sink *sink_b = smartbus_sink_new(on_events, &received, 0);
    smartbus_sink *sink_a = smartbus_sink_new(on_events, NULL, 0);
    CHECK(sink_a && sink_b);
    smartbus_client *b = start_net_client(21, 1, smartbus_router_port(r), sink_b);
    sender = start_net_client(20, 1, smartbus_router_port(r), sink_a);
    if (!wait_for(&connected, 2)) FAIL("the clients did not register");

    pthread_t th[PRODUCERS];
    for (int t = 0; t < PRODUCERS; t++)
        CHECK(pthread_create(&th[t], NULL, produce, (void *)(intptr_t)t) == 0);
    for (int t = 0; t < PRODUCERS; t++) pthread_join(th[t], NULL);
    int total = PRODUCERS * per_thread;
    int pings = 0;
    for (uint32_t seq = 0; seq < (uint32_t)per_thread; seq++) pings += PRODUCERS * is_ping(seq);
    if (!wait_for(&received, total)) FAIL("received %d of %d", received, total);
    if (!wait_for(&answers, pings)) FAIL("%d of %d pings answered", answers, pings);
    pthread_mutex_lock(&lock);
    int bad = out_of_order;
    pthread_mutex_unlock(&lock);
    if (bad) FAIL("%d messages out of order", bad);
    smartbus_client_stats st;
    smartbus_client_get_stats(sender, &st);
    CHECK(st.sent_msgs == (uint64_t)total);

    smartbus_client_free(sender);
    smartbus_client_free(b);
    smartbus_sink_free(sink_a, -1);
    smartbus_sink_free(sink_b, -1);
    smartbus_router_stop(r);
    pthread_join(rt, NULL);
    smartbus_router_free(r);
    printf("OK %llu\n", (unsigned long long)st.direct_msgs);
    return 0;
}
