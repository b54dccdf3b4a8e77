/*
 * rtload.c - the load generator of the router's scale cases: many
 * registered SmartBus clients on raw sockets, from one thread (numbered as
 * rtclients.h says), registered with the SDK's codec (wire.c).  Every client
 * reads and discards what the router sends (frames walked, acks and
 * heartbeat answers counted); while a command runs, each idle client sends
 * a heartbeat once a second, the N clients' phases spread evenly over the
 * second (N heartbeats per second in all, as N independent clients).
 * Pairs of clients (2k -> 2k+1) stream data packets, written from a
 * pre-encoded buffer as fast as the router takes them; the receivers count
 * them.  Linux (epoll), like the rest of the benchmarks.
 *
 * usage: rtload PORT    (raises its open-files limit to the hard limit)
 * stdin, one command per line; one JSON line answers each:
 *   connect N            connects and registers clients until N are registered
 *                        (REG_WINDOW registrations in flight), then reads until
 *                        the router is quiet: {"clients", "seconds"}
 *   idle S               S seconds of heartbeats: {"heartbeats", "answers", "seconds"}
 *   pump P S SIZE        P pairs stream SIZE-byte data packets for S seconds (their
 *                        members send no heartbeats meanwhile; the others do), then
 *                        until every receiver has counted what its sender sent:
 *                        {"n", "t0", "last", "pairs": [messages of each pair]}
 *   quit
 * Times are CLOCK_MONOTONIC seconds (Python's time.monotonic()).
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>

#include "loopback.h"
#include "rtclients.h"

#define REG_WINDOW    64              /* registrations in flight: below the router's backlog */
#define READ_SIZE     (256 << 10)
#define SEND_CHUNK    (64 << 10)      /* a sender's pre-encoded packets */
#define QUIET_S       0.2             /* connect: the router is quiet after this long */
#define DRAIN_LIMIT_S 60.0            /* pump: receivers must have it all by then */
#define LOOP_MS       1               /* epoll timeout: heartbeat timing */
#define MAX_SIZE      (64 << 10)      /* pump: the largest payload */
#define DATA_CMD      1               /* what the benchmarks send: cmd 1, cmdtype 3 */

enum { IDLE, SENDER, RECEIVER };

typedef struct conn {
    int fd;
    int registered;
    int role;
    uint8_t head[SBW_HEAD_SIZE];      /* frame walker: a head split across reads */
    int have;
    uint64_t skip;                    /* body bytes of the current frame still to come */
    uint64_t data;                    /* data packets received */
    double last;                      /* when the last one came */
    uint64_t sent;                    /* sender: packets written in full */
    size_t woff;                      /* sender: where it is in its buffer */
    uint8_t *buf;                     /* sender: its pre-encoded packets */
    size_t buflen, frame;
} conn;

static conn conns[RT_MAX_CLIENTS];
static int nconns, nregistered, epfd, port;
static uint64_t heartbeats, answers, hb_dropped;
static uint8_t rbuf[READ_SIZE];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "rtload: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void watch(int i, unsigned events)
{
    struct epoll_event ev = { .events = events, .data.u32 = (uint32_t)i };
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, conns[i].fd, &ev) != 0) die("epoll_ctl");
}

/* a whole small packet, or it is dropped (counted): only idle clients'
 * heartbeats go this way and their sockets are empty */
static void send_small(int i, const uint8_t *p, size_t n)
{
    if (send(conns[i].fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)n) hb_dropped++;
}

static int connect_one(void)
{
    int i = nconns;
    int fd = connect_to(port);
    conn *c = &conns[i];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    static uint8_t pkt[SBW_REG_NET_A_SIZE];
    char info[32];
    snprintf(info, sizeof info, "rtload %d", i);
    int n = rt_registration(pkt, i, info);
    if (n <= 0 || send(fd, pkt, (size_t)n, MSG_NOSIGNAL) != n) die("register");
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
    nconns++;
    return i;
}

/* one frame head of connection i */
static void on_head(conn *c, const uint8_t *h, double t)
{
    uint8_t cmd = h[2], cmdtype = h[3];
    if (cmdtype == SMARTBUS_CMDTYPE_INTERNAL && cmd == SMARTBUS_CMD_REGISTER_ACK) {
        c->registered = 1;
        nregistered++;
    } else if (cmdtype == SMARTBUS_CMDTYPE_INTERNAL && cmd == SMARTBUS_CMD_HEARTBEAT_ACK) {
        answers++;
    } else if (cmdtype == SMARTBUS_CMDTYPE_USER && cmd == DATA_CMD) {
        c->data++;
        c->last = t;
    }
}

