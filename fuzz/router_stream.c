/*
 * fuzz/router_stream.c - libFuzzer harness for the router: an arbitrary
 * byte stream from one connection goes through the router's real
 * per-connection parser and handlers (registration, heartbeats, routing,
 * global events, back-pressure, disconnects), one run-loop turn at a time.
 *
 * The router has no TCP or Unix listener, credentials (user "bus",
 * password "pw") and the smallest max_out (16 KiB), and its sockets small
 * send buffers, so that congestion is reachable; each input gets three
 * connections over
 * socketpairs, adopted as if accepted: two well-behaved clients registered
 * by the harness (a NET one, unit 16 client 1 type 11; an IPC one, client
 * 2 type 3) and the fuzzed one.  The input's length picks how the fuzzed
 * connection starts: bit 0, accepted on the IPC listener or the TCP one;
 * bit 1, registered by the harness first (unit 17 client 1 type 11, so
 * that single packets reach the routing code) or not (the stream itself
 * must register); bit 2, nobody reads what the router sends until the
 * stream ends (else the harness reads after two pieces out of three), so
 * that queues fill up.  The stream is written in pieces of varying sizes
 * (heads and packets split anywhere), each followed by a turn.
 *
 * After every turn the bounds the router promises are checked (abort on
 * violation): a connection's queue within its budget, its read buffer
 * within one read plus one packet of its size limit.
 *
 * Build and run (see .ci/fuzz for the shared runner):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *     -DSMARTBUS_STATIC -Ivendor/smartbus-sdk/include -Ivendor/smartbus-sdk/src \
 *     fuzz/router_stream.c vendor/smartbus-sdk/src/\*.c -pthread -o /tmp/router_stream
 *   /tmp/router_stream -max_len=65536 CORPUS_DIR
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "router_internal.h"

#define ROUTER_UNIT  3
#define USER         "bus"
#define PASSWORD     "pw"
#define FUZZ_MAX_OUT SMARTBUS_ROUTER_MIN_OUT_BYTES
#define SOCKET_BUF   4096        /* the router's send buffers: its queues fill early */
#define FAR_MS       600000      /* no timer fires during one input */
#define WRITE_TRIES  8           /* turns to wait for the router to take a piece */

enum { NET_CLIENT, IPC_CLIENT, FUZZED, NCONN };

/* the harness's end of each connection (-1 once closed) */
static int ends[NCONN];
/* this input's mode: the harness reads nothing until the stream ends */
static int nobody_reads;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "router_stream: broken promise: %s\n", what);
        abort();
    }
}

/* the promises of router_internal.h, for every live connection */
static void check_bounds(const smartbus_router *r)
{
    for (size_t i = 0; i < r->npeers; i++) {
        const rt_peer *c = r->peers[i];
        size_t limit = rt_packet_limit(r, c);
        check(out_pending(c) <= r->budget, "a queue within its budget");
        /* a read buffer grows by doubling up to one read plus one packet */
        check(c->in.cap <= 2 * (RT_READ_MIN + limit), "a read buffer within its bound");
    }
}

static void turn(smartbus_router *r)
{
    int timeout = 0;
    check(sb_router_turn(r, &timeout) == 0, "a turn without error");
    check_bounds(r);
}

/* reads (and drops) what the router sent to the harness's ends */
static void drain_ends(void)
{
    uint8_t buf[1 << 16];
    for (int k = 0; k < NCONN; k++) {
        while (ends[k] >= 0) {
            ssize_t n = recv(ends[k], buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) continue;
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                close(ends[k]);           /* the router closed it */
                ends[k] = -1;
            }
            break;
        }
    }
}

/* writes n bytes on connection k, giving the router turns (and reading
 * what it sent, unless nobody_reads) while its socket buffer is full;
 * gives up when it stays full */
