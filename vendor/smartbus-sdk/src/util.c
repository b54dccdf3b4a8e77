/*
 * util.c - small helpers for the rest of the SDK: growable byte buffers,
 * string copies, the monotonic clock, random numbers, socket flags and trace
 * output.
 */
#include "platform.h"
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sb_internal.h"

int sb_buf_reserve(sb_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return 0;
    size_t need = b->len + extra;
    if (need < b->len) return -1;                 /* overflow */
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) { cap = need; break; }
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

void sb_buf_free(sb_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->off = b->cap = 0;
}

void sb_buf_compact(sb_buf *b)
{
    if (b->off == 0) return;
    size_t rest = b->len - b->off;
    if (rest) memmove(b->p, b->p + b->off, rest);
    b->len = rest;
    b->off = 0;
}

void sb_buf_trim(sb_buf *b, size_t keep)
{
    if (b->len == 0 && b->cap > keep) sb_buf_free(b);
}

void sb_copy_str(char *dst, size_t size, const char *src)
{
    size_t n = 0;
    if (src) {
        while (n + 1 < size && src[n]) n++;
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

int64_t sb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint32_t sb_random_u32(void)
{
    /* /dev/urandom rather than getrandom(): the wheels target glibc 2.17,
     * which has no getrandom() */
    uint32_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, &v, sizeof v) : -1;
    if (fd >= 0) close(fd);
    if (n == (ssize_t)sizeof v) return v;
    /* no /dev (a bare chroot): not secret, but different per process and call */
    sb_trace("no /dev/urandom: random numbers from the clock and the process id");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint32_t)ts.tv_nsec * 2654435761u ^ (uint32_t)ts.tv_sec ^ (uint32_t)getpid() << 16;
}

int sb_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL, 0);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -1;
    int fdfl = fcntl(fd, F_GETFD, 0);
    if (fdfl >= 0) (void)fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC);
    return 0;
}

void sb_set_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int sb_trace_enabled(void)
{
    static int enabled = -1;
    int e = sb_relaxed(&enabled);
    if (e < 0) {
        const char *v = getenv("SMARTBUS_TRACE");
        e = v && *v && strcmp(v, "0") != 0;
        __atomic_store_n(&enabled, e, __ATOMIC_RELAXED);
    }
    return e;
}

void sb_trace(const char *fmt, ...)
{
    if (!sb_trace_enabled()) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[smartbus %lld] %s\n", (long long)sb_now_ms(), line);
}