/* reads what came on connection i and walks its frames; 0, or -1 at its end */
static int read_conn(int i, double t)
{
    conn *c = &conns[i];
    ssize_t r = read(c->fd, rbuf, sizeof rbuf);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) return -1;
    if (r < 0) return 0;
    size_t at = 0, len = (size_t)r;
    while (at < len) {
        if (c->skip) {
            uint64_t take = c->skip < len - at ? c->skip : len - at;
            c->skip -= take;
            at += (size_t)take;
            continue;
        }
        size_t take = (size_t)(SBW_HEAD_SIZE - c->have);
        if (take > len - at) take = len - at;
        memcpy(c->head + c->have, rbuf + at, take);
        c->have += (int)take;
        at += take;
        if (c->have < SBW_HEAD_SIZE) break;
        c->have = 0;
        int32_t size = sbw_get_i32(c->head + SBW_HEAD_PACKET_SIZE_AT);
        if (sbw_get_u16(c->head) != SMARTBUS_HEAD_FLAG || size < SBW_HEAD_SIZE) {
            fprintf(stderr, "rtload: bad frame on client %d\n", i);
            exit(1);
        }
        on_head(c, c->head, t);
        c->skip = (uint64_t)size - SBW_HEAD_SIZE;
    }
    return 0;
}

/* a sender writes on from its buffer; stops at a packet boundary once told */
static void write_conn(int i, int stopping)
{
    conn *c = &conns[i];
    for (;;) {
        if (stopping && c->woff % c->frame == 0) return;
        size_t end = stopping ? (c->woff / c->frame + 1) * c->frame : c->buflen;
        ssize_t w = send(c->fd, c->buf + c->woff, end - c->woff, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno != EAGAIN && errno != EINTR) die("send");
            return;
        }
        size_t before = c->woff / c->frame;
        c->woff += (size_t)w;
        c->sent += c->woff / c->frame - before;
        if (c->woff == c->buflen) c->woff = 0;
    }
}

/* heartbeats due by time t (clients 0..nconns-1, once a second each, spread) */
static double hb_t0;
static uint64_t hb_done;
static void heartbeat_due(double t)
{
    if (nconns == 0) return;
    uint64_t due = (uint64_t)((t - hb_t0) * nconns);
    for (; hb_done < due; hb_done++) {
        int i = (int)(hb_done % (uint64_t)nconns);
        if (conns[i].role != IDLE || !conns[i].registered) continue;
        uint8_t pkt[SBW_HB_OLD_SIZE];
        sbw_head h = rt_head(i, -1, SMARTBUS_CMD_HEARTBEAT, SMARTBUS_CMDTYPE_INTERNAL);
        sbw_heartbeat hb = { .layout = SBW_HB_OLD, .counter = (int64_t)(hb_done / nconns) };
        int n = sbw_put_heartbeat(pkt, sizeof pkt, &h, &hb);
        send_small(i, pkt, (size_t)n);
        heartbeats++;
    }
}

/* one turn of the generator: at most LOOP_MS waiting */
static double last_read;
static void turn(int beat, int stopping)
{
    static struct epoll_event evs[1024];
    int n = epoll_wait(epfd, evs, 1024, LOOP_MS);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    double t = now_s();
    for (int k = 0; k < n; k++) {
        int i = (int)evs[k].data.u32;
        if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
            if (read_conn(i, t) != 0) {
                fprintf(stderr, "rtload: the router closed client %d\n", i);
                exit(1);
            }
            last_read = t;
        }
        if ((evs[k].events & EPOLLOUT) && conns[i].role == SENDER) write_conn(i, stopping);
    }
    if (beat) heartbeat_due(t);
}

static void cmd_connect(int n)
{
    if (n > RT_MAX_CLIENTS) n = RT_MAX_CLIENTS;
    double t0 = now_s();
    while (nregistered < n) {
        while (nconns < n && nconns - nregistered < REG_WINDOW) connect_one();
        turn(0, 0);
    }
    while (now_s() - last_read < QUIET_S) turn(0, 0);
    printf("{\"ok\": true, \"clients\": %d, \"seconds\": %.3f}\n", nregistered, now_s() - t0);
}

