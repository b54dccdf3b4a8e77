/*
 * rtturn.c - the router's forwarding cost in instructions, for callgrind:
 * the real run loop (sb_router_turn, as smartbus_router_run calls it)
 * forwarding data packets from one client to another over socketpairs,
 * next to IDLE registered clients that send nothing.  Built like the
 * router's fuzz harness (the SDK's sources, its internal headers) and run
 * by benchmarks/run.py as
 *
 *   valgrind --tool=callgrind --toggle-collect=measured_turn \
 *     rtturn SIZE BATCH IDLE MESSAGES
 *
 * so that only the turns that forward count (not the set-up): the
 * instructions of the router's own code and of the C library it calls,
 * not the kernel's (a syscall counts as the few instructions around it).
 * Each round writes BATCH packets of SIZE payload bytes on the sender's
 * socket, then turns until the receiver has read them all.  Prints JSON
 * {"messages", "turns"}; instructions per forwarded message = callgrind's
 * total / messages.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "router_internal.h"
#include "rtclients.h"

#define ROUTER_UNIT 3
#define SOCKET_BUF  (1 << 20)      /* asked for: room for one batch (the kernel may give less) */

static smartbus_router *router;
static int *ends;                  /* the harness's end of each connection */
static int nends;
static uint8_t rbuf[1 << 18];

static void fail(const char *what)
{
    fprintf(stderr, "rtturn: %s\n", what);
    exit(1);
}

static void turn(void)
{
    int timeout = 0;
    if (sb_router_turn(router, &timeout) != 0) fail("a turn failed");
}

/* the turns that are counted (callgrind --toggle-collect=measured_turn) */
__attribute__((noinline)) void measured_turn(void);
__attribute__((noinline)) void measured_turn(void)
{
    turn();
}

/* reads what the router sent to end k: bytes read */
static size_t drain(int k)
{
    size_t got = 0;
    ssize_t n;
    while ((n = recv(ends[k], rbuf, sizeof rbuf, MSG_DONTWAIT)) > 0) got += (size_t)n;
    if (n == 0) fail("the router closed a connection");
    return got;
}

/* writes n bytes on end k; may_turn: turns while its buffer is full (the
 * set-up), else the bytes must fit (a measured batch) */
static void send_all(int k, const uint8_t *p, size_t n, int may_turn)
{
    while (n) {
        ssize_t w = send(ends[k], p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EAGAIN && may_turn) {
            turn();
        } else {
            fail("send (a batch must fit in the socket buffer)");
        }
    }
}

/* registered client k (rtclients.h) on a new socketpair */
static void add_client(int k)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) fail("socketpair");
    int size = SOCKET_BUF;
    for (int i = 0; i < 2; i++) {
        (void)setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        (void)setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    if (sb_peer_adopt(router, sv[0], 0, NULL, 0) != 0) fail("adopt");
    ends[k] = sv[1];
    static uint8_t pkt[SBW_REG_NET_A_SIZE];
    int n = rt_registration(pkt, k, NULL);
    if (n <= 0) fail("registration");
    send_all(k, pkt, (size_t)n, 1);
    turn();
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: rtturn SIZE BATCH IDLE MESSAGES\n");
        return 2;
    }
    int size = atoi(argv[1]), batch = atoi(argv[2]), idle = atoi(argv[3]);
    long messages = atol(argv[4]);
    if (size < 0 || size > (1 << 20) || batch < 1 || idle < 0 || idle > 8000) fail("arguments");

    smartbus_router_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.port = -1;
    cfg.unit_id = ROUTER_UNIT;
    cfg.max_connections = idle + 2;
    char err[256];
    if (smartbus_router_new(&cfg, &router, err, sizeof err) != 0) fail(err);

    /* clients 0 (sender) and 1 (receiver), then the idle ones; what the
     * router says about arrivals is read until it is quiet */
    nends = idle + 2;
    ends = calloc((size_t)nends, sizeof *ends);
    if (!ends) fail("memory");
    for (int k = 0; k < nends; k++) {
        add_client(k);
        if (k % 64 == 63)
            for (int j = 0; j <= k; j++) drain(j);
    }
    for (int quiet = 0; quiet < 3;) {
        size_t got = 0;
        turn();
        for (int k = 0; k < nends; k++) got += drain(k);
        quiet = got ? 0 : quiet + 1;
    }

    /* the batch: BATCH data packets from client 0 to client 1 */
    size_t frame = SBW_HEAD_SIZE + (size_t)size;
    uint8_t *pkts = malloc(frame * (size_t)batch), *payload = calloc(1, (size_t)size + 1);
    if (!pkts || !payload) fail("memory");
    for (int i = 0; i < batch; i++) {
        sbw_head h = rt_head(0, 1, 1, SMARTBUS_CMDTYPE_USER);
        if (sbw_put_packet(pkts + (size_t)i * frame, frame, &h, payload, size, SBW_PAD_NONE) < 0)
            fail("packet");
    }
    long sent = 0, turns = 0;
    while (sent < messages) {
        send_all(0, pkts, frame * (size_t)batch, 0);
        size_t want = frame * (size_t)batch, got = 0;
        while (got < want) {
            measured_turn();
            turns++;
            got += drain(1);
        }
        if (got != want) fail("the receiver got more than was sent");
        sent += batch;
    }
    printf("{\"messages\": %ld, \"turns\": %ld}\n", sent, turns);
    for (int k = 0; k < nends; k++) close(ends[k]);
    smartbus_router_free(router);
    free(ends);
    free(pkts);
    free(payload);
    return 0;
}
