/*
 * sbcount.c - a receiving SmartBus client with no Python in it, for the
 * benchmarks: the bundled C SDK (compiled in by benchmarks/run.py) with a
 * sink callback that only counts data events.  It measures the send path
 * honestly (messages counted at the receiver) without a Python handler
 * bounding the rate.  Its library answers pings (latency case), and it can
 * stop consuming events (memory case: the sink fills, the SDK stops reading
 * the socket, the router's queue for it fills).
 *
 * usage: sbcount PORT UNIT CLIENT_ID CLIENT_TYPE [inline]
 * inline: the client's sink is an inline sink (smartbus_sink_new_inline):
 * the callback runs on the SDK's I/O thread, a ping sent from it leaves
 * in the same I/O turn (no callback thread woken on the way).
 * stdin, one command per line; one JSON line answers each:
 *   wait N TIMEOUT_S   until N data events were counted (or the timeout)
 *   reset              zero the counters
 *   stall / resume     the callback blocks / stops blocking
 *   ping U C T N SIZE  N pings to (unit U, client C, type T), each sent from
 *                      the callback that got the previous answer (as the
 *                      Python pinger does): round trips through the same
 *                      SDK threads with no Python, p50/p99 in microseconds
 *   quit
 * times are CLOCK_MONOTONIC seconds (the clock of Python's time.monotonic).
 */
#define _GNU_SOURCE 1
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smartbus_ext.h"

static uint64_t g_count, g_bytes;
static double g_first, g_last;
static int g_connected, g_stall;
static smartbus_client *g_client;
static double *g_rtt;
static int g_ping_n, g_ping_i, g_ping_dst[3], g_ping_size;
static double g_ping_t0;
static char g_ping_buf[65536];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void on_batch(void *arg, const smartbus_event *evs, int count)
{
    (void)arg;
    uint64_t n = 0, b = 0;
    for (int i = 0; i < count; i++) {
        if (evs[i].type == SMARTBUS_EV_DATA && evs[i].head && evs[i].head[2] == 8 &&
            evs[i].head[3] == 1 && g_rtt) {
            double t = now_s();
            if (g_ping_i < g_ping_n) g_rtt[g_ping_i++] = (t - g_ping_t0) * 1e6;
            if (g_ping_i < g_ping_n) {
                g_ping_t0 = now_s();
                smartbus_client_ping(g_client, g_ping_dst[0], g_ping_dst[1], g_ping_dst[2],
                                     g_ping_buf, g_ping_size);
            }
        } else if (evs[i].type == SMARTBUS_EV_DATA) {
            n++;
            b += (uint64_t)evs[i].size;
        } else if (evs[i].type == SMARTBUS_EV_CONNECT && evs[i].code == 0) {
            __atomic_store_n(&g_connected, 1, __ATOMIC_SEQ_CST);
        }
    }
    while (__atomic_load_n(&g_stall, __ATOMIC_SEQ_CST)) usleep(1000);
    if (!n) return;
    double t = now_s();
    if (__atomic_load_n(&g_count, __ATOMIC_SEQ_CST) == 0) g_first = t;
    g_last = t;
    __atomic_add_fetch(&g_bytes, b, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&g_count, n, __ATOMIC_SEQ_CST);
}

