/*
 * c_test.h - what the C test programs share: FAIL / CHECK, which report to
 * tests/test_c_api.py on stdout and exit, and a bounded wait for a counter
 * that the SDK's callback thread raises under `lock`, and (when
 * smartbus_ext.h is included first) a started NET client.  Include after
 * defining _POSIX_C_SOURCE.
 */
#ifndef C_TEST_H
#define C_TEST_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 10000             /* generous: the test machine may be loaded */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

#define FAIL(...)                                                                          \
    do {                                                                                   \
        printf("FAIL ");                                                                   \
        printf(__VA_ARGS__);                                                               \
        printf("\n");                                                                      \
        fflush(stdout);                                                                    \
        exit(1);                                                                           \
    } while (0)
#define CHECK(cond) do { if (!(cond)) FAIL("%s (line %d)", #cond, __LINE__); } while (0)

/* waits up to WAIT_MS for *flag >= want; 0 when it did not get there */
static inline int wait_for(int *flag, int want)
{
    for (int waited = 0; waited < WAIT_MS; waited += 10) {
        pthread_mutex_lock(&lock);
        int v = *flag;
        pthread_mutex_unlock(&lock);
        if (v >= want) return 1;
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* The exchange with tests/test_c_api.py: reports CONNECTED, waits for its
 * go-ahead (it has made the peer send 3 messages), then for the 3 messages,
 * counted in *received, the first of them copied to `first`. */
static inline void report_connected_and_receive(int *received, const char *first)
{
    printf("CONNECTED\n");
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin)) FAIL("no go-ahead from the test");
    if (!wait_for(received, 3)) FAIL("got fewer than 3 messages from the peer");
    pthread_mutex_lock(&lock);
    int first_ok = strcmp(first, "reply-1") == 0;
    pthread_mutex_unlock(&lock);
    CHECK(first_ok);
}

#ifdef SMARTBUS_EXT_H
/* a started NET client (type 11, no slave link) of the router at 127.0.0.1:port */
static inline smartbus_client *start_net_client(int unit, int client_id, int port,
                                                smartbus_sink *sink)
{
    smartbus_client_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.kind = SMARTBUS_KIND_NET;
    cfg.unit_id = unit;
    cfg.client_id = client_id;
    cfg.client_type = 11;
    cfg.master_ip = "127.0.0.1";
    cfg.master_port = port;
    cfg.slave_port = 0xFFFF;
    smartbus_client *c = NULL;
    CHECK(smartbus_client_new(&cfg, sink, &c) == 0);
    CHECK(smartbus_client_start(c) == 0);
    return c;
}
#endif

#endif /* C_TEST_H */
