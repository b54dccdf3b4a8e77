/*
 * pump.c - the physical-limit references of the 1 KiB case: a C sender
 * writing framed messages (a SmartBus head, then the payload) in large
 * writes, a plain read/write relay (one hop, like the router: 64 KiB
 * reads, each written on at once), and a receiver that walks the frames
 * and counts them.  sender -> relay -> sink is what a router at the speed
 * of a copy loop would give; sender -> sink (no hop) is the upper bound of
 * the machine.  No SmartBus code: plain sockets and byte stores.
 *
 *   pump sink                 prints its port; takes one connection, counts
 *                             frames until the end of the stream, prints JSON
 *                             {"n", "bytes", "last"} (last: CLOCK_MONOTONIC
 *                             seconds of the last read)
 *   pump relay PORT           prints its port; forwards one connection to
 *                             PORT (one direction, the end of stream too)
 *   pump send PORT SECONDS SIZE
 *                             writes SIZE-byte messages for SECONDS, in
 *                             writes of SEND_WRITE bytes, then ends the
 *                             stream; prints JSON {"n", "t0"}
 * The rate is n / (last - t0), as the benchmarks count every case.
 */
#define _GNU_SOURCE 1
#include <stdint.h>
#include <time.h>

#include "loopback.h"

#define HEAD_SIZE   20
#define HEAD_FLAG   0x5B15          /* bytes 15 5B */
#define RELAY_READ  (64 << 10)      /* what the router reads at a time */
#define SEND_WRITE  (256 << 10)     /* a large write: what a queued burst becomes */
#define SINK_READ   (256 << 10)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int accept_one(void)
{
    int l = listen_any();
    int fd = accept(l, NULL, NULL);
    if (fd < 0) die("accept");
    close(l);
    return fd;
}

static void put_i32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_i32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* walks the frames of the stream, counting them; a frame may span reads */
static int sink(void)
{
    int fd = accept_one();
    uint8_t *buf = malloc(SINK_READ + HEAD_SIZE);
    if (!buf) die("malloc");
    size_t have = 0;                /* bytes of an unfinished head kept at buf */
    uint64_t skip = 0;              /* bytes of the current frame's body still to come */
    uint64_t n = 0, bytes = 0;
    double last = 0;
    for (;;) {
        ssize_t r = read(fd, buf + have, SINK_READ);
        if (r < 0) die("read");
        if (r == 0) break;
        last = now_s();
        size_t len = have + (size_t)r, at = 0;
        for (;;) {
            if (skip) {
                uint64_t take = skip < len - at ? skip : len - at;
                skip -= take;
                at += (size_t)take;
                if (skip) break;
            }
            if (len - at < HEAD_SIZE) break;
            uint32_t size = get_i32(buf + at + 12), datalen = get_i32(buf + at + 16);
            if (buf[at] != (HEAD_FLAG & 0xFF) || size < HEAD_SIZE + datalen) {
                fprintf(stderr, "pump sink: bad frame after %llu\n", (unsigned long long)n);
                return 1;
            }
            n++;
            bytes += datalen;
            at += HEAD_SIZE;
            skip = size - HEAD_SIZE;
        }
        have = len - at;
        memmove(buf, buf + at, have);
    }
    printf("{\"n\": %llu, \"bytes\": %llu, \"last\": %.6f}\n", (unsigned long long)n,
           (unsigned long long)bytes, last);
    return 0;
}

static int relay(int port)
{
    int a = accept_one();
    int b = connect_to(port);
    static uint8_t buf[RELAY_READ];
    ssize_t r;
    while ((r = read(a, buf, sizeof buf)) > 0)
        if (write_all(b, buf, (size_t)r) != 0) return 1;
    shutdown(b, SHUT_WR);
    /* the sink reports once it has read everything: wait for its close */
    while (read(b, buf, sizeof buf) > 0) {
    }
    return 0;
}

static int send_for(int port, double seconds, size_t size)
{
    int fd = connect_to(port);
    size_t frame = HEAD_SIZE + size, per_write = SEND_WRITE / frame;
    if (per_write == 0) per_write = 1;
    uint8_t *buf = calloc(per_write, frame);
    if (!buf) die("calloc");
    for (size_t i = 0; i < per_write; i++) {
        uint8_t *p = buf + i * frame;
        p[0] = HEAD_FLAG & 0xFF;
        p[1] = HEAD_FLAG >> 8;
        p[2] = 1;                   /* cmd 1, cmdtype 3: data, as the benchmarks send */
        p[3] = 3;
        put_i32(p + 12, (uint32_t)frame);
        put_i32(p + 16, (uint32_t)size);
        memset(p + HEAD_SIZE, 'x', size);
    }
    uint64_t n = 0;
    double t0 = now_s(), end = t0 + seconds;
    do {
        if (write_all(fd, buf, per_write * frame) != 0) die("write");
        n += per_write;
    } while (now_s() < end);
    shutdown(fd, SHUT_WR);
    printf("{\"n\": %llu, \"t0\": %.6f}\n", (unsigned long long)n, t0);
    fflush(stdout);
    char c;
    while (read(fd, &c, 1) > 0) {
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "sink")) return sink();
    if (argc == 3 && !strcmp(argv[1], "relay")) return relay(atoi(argv[2]));
    if (argc == 5 && !strcmp(argv[1], "send"))
        return send_for(atoi(argv[2]), atof(argv[3]), (size_t)atoi(argv[4]));
    fprintf(stderr, "usage: pump sink | relay PORT | send PORT SECONDS SIZE\n");
    return 2;
}