int main(int argc, char **argv)
{
    if (argc < 5 || (argc > 5 && strcmp(argv[5], "inline") != 0)) {
        fprintf(stderr, "usage: %s PORT UNIT CLIENT_ID CLIENT_TYPE [inline]\n", argv[0]);
        return 2;
    }
    smartbus_sink *sink = argc > 5 ? smartbus_sink_new_inline(on_batch, NULL)
                                   : smartbus_sink_new(on_batch, NULL, 0);
    smartbus_client_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.kind = SMARTBUS_KIND_NET;
    cfg.master_ip = "127.0.0.1";
    cfg.master_port = atoi(argv[1]);
    cfg.unit_id = atoi(argv[2]);
    cfg.client_id = atoi(argv[3]);
    cfg.client_type = atoi(argv[4]);
    cfg.info = "sbcount";
    smartbus_client *c = NULL;
    int rc = smartbus_client_new(&cfg, sink, &c);
    g_client = c;
    if (rc != 0 || smartbus_client_start(c) != 0) {
        printf("{\"ok\": false, \"error\": %d}\n", rc);
        return 1;
    }
    for (int i = 0; i < 500 && !__atomic_load_n(&g_connected, __ATOMIC_SEQ_CST); i++) usleep(10000);
    printf("{\"ok\": %s}\n", __atomic_load_n(&g_connected, __ATOMIC_SEQ_CST) ? "true" : "false");
    fflush(stdout);
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        if (!strncmp(line, "wait", 4)) {
            unsigned long long want = 0;
            double timeout = 30;
            sscanf(line + 4, "%llu %lf", &want, &timeout);
            double end = now_s() + timeout;
            while (__atomic_load_n(&g_count, __ATOMIC_SEQ_CST) < want && now_s() < end) usleep(200);
            smartbus_client_stats st;
            smartbus_client_get_stats(c, &st);
            printf("{\"ok\": true, \"count\": %llu, \"bytes\": %llu, \"first\": %.9f, "
                   "\"last\": %.9f, \"recv_msgs\": %llu}\n",
                   (unsigned long long)__atomic_load_n(&g_count, __ATOMIC_SEQ_CST),
                   (unsigned long long)__atomic_load_n(&g_bytes, __ATOMIC_SEQ_CST), g_first,
                   g_last, (unsigned long long)st.recv_msgs);
        } else if (!strncmp(line, "reset", 5)) {
            __atomic_store_n(&g_count, 0, __ATOMIC_SEQ_CST);
            __atomic_store_n(&g_bytes, 0, __ATOMIC_SEQ_CST);
            g_first = g_last = 0;
            printf("{\"ok\": true}\n");
        } else if (!strncmp(line, "stall", 5)) {
            __atomic_store_n(&g_stall, 1, __ATOMIC_SEQ_CST);
            printf("{\"ok\": true}\n");
        } else if (!strncmp(line, "resume", 6)) {
            __atomic_store_n(&g_stall, 0, __ATOMIC_SEQ_CST);
            printf("{\"ok\": true}\n");
        } else if (!strncmp(line, "ping", 4)) {
            int n = 0;
            sscanf(line + 4, "%d %d %d %d %d", &g_ping_dst[0], &g_ping_dst[1], &g_ping_dst[2],
                   &n, &g_ping_size);
            if (n <= 0 || g_ping_size < 0 || g_ping_size > (int)sizeof g_ping_buf) n = 1;
            double *rtt = calloc((size_t)n, sizeof *rtt);
            g_ping_n = n;
            __atomic_store_n(&g_ping_i, 0, __ATOMIC_SEQ_CST);
            __atomic_store_n(&g_rtt, rtt, __ATOMIC_SEQ_CST);
            g_ping_t0 = now_s();
            smartbus_client_ping(c, g_ping_dst[0], g_ping_dst[1], g_ping_dst[2], g_ping_buf,
                                 g_ping_size);
            double end = now_s() + 60;
            while (__atomic_load_n(&g_ping_i, __ATOMIC_SEQ_CST) < n && now_s() < end) usleep(1000);
            int got = __atomic_load_n(&g_ping_i, __ATOMIC_SEQ_CST);
            __atomic_store_n(&g_rtt, NULL, __ATOMIC_SEQ_CST);
            usleep(10000);                   /* let a callback in progress finish */
            int warm = got > 200 ? 200 : 0;  /* the first 200 are a warm-up */
            double *r = rtt + warm;
            int m = got - warm;
            qsort(r, (size_t)m, sizeof *r, cmp_d);
            double sum = 0;
            for (int i = 0; i < m; i++) sum += r[i];
            if (m > 0)
                printf("{\"ok\": true, \"n\": %d, \"p50_us\": %.2f, \"p99_us\": %.2f, "
                       "\"mean_us\": %.2f}\n", m, r[m / 2], r[(int)(m * 0.99)], sum / m);
            else
                printf("{\"ok\": false, \"error\": \"no answers\"}\n");
            free(rtt);
        } else if (!strncmp(line, "quit", 4)) {
            break;
        } else {
            printf("{\"ok\": false, \"error\": \"unknown command\"}\n");
        }
        fflush(stdout);
    }
    __atomic_store_n(&g_stall, 0, __ATOMIC_SEQ_CST);
    smartbus_client_free(c);
    smartbus_sink_free(sink, 2000);
    printf("{\"ok\": true}\n");
    return 0;
}
