/*
 * tcpecho.c - the latency reference of the benchmarks: a minimal C TCP
 * echo over one extra hop, i.e. client -> relay -> echo -> relay -> client,
 * the same shape as a ping through the SmartBus router.  Each program is a
 * plain poll()/blocking loop with TCP_NODELAY, no framing beyond a fixed
 * message size.
 *
 *   tcpecho echo               prints the port, echoes one connection
 *   tcpecho relay ECHO_PORT    prints the port, forwards one connection both ways
 *   tcpecho client PORT N SIZE ping-pongs N messages of SIZE bytes, prints JSON
 *                              with p50/p99/mean round trip in microseconds
 */
#define _GNU_SOURCE 1
#include <poll.h>
#include <time.h>

#include "loopback.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

int main(int argc, char **argv)
{
    static char buf[1 << 16];
    if (argc >= 2 && !strcmp(argv[1], "echo")) {
        int l = listen_any();
        int fd = accept(l, NULL, NULL);
        nodelay(fd);
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0)
            if (write_all(fd, buf, (size_t)n) != 0) break;
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "relay")) {
        int l = listen_any();
        int a = accept(l, NULL, NULL);
        nodelay(a);
        int b = connect_to(atoi(argv[2]));
        struct pollfd p[2] = { { a, POLLIN, 0 }, { b, POLLIN, 0 } };
        for (;;) {
            if (poll(p, 2, -1) < 0) return 1;
            for (int i = 0; i < 2; i++) {
                if (!p[i].revents) continue;
                ssize_t n = read(p[i].fd, buf, sizeof buf);
                if (n <= 0 || write_all(p[1 - i].fd, buf, (size_t)n) != 0) return 0;
            }
        }
    }
    if (argc >= 5 && !strcmp(argv[1], "client")) {
        int fd = connect_to(atoi(argv[2]));
        int n = atoi(argv[3]);
        size_t size = (size_t)atoi(argv[4]);
        double *rtt = malloc(sizeof *rtt * (size_t)n);
        memset(buf, 'x', size);
        for (int i = -100; i < n; i++) {            /* 100 warm-up round trips */
            double t0 = now_us();
            if (write_all(fd, buf, size) != 0) return 1;
            size_t got = 0;
            while (got < size) {
                ssize_t r = read(fd, buf + got, size - got);
                if (r <= 0) return 1;
                got += (size_t)r;
            }
            if (i >= 0) rtt[i] = now_us() - t0;
        }
        double sum = 0;
        for (int i = 0; i < n; i++) sum += rtt[i];
        qsort(rtt, (size_t)n, sizeof *rtt, cmp_d);
        printf("{\"p50_us\": %.2f, \"p99_us\": %.2f, \"mean_us\": %.2f, \"n\": %d}\n",
               rtt[n / 2], rtt[(int)(n * 0.99)], sum / n, n);
        return 0;
    }
    fprintf(stderr, "usage: tcpecho echo | relay ECHO_PORT | client PORT N SIZE\n");
    return 2;
}
