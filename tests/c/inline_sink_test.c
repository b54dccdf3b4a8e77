/*
 * inline_sink_test.c - inline sinks (smartbus_sink_new_inline): callbacks
 * on the I/O thread, with a router on a thread of this process.
 *   1. order and bursts: B sends MESSAGES numbered messages to A; A's
 *      callback sees them in order, in batches of at most 256, each read's
 *      events followed by exactly one count-0 call; the callbacks of two
 *      inline sinks run on one thread (the I/O thread), not the caller's;
 *   2. pings: A pings B PINGS times, each from the callback that got the
 *      previous answer;
 *   3. the calls that wait for the I/O thread, made from a callback while
 *      another thread waits for the I/O thread (each would deadlock if it
 *      waited): smartbus_client_new/_start while the main thread frees a
 *      client (it holds the engine's life lock), smartbus_sink_free(-1) of
 *      a callback thread that is itself in smartbus_client_free;
 *   4. the end: B and its inline sink freed by the main thread (count -1
 *      from smartbus_sink_free); A's callback, told that B left, frees its
 *      clients (the last ones: the I/O thread ends by itself) and its own
 *      sink (count -1 after the callback); a client started afterwards gets
 *      a new I/O thread.
 *
 * usage: inline_sink_test.  Prints "OK", or "FAIL <reason>" and exits 1.
 * Built with ASan/UBSan and with -fsanitize=thread by tests/test_c_api.py.
 */
#define _POSIX_C_SOURCE 200809L
#include "smartbus.h"
#include "smartbus_ext.h"

#include "c_test.h"

#define MESSAGES     20000
#define PINGS        2000
#define MAX_BATCH    256          /* sink.c's SINK_BATCH: the contract's maximum */
#define OVERLAP_MS   50           /* a waiting thread is inside its wait by then */

enum { UNIT_A = 20, UNIT_B = 21, UNIT_X = 22, UNIT_Y = 23, UNIT_Z = 24, UNIT_W = 25 };
#define TAG_SEQ   'n'             /* data to A: 'n' + 4-byte number */
#define TAG_GO    'g'             /* data to A: 'g' + phase */

static int port;
static smartbus_client *a, *y;
static smartbus_sink *sink_a, *sink_z;
static pthread_t io_thread;       /* the thread the first inline callback ran on */
static int io_thread_known;

/* under lock */
static int a_connected, b_connected, y_connected, other_connected;
static int received, out_of_order, big_batches, zeros, zero_without_events;
static int a_pending, b_pending;  /* events since the sink's last count-0 call */
static int wrong_thread, answers, ping_errors, a_ended, b_ended, z_ended;
static int a_in_phase3, freeing_x, start_rc = 1;
static int a_in_phase4, z_in, z_freeing, z_sink_freed;
static uint32_t next_seq;

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void *run_router(void *r)
{
    smartbus_router_run(r);
    return NULL;
}

/* every inline callback but the last (count -1, from smartbus_sink_free's
 * caller): on one thread, never the main thread */
static void note_thread(void)
{
    pthread_t self = pthread_self();
    if (!io_thread_known) {
        io_thread = self;
        io_thread_known = 1;
    }
    if (!pthread_equal(self, io_thread)) wrong_thread++;
}

/* the count-0 / count-(-1) calls of an inline sink; 1 when handled */
static int burst_end(int count, int *pending, int *ended)
{
    if (count == -1) {
        (*ended)++;
        return 1;
    }
    note_thread();
    if (count == 0) {
        zeros++;
        if (!*pending) zero_without_events++;
        *pending = 0;
        return 1;
    }
    if (count > MAX_BATCH) big_batches++;
    *pending = 1;
    return 0;
}

