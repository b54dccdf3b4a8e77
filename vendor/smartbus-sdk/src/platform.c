/*
 * platform.c - what differs between the systems the SDK runs on: the
 * wake-up channel, SIGPIPE suppression, timed waits on the monotonic clock,
 * the process at the other end of a Unix socket, and the report of which of
 * them a build chose (platform.h says how).
 */
/* this file alone asks glibc for its GNU extensions: struct ucred, the
 * answer of SO_PEERCRED (the other files stay with POSIX.1-2008) */
#define _GNU_SOURCE 1
#include "platform.h"

#include <errno.h>
#include <sys/un.h>
#include <time.h>
#ifdef SB_USE_EVENTFD
#include <sys/eventfd.h>
#endif

#include "sb_internal.h"

#ifdef SB_PORTABLE
#define SB_BUILD_NAME "portable"
#else
#define SB_BUILD_NAME "native"
#endif

#ifdef SB_USE_EVENTFD
#define SB_WAKER_NAME "eventfd"
#else
#define SB_WAKER_NAME "pipe"
#endif

#if defined(SB_USE_MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
#define SB_NOSIGPIPE_NAME "MSG_NOSIGNAL+SO_NOSIGPIPE"
#elif defined(SB_USE_MSG_NOSIGNAL)
#define SB_NOSIGPIPE_NAME "MSG_NOSIGNAL"
#elif defined(SO_NOSIGPIPE)
#define SB_NOSIGPIPE_NAME "SO_NOSIGPIPE"
#else
#define SB_NOSIGPIPE_NAME "none"
#endif

#ifdef SB_USE_COND_MONOTONIC
#define SB_TIMEDWAIT_NAME "monotonic"
#define SB_COND_CLOCK CLOCK_MONOTONIC
#else
#define SB_TIMEDWAIT_NAME "realtime"
#define SB_COND_CLOCK CLOCK_REALTIME
#endif

const char *smartbus_platform(void)
{
    return "build=" SB_BUILD_NAME " waker=" SB_WAKER_NAME " nosigpipe=" SB_NOSIGPIPE_NAME
           " timedwait=" SB_TIMEDWAIT_NAME;
}

/* ---- no SIGPIPE ---------------------------------------------------------- */

void sb_socket_nosigpipe(int fd)
{
#ifdef SO_NOSIGPIPE
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#else
    (void)fd;
#endif
}

/* ---- wake-up channel ------------------------------------------------------ */

int sb_waker_open(sb_waker *w)
{
#ifdef SB_USE_EVENTFD
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd >= 0) {
        w->rfd = w->wfd = fd;
        return 0;
    }
#endif
    /* no pipe2() on macOS: the flags come right after (sb_set_nonblock
     * sets close-on-exec too) */
    int p[2];
    if (pipe(p) < 0) return -1;
    sb_set_nonblock(p[0]);
    sb_set_nonblock(p[1]);
    w->rfd = p[0];
    w->wfd = p[1];
    return 0;
}

void sb_waker_close(sb_waker *w)
{
    if (w->rfd >= 0) close(w->rfd);
    if (w->wfd >= 0 && w->wfd != w->rfd) close(w->wfd);
    w->rfd = w->wfd = -1;
}

void sb_waker_wake(sb_waker *w)
{
    int saved = errno;
    if (w->rfd == w->wfd) {
        uint64_t one = 1;               /* an eventfd takes 8 bytes */
        ssize_t r = write(w->wfd, &one, sizeof one);
        (void)r;
    } else {
        char c = 1;                     /* a full pipe is awake already */
        ssize_t r = write(w->wfd, &c, 1);
        (void)r;
    }
    errno = saved;
}

void sb_waker_drain(sb_waker *w)
{
    uint8_t tmp[64];
    while (read(w->rfd, tmp, sizeof tmp) > 0 && w->rfd != w->wfd) {
    }
}

/* ---- timed waits ----------------------------------------------------------- */

int sb_cond_init_timed(pthread_cond_t *cond)
{
#ifdef SB_USE_COND_MONOTONIC
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc != 0) return rc;
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0) rc = pthread_cond_init(cond, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
#else
    return pthread_cond_init(cond, NULL);    /* timed on CLOCK_REALTIME */
#endif
}

int sb_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex, int64_t deadline_ms)
{
    int64_t left = deadline_ms - sb_now_ms();
    if (left <= 0) return ETIMEDOUT;
    struct timespec at;
    clock_gettime(SB_COND_CLOCK, &at);
    at.tv_sec += (time_t)(left / 1000);
    at.tv_nsec += (long)(left % 1000) * 1000000L;
    if (at.tv_nsec >= 1000000000L) {
        at.tv_sec++;
        at.tv_nsec -= 1000000000L;
    }
    (void)pthread_cond_timedwait(cond, mutex, &at);
    return sb_now_ms() >= deadline_ms ? ETIMEDOUT : 0;
}

long sb_peer_pid(int fd)
{
#if defined(SO_PEERCRED)
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) return (long)cred.pid;
#elif defined(LOCAL_PEERPID)
    pid_t pid;
    socklen_t len = sizeof pid;
    if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &pid, &len) == 0) return (long)pid;
#endif
    (void)fd;
    return -1;
}
