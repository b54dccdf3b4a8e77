/*
 * sink_wait_test.c - the bounded wait of smartbus_sink_free (the timed wait
 * of the SDK's src/platform.h, on CLOCK_MONOTONIC or, in a portable build,
 * on CLOCK_REALTIME deadlines): a callback thread that ends in time is
 * joined at once; one stuck in its last call is given up after timeout_ms,
 * not earlier and not much later, and frees the sink itself once it ends.
 *
 * usage: sink_wait_test.  Prints "OK", or "FAIL <reason>" and exits 1.
 * main() ends with pthread_exit: the process (and LeakSanitizer's check)
 * ends once the given-up thread has freed its sink.
 */
#define _POSIX_C_SOURCE 200809L
#include "c_test.h"

#include "smartbus_ext.h"

#define GIVE_UP_MS  200           /* smartbus_sink_free's timeout */
#define STUCK_MS    2000          /* how long the stuck callback blocks */
#define LATE_MS     1500          /* a give-up after this is not "at the timeout" */

static int stuck_callback_done;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void quick_callback(void *arg, const smartbus_event *events, int count)
{
    (void)arg;
    (void)events;
    (void)count;
}

/* blocks in the thread's last call (count -1), as a handler that hangs */
static void stuck_callback(void *arg, const smartbus_event *events, int count)
{
    (void)arg;
    (void)events;
    if (count != -1) return;
    struct timespec ts = { STUCK_MS / 1000, (long)(STUCK_MS % 1000) * 1000000L };
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&lock);
    stuck_callback_done = 1;
    pthread_mutex_unlock(&lock);
}

int main(void)
{
    smartbus_sink *s = smartbus_sink_new(quick_callback, NULL, 0);
    CHECK(s != NULL);
    int64_t t0 = now_ms();
    smartbus_sink_free(s, 5000);
    int64_t joined_after = now_ms() - t0;
    if (joined_after >= LATE_MS) FAIL("an idle sink took %lld ms to stop", (long long)joined_after);

    s = smartbus_sink_new(stuck_callback, NULL, 0);
    CHECK(s != NULL);
    t0 = now_ms();
    smartbus_sink_free(s, GIVE_UP_MS);
    int64_t gave_up_after = now_ms() - t0;
    /* the SDK's deadline is in whole milliseconds of the same clock */
    if (gave_up_after < GIVE_UP_MS - 1)
        FAIL("gave up after %lld ms, before its %d ms", (long long)gave_up_after, GIVE_UP_MS);
    if (gave_up_after >= LATE_MS)
        FAIL("gave up after %lld ms, long after its %d ms", (long long)gave_up_after, GIVE_UP_MS);
    pthread_mutex_lock(&lock);
    int early = stuck_callback_done;
    pthread_mutex_unlock(&lock);
    CHECK(!early);
    if (!wait_for(&stuck_callback_done, 1)) FAIL("the stuck callback never ended");
    printf("OK\n");
    fflush(stdout);
    pthread_exit(NULL);
}