static uint32_t seq_of(const unsigned char *p)
{
    return (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
}

/* phase 3, on the I/O thread: while the main thread frees client X (and
 * waits for this thread), start client Y */
static void start_y_while_x_is_freed(void)
{
    a_in_phase3 = 1;
    pthread_mutex_unlock(&lock);
    if (!wait_for(&freeing_x, 1)) FAIL("the main thread did not free X");
    sleep_ms(OVERLAP_MS);
    y = start_net_client(UNIT_Y, 2, port, sink_a);
    pthread_mutex_lock(&lock);
    start_rc = 0;                 /* start_net_client checked both calls */
}

/* phase 4, on the I/O thread: free Z's sink while its callback thread is
 * in smartbus_client_free(Z), waiting for this thread */
static void free_z_sink_while_its_thread_waits(void)
{
    a_in_phase4 = 1;
    pthread_mutex_unlock(&lock);
    if (!wait_for(&z_freeing, 1)) FAIL("Z's callback did not free Z");
    sleep_ms(OVERLAP_MS);
    smartbus_sink_free(sink_z, -1);
    pthread_mutex_lock(&lock);
    z_sink_freed = 1;
}

/* B left: A frees its clients and its own sink from its callback */
static void free_everything_of_a(void)
{
    pthread_mutex_unlock(&lock);
    smartbus_client_free(y);
    smartbus_client_free(a);
    smartbus_sink_free(sink_a, -1);
    pthread_mutex_lock(&lock);
}

static void on_a(void *arg, const smartbus_event *evs, int count)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    if (burst_end(count, &a_pending, &a_ended)) {
        pthread_mutex_unlock(&lock);
        return;
    }
    for (int i = 0; i < count; i++) {
        const smartbus_event *e = &evs[i];
        if (e->type == SMARTBUS_EV_CONNECT && e->code == 0) {
            if (e->client_id == 1) a_connected++;
            else y_connected++;
        } else if (e->type == SMARTBUS_EV_GLOBAL_CONNECT && e->unit_id == UNIT_B &&
                   e->code == SMARTBUS_GLOBAL_DISCONNECTED && e->client_id == 1) {
            free_everything_of_a();
        } else if (e->type == SMARTBUS_EV_DATA && e->head[2] == SMARTBUS_SYSCMD_PING_ACK &&
                   e->head[3] == SMARTBUS_CMDTYPE_SYSTEM) {
            if (++answers < PINGS && smartbus_client_ping(a, UNIT_B, 1, 11, "p", 1) != 0)
                ping_errors++;
        } else if (e->type == SMARTBUS_EV_DATA && e->size == 5 && e->data[0] == TAG_SEQ) {
            if (seq_of(e->data) != next_seq) out_of_order++;
            next_seq = seq_of(e->data) + 1;
            received++;
        } else if (e->type == SMARTBUS_EV_DATA && e->size == 2 && e->data[0] == TAG_GO) {
            if (e->data[1] == 3) start_y_while_x_is_freed();
            else if (e->data[1] == 4) free_z_sink_while_its_thread_waits();
        }
    }
    pthread_mutex_unlock(&lock);
}

static void on_b(void *arg, const smartbus_event *evs, int count)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    if (!burst_end(count, &b_pending, &b_ended)) {
        for (int i = 0; i < count; i++)
            if (evs[i].type == SMARTBUS_EV_CONNECT && evs[i].code == 0) b_connected++;
    }
    pthread_mutex_unlock(&lock);
}

/* the callback thread of X's, W's and Z's (threaded) sinks */
static void on_threaded(void *arg, const smartbus_event *evs, int count)
{
    smartbus_client **z = arg;
    pthread_mutex_lock(&lock);
    if (io_thread_known && pthread_equal(pthread_self(), io_thread)) wrong_thread++;
    if (count == -1 && z) z_ended++;
    int z_data = 0;
    for (int i = 0; i < count; i++) {
        if (evs[i].type == SMARTBUS_EV_CONNECT && evs[i].code == 0) other_connected++;
        if (evs[i].type == SMARTBUS_EV_DATA && z && *z) z_data = 1;
    }
    if (z_data) z_in = 1;
    pthread_mutex_unlock(&lock);
    if (!z_data) return;
    /* phase 4: wait for A's callback to hold the I/O thread, then free Z */
    if (!wait_for(&a_in_phase4, 1)) FAIL("A's callback did not start phase 4");
    pthread_mutex_lock(&lock);
    z_freeing = 1;
    pthread_mutex_unlock(&lock);
    smartbus_client_free(*z);
    *z = NULL;
}

static void send_to(smartbus_client *from, int unit, const void *p, int size)
{
    for (;;) {
        int rc = smartbus_client_send(from, 1, 3, unit, 1, 11, p, size);
        if (rc == 0) return;
        if (rc != SMARTBUS_ERR_BUFF_FULL) FAIL("send: %d", rc);
        sleep_ms(1);
    }
}

static void go(smartbus_client *b, int phase)
{
    unsigned char p[2] = { TAG_GO, (unsigned char)phase };
    send_to(b, UNIT_A, p, 2);
}

/* waits for the router to count `n` registered clients */
static int router_clients(smartbus_router *r, int n)
{
    for (int waited = 0; waited < WAIT_MS; waited += 10) {
        smartbus_router_stats st;
        smartbus_router_get_stats(r, &st);
        if (st.clients == n) return 1;
        sleep_ms(10);
    }
    return 0;
}

