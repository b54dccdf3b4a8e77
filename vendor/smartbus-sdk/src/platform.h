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

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
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

#endif /* SB_PLATFORM_H */