static void cmd_idle(double seconds)
{
    uint64_t hb0 = heartbeats, an0 = answers;
    double t0 = now_s(), end = t0 + seconds;
    hb_t0 = t0;
    hb_done = 0;
    while (now_s() < end) turn(1, 0);
    printf("{\"ok\": true, \"heartbeats\": %llu, \"answers\": %llu, \"dropped\": %llu, "
           "\"seconds\": %.3f}\n", (unsigned long long)(heartbeats - hb0),
           (unsigned long long)(answers - an0), (unsigned long long)hb_dropped, now_s() - t0);
}

static void cmd_pump(int pairs, double seconds, int size)
{
    if (pairs * 2 > nregistered || size < 0 || size > MAX_SIZE) {
        printf("{\"ok\": false, \"error\": \"not enough clients or a bad size\"}\n");
        return;
    }
    size_t frame = SBW_HEAD_SIZE + (size_t)size;
    size_t per = SEND_CHUNK / frame ? SEND_CHUNK / frame : 1;
    static uint8_t payload[MAX_SIZE];
    memset(payload, 'x', (size_t)size);
    for (int k = 0; k < pairs; k++) {
        conn *s = &conns[2 * k], *d = &conns[2 * k + 1];
        s->role = SENDER;
        d->role = RECEIVER;
        s->sent = d->data = 0;
        s->woff = 0;
        s->frame = frame;
        s->buflen = per * frame;
        s->buf = malloc(s->buflen);
        if (!s->buf) die("malloc");
        for (size_t j = 0; j < per; j++) {
            sbw_head h = rt_head(2 * k, 2 * k + 1, DATA_CMD, SMARTBUS_CMDTYPE_USER);
            sbw_put_packet(s->buf + j * frame, frame, &h, payload, size, SBW_PAD_NONE);
        }
    }
    double t0 = now_s(), end = t0 + seconds;
    hb_t0 = t0;
    hb_done = 0;
    for (int k = 0; k < pairs; k++) watch(2 * k, EPOLLIN | EPOLLOUT);
    while (now_s() < end) turn(1, 0);
    int busy = 1;                     /* senders finish the packet they are in */
    while (busy) {
        busy = 0;
        for (int k = 0; k < pairs; k++) busy |= conns[2 * k].woff % frame != 0;
        if (busy) turn(1, 1);
    }
    for (int k = 0; k < pairs; k++) watch(2 * k, EPOLLIN);
    double limit = now_s() + DRAIN_LIMIT_S;
    for (;;) {
        int done = 1;
        for (int k = 0; k < pairs; k++) done &= conns[2 * k + 1].data >= conns[2 * k].sent;
        if (done || now_s() > limit) break;
        turn(1, 1);
    }
    uint64_t n = 0, got = 0;
    double last = t0;
    printf("{\"ok\": true, \"t0\": %.6f, \"pairs\": [", t0);
    for (int k = 0; k < pairs; k++) {
        conn *s = &conns[2 * k], *d = &conns[2 * k + 1];
        n += s->sent;
        got += d->data;
        if (d->last > last) last = d->last;
        printf("%s%llu", k ? ", " : "", (unsigned long long)d->data);
        s->role = d->role = IDLE;
        free(s->buf);
        s->buf = NULL;
    }
    printf("], \"n\": %llu, \"received\": %llu, \"last\": %.6f}\n", (unsigned long long)n,
           (unsigned long long)got, last);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: rtload PORT (commands on stdin)\n");
        return 2;
    }
    port = atoi(argv[1]);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    unsigned long long nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (unsigned long long)rl.rlim_cur : 0;
    printf("{\"ok\": true, \"nofile\": %llu}\n", nofile);
    fflush(stdout);
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        int a, c;
        double b;
        if (sscanf(line, "connect %d", &a) == 1) cmd_connect(a);
        else if (sscanf(line, "idle %lf", &b) == 1) cmd_idle(b);
        else if (sscanf(line, "pump %d %lf %d", &a, &b, &c) == 3) cmd_pump(a, b, c);
        else if (!strncmp(line, "quit", 4)) break;
        else printf("{\"ok\": false, \"error\": \"unknown command\"}\n");
        fflush(stdout);
    }
    printf("{\"ok\": true}\n");
    fflush(stdout);
    return 0;
}