int main(void)
{
    smartbus_router_config rc;
    memset(&rc, 0, sizeof rc);
    smartbus_router *r = NULL;
    char err[256];
    CHECK(smartbus_router_new(&rc, &r, err, sizeof err) == 0);
    port = smartbus_router_port(r);
    pthread_t rt;
    CHECK(pthread_create(&rt, NULL, run_router, r) == 0);

    CHECK(smartbus_sink_new_inline(NULL, NULL) == NULL);
    sink_a = smartbus_sink_new_inline(on_a, NULL);
    smartbus_sink *sink_b = smartbus_sink_new_inline(on_b, NULL);
    CHECK(sink_a && sink_b);
    smartbus_client *b = start_net_client(UNIT_B, 1, port, sink_b);
    a = start_net_client(UNIT_A, 1, port, sink_a);
    if (!wait_for(&a_connected, 1) || !wait_for(&b_connected, 1))
        FAIL("A and B did not register");

    /* 1. order and bursts */
    unsigned char p[5] = { TAG_SEQ, 0, 0, 0, 0 };
    for (uint32_t seq = 0; seq < MESSAGES; seq++) {
        p[1] = (unsigned char)(seq >> 24);
        p[2] = (unsigned char)(seq >> 16);
        p[3] = (unsigned char)(seq >> 8);
        p[4] = (unsigned char)seq;
        send_to(b, UNIT_A, p, 5);
    }
    if (!wait_for(&received, MESSAGES)) FAIL("A received %d of %d", received, MESSAGES);
    /* 2. pings from the callback */
    CHECK(smartbus_client_ping(a, UNIT_B, 1, 11, "p", 1) == 0);
    if (!wait_for(&answers, PINGS)) FAIL("%d of %d pings answered", answers, PINGS);
    pthread_mutex_lock(&lock);
    int bad = out_of_order || big_batches || ping_errors || wrong_thread || zero_without_events;
    int zeros_seen = zeros;
    pthread_t callbacks_ran_on = io_thread;
    pthread_mutex_unlock(&lock);
    if (bad) FAIL("out of order %d, batches over %d: %d, ping errors %d, wrong thread %d, "
                  "count-0 calls without events %d", out_of_order, MAX_BATCH, big_batches,
                  ping_errors, wrong_thread, zero_without_events);
    CHECK(zeros_seen > 0);
    CHECK(!pthread_equal(callbacks_ran_on, pthread_self()));

    /* 3. a client started from a callback while the main thread frees one */
    smartbus_sink *sink_x = smartbus_sink_new(on_threaded, NULL, 0);
    CHECK(sink_x != NULL);
    smartbus_client *x = start_net_client(UNIT_X, 1, port, sink_x);
    if (!wait_for(&other_connected, 1)) FAIL("X did not register");
    go(b, 3);
    if (!wait_for(&a_in_phase3, 1)) FAIL("A's callback did not start phase 3");
    pthread_mutex_lock(&lock);
    freeing_x = 1;
    pthread_mutex_unlock(&lock);
    smartbus_client_free(x);                 /* waits for the I/O thread */
    smartbus_sink_free(sink_x, 5000);
    if (!wait_for(&y_connected, 1)) FAIL("Y (started from a callback) did not register");
    CHECK(start_rc == 0);

    /* 4. a callback thread waiting in smartbus_client_free, its sink freed
     * from an inline callback */
    static smartbus_client *z;
    sink_z = smartbus_sink_new(on_threaded, &z, 0);
    CHECK(sink_z != NULL);
    z = start_net_client(UNIT_Z, 1, port, sink_z);
    if (!wait_for(&other_connected, 2)) FAIL("Z did not register");
    unsigned char hello[1] = { 'z' };
    send_to(b, UNIT_Z, hello, 1);
    if (!wait_for(&z_in, 1)) FAIL("Z got no data");
    go(b, 4);
    if (!wait_for(&z_sink_freed, 1)) FAIL("Z's sink was not freed from A's callback");
    if (!wait_for(&z_ended, 1)) FAIL("Z's sink thread did not end");
    if (!router_clients(r, 3)) FAIL("the router does not see Z leave");

    /* 5. the end: B freed here; A's callback frees A, Y and its own sink */
    smartbus_client_free(b);
    smartbus_sink_free(sink_b, 5000);
    CHECK(b_ended == 1);                     /* the last call, from smartbus_sink_free */
    if (!wait_for(&a_ended, 1)) FAIL("A's sink did not end");
    if (!router_clients(r, 0)) FAIL("the router does not see A and Y leave");
    /* the I/O thread ended with its last client: the next one gets a new
     * one (and the ended thread's id may be reused by any thread) */
    pthread_mutex_lock(&lock);
    io_thread_known = 0;
    pthread_mutex_unlock(&lock);
    smartbus_sink *sink_w = smartbus_sink_new(on_threaded, NULL, 0);
    CHECK(sink_w != NULL);
    smartbus_client *w = start_net_client(UNIT_W, 1, port, sink_w);
    if (!wait_for(&other_connected, 3)) FAIL("W did not register");
    smartbus_client_free(w);
    smartbus_sink_free(sink_w, 5000);

    pthread_mutex_lock(&lock);
    bad = wrong_thread || zero_without_events || a_ended != 1 || b_ended != 1 || z_ended != 1;
    pthread_mutex_unlock(&lock);
    if (bad) FAIL("wrong thread %d, count-0 without events %d, ends %d %d %d", wrong_thread,
                  zero_without_events, a_ended, b_ended, z_ended);
    smartbus_router_stop(r);
    pthread_join(rt, NULL);
    smartbus_router_free(r);
    printf("OK\n");
    fflush(stdout);
#ifdef __SANITIZE_THREAD__
    return 0;                    /* ThreadSanitizer's own thread never ends (no leak check) */
#else
    pthread_exit(NULL);          /* Z's sink thread frees its sink on its way out */
#endif
}
