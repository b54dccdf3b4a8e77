/*
 * platform.c - what differs between the systems the SDK runs on: the
 * wake-up channel, SIGPIPE suppression, timed waits on the monotonic clock,
 * the process at the other end of a Unix socket, the poller of the router's
 * loop (epoll, or poll()), and the report of which of them a build chose
 * (platform.h says how).
 */
/* this file alone asks glibc for its GNU extensions: struct ucred, the
 * answer of SO_PEERCRED (the other files stay with POSIX.1-2008) */
#define _GNU_SOURCE 1
#include "platform.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#ifdef SB_USE_EVENTFD
#include <sys/eventfd.h>
#endif
#ifdef SB_USE_EPOLL
#include <sys/epoll.h>
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

#ifdef SB_USE_EPOLL
#define SB_POLLER_NAME "epoll"
#else
#define SB_POLLER_NAME "poll"
#endif

const char *smartbus_platform(void)
{
    return "build=" SB_BUILD_NAME " waker=" SB_WAKER_NAME " nosigpipe=" SB_NOSIGPIPE_NAME
           " timedwait=" SB_TIMEDWAIT_NAME " poller=" SB_POLLER_NAME;
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

/* ---- the poller ------------------------------------------------------------ */

#ifdef SB_USE_EPOLL

int sb_poller_open(sb_poller *p)
{
    memset(p, 0, sizeof *p);
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    return p->epfd >= 0 ? 0 : -1;
}

void sb_poller_close(sb_poller *p)
{
    if (p->epfd >= 0) close(p->epfd);
    p->epfd = -1;
}

int sb_poller_set(sb_poller *p, int fd, unsigned events, void *tag)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = ((events & SB_POLL_IN) ? EPOLLIN : 0u) | ((events & SB_POLL_OUT) ? EPOLLOUT : 0u);
    ev.data.ptr = tag;
    if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
    if (errno != ENOENT) return -1;
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev);
}

void sb_poller_forget(sb_poller *p, int fd)
{
    struct epoll_event ev;            /* ignored, but kernels before 2.6.9 wanted one */
    memset(&ev, 0, sizeof ev);
    (void)epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, &ev);
}

int sb_poller_wait(sb_poller *p, sb_poll_event *out, int timeout_ms)
{
    struct epoll_event evs[SB_POLL_BATCH];
    int n = epoll_wait(p->epfd, evs, SB_POLL_BATCH, timeout_ms);
    for (int i = 0; i < n; i++) {
        uint32_t e = evs[i].events;
        out[i].tag = evs[i].data.ptr;
        out[i].events = ((e & EPOLLIN) ? SB_POLL_IN : 0u) | ((e & EPOLLOUT) ? SB_POLL_OUT : 0u) |
                        ((e & (EPOLLERR | EPOLLHUP)) ? SB_POLL_ERR : 0u);
    }
    return n;
}

#else /* poll(): the watched set in an array, a slot per descriptor */

int sb_poller_open(sb_poller *p)
{
    memset(p, 0, sizeof *p);
    p->epfd = -1;
    return 0;
}

void sb_poller_close(sb_poller *p)
{
    free(p->fds);
    free(p->tags);
    free(p->slot_of);
    memset(p, 0, sizeof *p);
    p->epfd = -1;
}

/* room for descriptor fd in slot_of[] and for one more slot */
static int poller_grow(sb_poller *p, int fd)
{
    if ((size_t)fd >= p->cap_slot_of) {
        size_t cap = p->cap_slot_of ? p->cap_slot_of : 64;
        while (cap <= (size_t)fd) cap *= 2;
        int *ns = realloc(p->slot_of, cap * sizeof *ns);
        if (!ns) return -1;
        for (size_t i = p->cap_slot_of; i < cap; i++) ns[i] = -1;
        p->slot_of = ns;
        p->cap_slot_of = cap;
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        struct pollfd *nf = realloc(p->fds, cap * sizeof *nf);
        if (!nf) return -1;
        p->fds = nf;
        void **nt = realloc(p->tags, cap * sizeof *nt);
        if (!nt) return -1;
        p->tags = nt;
        p->cap = cap;
    }
    return 0;
}

int sb_poller_set(sb_poller *p, int fd, unsigned events, void *tag)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    int slot = (size_t)fd < p->cap_slot_of ? p->slot_of[fd] : -1;
    if (slot < 0) {
        if (poller_grow(p, fd) != 0) {
            errno = ENOMEM;
            return -1;
        }
        slot = (int)p->n++;
        p->slot_of[fd] = slot;
        p->fds[slot].fd = fd;
    }
    p->fds[slot].events = (short)(((events & SB_POLL_IN) ? POLLIN : 0) |
                                  ((events & SB_POLL_OUT) ? POLLOUT : 0));
    p->fds[slot].revents = 0;
    p->tags[slot] = tag;
    return 0;
}

void sb_poller_forget(sb_poller *p, int fd)
{
    if (fd < 0 || (size_t)fd >= p->cap_slot_of || p->slot_of[fd] < 0) return;
    size_t slot = (size_t)p->slot_of[fd], last = p->n - 1;
    p->slot_of[fd] = -1;
    if (slot != last) {               /* the last one takes its place */
        p->fds[slot] = p->fds[last];
        p->tags[slot] = p->tags[last];
        p->slot_of[p->fds[slot].fd] = (int)slot;
    }
    p->n--;
}

int sb_poller_wait(sb_poller *p, sb_poll_event *out, int timeout_ms)
{
    int ready = poll(p->fds, (nfds_t)p->n, timeout_ms);
    if (ready <= 0) return ready;
    /* the scan starts where the last one stopped: with more than a batch
     * ready, every descriptor gets its turn */
    int k = 0;
    size_t n = p->n, i = p->start < n ? p->start : 0;
    for (size_t seen = 0; seen < n && k < SB_POLL_BATCH; seen++, i = i + 1 < n ? i + 1 : 0) {
        short re = p->fds[i].revents;
        if (!re) continue;
        out[k].tag = p->tags[i];
        out[k++].events = ((re & POLLIN) ? SB_POLL_IN : 0u) | ((re & POLLOUT) ? SB_POLL_OUT : 0u) |
                          ((re & (POLLERR | POLLHUP | POLLNVAL)) ? SB_POLL_ERR : 0u);
    }
    p->start = i;
    return k;
}

#endif
