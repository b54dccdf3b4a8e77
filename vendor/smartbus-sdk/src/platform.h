/*
 * platform.h - the SDK's platform choices, in one place.  Every source file
 * of the SDK includes it first, before any system header: it sets the
 * feature-test macros, then picks, by feature test (never by the name of
 * the system alone), between each Linux fast path and its POSIX fallback:
 *
 *   choice      fast path                     fallback (macOS, the BSDs)
 *   waker       eventfd                       a non-blocking pipe
 *   nosigpipe   send(..., MSG_NOSIGNAL)       SO_NOSIGPIPE on the socket
 *   timedwait   condition variable timed on   CLOCK_REALTIME deadlines worked
 *               CLOCK_MONOTONIC               out from the monotonic clock
 *   poller      epoll (interest kept by the   poll() over an array the poller
 *               kernel: a wait costs what     keeps (a wait scans every
 *               is ready)                     descriptor)
 *
 * SO_NOSIGPIPE is set wherever it exists and MSG_NOSIGNAL passed wherever
 * it exists (recent macOS has both): either one keeps a write to a closed
 * peer from raising SIGPIPE.  Built with -DSB_PORTABLE (setup.py: SMARTBUS_PORTABLE=1) no fast
 * path is taken, so the fallbacks run on Linux too; .ci/portable runs the
 * whole suite so.  smartbus_platform() reports the choices of a build.
 */
#ifndef SB_PLATFORM_H
#define SB_PLATFORM_H

/* The SDK is written against POSIX.1-2008; on macOS, _DARWIN_C_SOURCE keeps
 * the extensions (SO_NOSIGPIPE) visible beside it.  Elsewhere it means
 * nothing. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#ifndef _DARWIN_C_SOURCE
#define _DARWIN_C_SOURCE 1
#endif

#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define SB_HIDDEN __attribute__((visibility("hidden")))

/* ---- the choices ------------------------------------------------------- */
#ifndef SB_PORTABLE
#  ifdef __has_include
#    if __has_include(<sys/eventfd.h>)
#      define SB_USE_EVENTFD 1
#    endif
#  endif
#  ifdef MSG_NOSIGNAL
#    define SB_USE_MSG_NOSIGNAL 1
#  endif
/* the POSIX option that brings pthread_condattr_setclock (macOS: -1) */
#  if defined(_POSIX_CLOCK_SELECTION) && _POSIX_CLOCK_SELECTION > 0
#    define SB_USE_COND_MONOTONIC 1
#  endif
#  ifdef __has_include
#    if __has_include(<sys/epoll.h>)
#      define SB_USE_EPOLL 1
#    endif
#  endif
#endif

/* ---- no SIGPIPE on a closed peer ---------------------------------------- */
/* Every socket the SDK writes to goes through sb_socket_nosigpipe() once
 * (SO_NOSIGPIPE where it exists) and is written with sb_send_nosignal().
 * Where neither mechanism exists a write to a closed peer raises SIGPIPE,
 * which Python ignores (C programs must ignore it themselves). */
SB_HIDDEN void sb_socket_nosigpipe(int fd);
/* the process at the other end of a Unix-domain socket (Linux SO_PEERCRED,
 * macOS LOCAL_PEERPID), or -1 where the system does not tell */
SB_HIDDEN long sb_peer_pid(int fd);

static inline ssize_t sb_send_nosignal(int fd, const void *p, size_t n)
{
#ifdef SB_USE_MSG_NOSIGNAL
    return send(fd, p, n, MSG_NOSIGNAL);
#else
    return send(fd, p, n, 0);
#endif
}

/* the same for n pieces, written in order with one call */
static inline ssize_t sb_sendv_nosignal(int fd, const struct iovec *iov, int n)
{
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = (struct iovec *)iov;      /* sendmsg() does not write it */
    m.msg_iovlen = n;
#ifdef SB_USE_MSG_NOSIGNAL
    return sendmsg(fd, &m, MSG_NOSIGNAL);
#else
    return sendmsg(fd, &m, 0);
#endif
}

/* ---- wake-up channel ---------------------------------------------------- */
/* Wakes a thread sleeping in poll() (rfd is polled for input). */
typedef struct sb_waker { int rfd, wfd; } sb_waker;
SB_HIDDEN int  sb_waker_open(sb_waker *w);
SB_HIDDEN void sb_waker_close(sb_waker *w);
SB_HIDDEN void sb_waker_wake(sb_waker *w);    /* async-signal-safe */
SB_HIDDEN void sb_waker_drain(sb_waker *w);

/* ---- timed waits on the monotonic clock --------------------------------- */
/* pthread_cond_init for a condition variable that sb_cond_wait_until()
 * waits on: 0 or an error number. */
SB_HIDDEN int sb_cond_init_timed(pthread_cond_t *cond);
/* Waits on cond (mutex held) until signalled or until the monotonic time
 * sb_now_ms() reaches deadline_ms; ETIMEDOUT once it has, else 0 (which
 * may be spurious: the caller checks its condition and calls again).
 * The fallback waits for a CLOCK_REALTIME deadline worked out from the
 * time left on the monotonic clock at each call: a step of the wall clock
 * makes one wait return early (the caller just waits again) or, stepped
 * back, late by the size of the step. */
SB_HIDDEN int sb_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex,
                                 int64_t deadline_ms);

/* ---- readiness of many descriptors (the router's loop) ------------------ */
/* A set of descriptors, each with the readiness it waits for and a tag
 * handed back with its events; level-triggered (a descriptor is reported
 * at every wait for as long as it is ready).  The interest is kept between
 * waits: a caller changes it only when it changes (sb_poller_set), so that
 * with epoll a wait costs what is ready, not what is watched. */
#define SB_POLL_IN  1u
#define SB_POLL_OUT 2u
#define SB_POLL_ERR 4u                /* reported only: error or hang-up */
#define SB_POLL_BATCH 256             /* events handed out per wait at most */

typedef struct sb_poll_event {
    void *tag;
    unsigned events;                  /* SB_POLL_* */
} sb_poll_event;

typedef struct sb_poller {
    int epfd;                         /* epoll: its descriptor; else -1 */
    /* poll() fallback: the watched set, and each descriptor's slot in it */
    struct pollfd *fds;
    void **tags;
    size_t n, cap;
    int *slot_of;                     /* by descriptor: its slot, -1 when not watched */
    size_t cap_slot_of;
    size_t start;                     /* where the next scan begins (fairness) */
} sb_poller;

/* 0, or -1 with errno set */
SB_HIDDEN int  sb_poller_open(sb_poller *p);
SB_HIDDEN void sb_poller_close(sb_poller *p);
/* Watches fd for `events` (SB_POLL_IN/OUT, 0: errors only), or changes
 * what it waits for; tag comes back with its events.  0, or -1 (memory,
 * or the system refused) with errno set. */
SB_HIDDEN int  sb_poller_set(sb_poller *p, int fd, unsigned events, void *tag);
/* Stops watching fd (before it is closed). */
SB_HIDDEN void sb_poller_forget(sb_poller *p, int fd);
/* Waits at most timeout_ms (-1: no limit) for readiness; fills out[] (at
 * most SB_POLL_BATCH): the number of events, or -1 with errno set. */
SB_HIDDEN int  sb_poller_wait(sb_poller *p, sb_poll_event *out, int timeout_ms);

#endif /* SB_PLATFORM_H */