static void feed(smartbus_router *r, int k, const uint8_t *p, size_t n)
{
    int tries = 0;
    while (n > 0 && ends[k] >= 0 && tries < WRITE_TRIES) {
        ssize_t w = send(ends[k], p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return;
        turn(r);
        if (!nobody_reads) drain_ends();
        tries++;
    }
}

/* a connection of the router whose other end is ends[k] */
static int connect_end(smartbus_router *r, int k, int ipc)
{
    int sv[2];
    ends[k] = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return -1;
    int size = SOCKET_BUF;
    (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    if (sb_peer_adopt(r, sv[0], ipc, NULL, 0) != 0) {
        close(sv[1]);
        return -1;
    }
    ends[k] = sv[1];
    return 0;
}

static void register_end(smartbus_router *r, int k, uint8_t type, uint8_t unit, uint8_t client)
{
    static uint8_t pkt[SBW_REG_NET_C_SIZE];
    sbw_register reg;
    memset(&reg, 0, sizeof reg);
    reg.layout = SBW_REG_NET_A;
    reg.client_type = type;
    reg.unit_id = unit;
    reg.client_id = client;
    reg.ap_unit = -1;
    snprintf(reg.user, sizeof reg.user, "%s", USER);
    snprintf(reg.password, sizeof reg.password, "%s", PASSWORD);
    snprintf(reg.info, sizeof reg.info, "fuzz-%d", k);
    int n = sbw_put_register(pkt, sizeof pkt, &reg);
    check(n > 0, "a registration encoded");
    feed(r, k, pkt, (size_t)n);
    turn(r);
}

/* piece sizes, cycled from a point that depends on the input */
static const size_t PIECES[] = { 1, 19, 20, 7, 64, 500, 4096, 6053, 65536, 3 };
#define NPIECES (sizeof PIECES / sizeof PIECES[0])

/* The router, made once: a new one per input costs more than the input
 * (its 512 KiB routing table).  Every input ends with no connection left,
 * which is a new router's state but for its counters. */
static smartbus_router *the_router(void)
{
    static smartbus_router *r;
    if (!r) {
        smartbus_router_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.port = -1;
        cfg.unit_id = ROUTER_UNIT;
        cfg.max_out_bytes = FUZZ_MAX_OUT;
        cfg.stall_timeout_ms = FAR_MS;
        cfg.registration_timeout_ms = FAR_MS;
        cfg.user = USER;
        cfg.password = PASSWORD;
        char err[256];
        check(smartbus_router_new(&cfg, &r, err, sizeof err) == 0, "a router created");
    }
    return r;
}

/* closes every connection of r */
static void disconnect_all(smartbus_router *r)
{
    for (size_t i = 0; i < r->npeers; i++) sb_route_disconnect(r, r->peers[i], "end of input");
    sb_peers_sweep(r);
    check(r->npeers == 0 && sb_relaxed(&r->st.clients) == 0, "no connection left");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    smartbus_router *r = the_router();

    int fuzzed_ipc = (int)(size & 1), preregistered = (int)(size & 2);
    nobody_reads = 0;
    if (connect_end(r, NET_CLIENT, 0) == 0 && connect_end(r, IPC_CLIENT, 1) == 0 &&
        connect_end(r, FUZZED, fuzzed_ipc) == 0) {
        register_end(r, NET_CLIENT, 11, 16, 1);
        register_end(r, IPC_CLIENT, 3, 0, 2);
        if (preregistered) register_end(r, FUZZED, 11, 17, 1);
        drain_ends();
        nobody_reads = (int)(size & 4);
        size_t at = 0;
        for (size_t i = size % NPIECES; at < size; i++) {
            size_t n = PIECES[i % NPIECES];
            if (n > size - at) n = size - at;
            feed(r, FUZZED, data + at, n);
            at += n;
            turn(r);
            if (!nobody_reads && i % 3) drain_ends();
        }
        nobody_reads = 0;
        drain_ends();
        if (ends[FUZZED] >= 0) shutdown(ends[FUZZED], SHUT_WR);   /* end of stream */
        turn(r);
        drain_ends();
    }
    for (int k = 0; k < NCONN; k++)
        if (ends[k] >= 0) close(ends[k]);
    disconnect_all(r);
    return 0;
}
