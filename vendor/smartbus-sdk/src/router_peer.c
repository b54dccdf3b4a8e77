/*
 * router_peer.c - the bytes of the router's connections: accept new ones
 * (or close them at once: too many, no descriptor left), read into their in
 * buffers (heads over the size limit refused), write their out buffers,
 * drain refused ones, close and free them.  What the bytes mean is
 * router_route.c's; these functions report a broken connection to their
 * caller instead of disconnecting it themselves (a disconnect involves the
 * registration).
 */
#include "platform.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "router_internal.h"

#define RT_OUT_KEEP          ((size_t)4 << 20)    /* empty out buffers above this are freed */
#define RT_ACCEPT_BATCH      64
#define RT_ACCEPT_BACKOFF_MS 100                  /* after EMFILE and the like */
#define RT_DRAIN_CHUNK       4096

/* ---- accept --------------------------------------------------------------- */

/* closes a newcomer at once (too many connections, or none allowed) */
static void reject(smartbus_router *r, int fd, const char *why)
{
    sb_trace("router: rejected fd %d: %s", fd, why);
    /* counted before the close: a peer that sees its connection closed
     * then finds it in the router's counters */
    ST_ADD(r, rejected_connections, 1);
    close(fd);
}

/* No descriptor is left: gives up the spare one to accept the first
 * pending newcomer and close it (a clean close instead of a wait in the
 * backlog), then takes the spare back.  1 when one was closed, 0 when none
 * was pending, -1 when that did not work (no spare, or it was taken). */
static int reject_without_fd(smartbus_router *r, int lfd)
{
    if (r->spare_fd < 0) return -1;
    close(r->spare_fd);
    int fd = accept(lfd, NULL, NULL);
    int none_pending = fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    if (fd >= 0) reject(r, fd, "no file descriptor left");
    r->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0 ? 1 : none_pending ? 0 : -1;
}

void sb_peer_accept(smartbus_router *r, int lfd, int ipc)
{
    for (int k = 0; k < RT_ACCEPT_BATCH; k++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        int fd = accept(lfd, (struct sockaddr *)&sa, &salen);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EMFILE || errno == ENFILE) {
                int rc = reject_without_fd(r, lfd);
                if (rc > 0) continue;
                if (rc == 0) return;
            }
            sb_trace("router: accept: %s", strerror(errno));
            r->accept_pause_until = r->now + RT_ACCEPT_BACKOFF_MS;
            return;
        }
        if (r->npeers >= r->max_conns) {
            reject(r, fd, "too many connections");
            continue;
        }
        if (sb_peer_adopt(r, fd, ipc, (struct sockaddr *)&sa, salen) != 0) return;
    }
}

int sb_peer_adopt(smartbus_router *r, int fd, int ipc, const struct sockaddr *sa,
                  socklen_t salen)
{
    if (sb_set_nonblock(fd) != 0) {
        close(fd);
        return 0;                     /* this one is lost, the next may work */
    }
    if (!ipc) sb_set_nodelay(fd);
    sb_socket_nosigpipe(fd);
    if (r->npeers == r->cappeers) {
        size_t cap = r->cappeers ? r->cappeers * 2 : 16;
        rt_peer **np = realloc(r->peers, cap * sizeof *np);
        if (!np) {
            close(fd);
            return -1;
        }
        r->peers = np;
        r->cappeers = cap;
    }
    rt_peer *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->ipc = (uint8_t)ipc;
    c->deadline.peer = c->stall.peer = c->writer.peer = c->paused.peer = c->idle.peer = c;
    rt_list_init(&c->blocked_senders);
    if (sb_peer_watch(r, c) != 0) {
        sb_trace("router: fd %d not watched: %s", fd, strerror(errno));
        sb_peer_free(c);
        return 0;                     /* this one is lost, the next may work */
    }
    c->register_by = r->now + r->register_ms;
    rt_list_push(&r->registering, &c->deadline);
    sb_monitor_accepted(c, sa, salen);
    r->peers[r->npeers++] = c;
    ST_ADD(r, accepted, 1);
    sb_trace("router: accepted fd %d (%s)", fd, ipc ? "ipc" : "tcp");
    return 0;
}

/* ---- input ---------------------------------------------------------------- */

const char *sb_peer_bad_head(smartbus_router *r)
{
    ST_ADD(r, protocol_errors, 1);
    return "bad packet head or packet over the size limit";
}

int sb_peer_read(smartbus_router *r, rt_peer *c, const char **why)
{
    sb_buf *b = &c->in;
    if (b->cap == 0) sb_buf_swap(b, &r->spare_in);    /* none (or none left): the spare */
    if (b->off > 0) sb_buf_compact(b);
    size_t want = RT_READ_MIN;
    if (b->len >= SBW_HEAD_SIZE) {
        sbw_head h;
        if (rt_get_head(r, c, b->p, b->len, &h) != SBW_OK) {
            *why = sb_peer_bad_head(r);
            return -1;
        }
        if ((size_t)h.packet_size > b->len + want) want = (size_t)h.packet_size - b->len;
    }
    if (sb_buf_reserve(b, want) != 0) {
        *why = "out of memory";
        return -1;
    }
    ssize_t n = read(c->fd, b->p + b->len, b->cap - b->len);
    if (n > 0) {
        b->len += (size_t)n;
        c->mon.bytes_in += (uint64_t)n;
        return 1;
    }
    if (n == 0) {
        *why = "end of stream";
        return -1;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        *why = strerror(errno);
        return -1;
    }
    return 0;
}

void sb_peer_input_empty(smartbus_router *r, rt_peer *c)
{
    sb_buf *b = &c->in;
    b->off = b->len = 0;
    if (r->spare_in.cap == 0 && b->cap <= RT_SPARE_IN_MAX) sb_buf_swap(b, &r->spare_in);
    else sb_buf_free(b);
}

int sb_peer_input_ready(const smartbus_router *r, const rt_peer *c)
{
    if (c->dead || c->closing || c->blocked_on) return 0;
    size_t avail = c->in.len - c->in.off;
    if (avail < SBW_HEAD_SIZE) return 0;
    sbw_head h;
    if (rt_get_head(r, c, c->in.p + c->in.off, avail, &h) != SBW_OK) return 1;
    return (size_t)h.packet_size <= avail;
}

/* Input is discarded until the peer closes, so that close() does not turn
 * into a reset that could destroy the ack in flight. */
int sb_peer_drain(rt_peer *c)
{
    uint8_t tmp[RT_DRAIN_CHUNK];
    ssize_t n = read(c->fd, tmp, sizeof tmp);
    if (n == 0) return -1;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
    return 0;
}

/* ---- paused senders ---------------------------------------------------------- */

void sb_peer_pause(rt_peer *s, rt_peer *full)
{
    s->blocked_on = full;
    rt_list_push(&full->blocked_senders, &s->paused);
}

/* the senders paused on d go on (d drained or closed): listed in r->resumed */
static void resume_senders(smartbus_router *r, rt_peer *d)
{
    rt_peer *s;
    while ((s = rt_list_first(&d->blocked_senders)) != NULL) {
        s->blocked_on = NULL;
        rt_list_push(&r->resumed, &s->paused);
    }
}

int sb_peer_watch(smartbus_router *r, rt_peer *c)
{
    unsigned want = 0;
    if ((!c->closing && !c->blocked_on) || c->draining) want |= SB_POLL_IN;
    if (out_pending(c) > 0) want |= SB_POLL_OUT;
    if (c->dead || want == c->interest) return 0;   /* a new one wants input: never 0 */
    if (sb_poller_set(&r->poller, c->fd, want, c) != 0) return -1;
    c->interest = want;
    return 0;
}

/* ---- output --------------------------------------------------------------- */

int sb_peer_write(smartbus_router *r, rt_peer *c, const char **why)
{
    sb_buf *b = &c->out;
    size_t n = b->len - b->off;
    if (n == 0) return 0;
    ssize_t w = sb_send_nosignal(c->fd, b->p + b->off, n);
    if (w > 0) {
        b->off += (size_t)w;
        c->mon.bytes_out += (uint64_t)w;
        if (b->off == b->len) {
            b->off = b->len = 0;
            sb_buf_trim(b, RT_OUT_KEEP);
            if (b->cap > RT_OUT_IDLE_KEEP && !c->idle.next) {
                c->idle_at = r->now + RT_OUT_IDLE_MS;
                rt_list_push(&r->idle_out, &c->idle);
            }
        }
        if (c->congested && out_pending(c) < r->max_out / 2) {
            c->congested = 0;
            rt_node_unlink(&c->stall);
            resume_senders(r, c);
        }
    } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        *why = strerror(errno);
        return -1;
    }
    return 0;
}

/* ---- closing and freeing ------------------------------------------------------ */

void sb_peer_close(smartbus_router *r, rt_peer *c, const char *why)
{
    c->dead = 1;
    sb_trace("router: close fd %d (%u/%u/%u): %s", c->fd, c->type, c->unit, c->client, why);
    if (c->fd >= 0) {
        sb_poller_forget(&r->poller, c->fd);
        close(c->fd);
    }
    c->fd = -1;
    ST_ADD(r, closed, 1);
    r->ndead++;
    rt_node_unlink(&c->deadline);
    rt_node_unlink(&c->stall);
    rt_node_unlink(&c->writer);
    rt_node_unlink(&c->paused);
    rt_node_unlink(&c->idle);
    c->blocked_on = NULL;
    resume_senders(r, c);
}

void sb_peer_free(rt_peer *c)
{
    if (c->fd >= 0) close(c->fd);
    sb_buf_free(&c->in);
    sb_buf_free(&c->out);
    free(c);
}

void sb_peers_sweep(smartbus_router *r)
{
    if (r->ndead == 0) return;
    r->ndead = 0;
    size_t j = 0;
    for (size_t i = 0; i < r->npeers; i++) {
        rt_peer *c = r->peers[i];
        if (c->dead) sb_peer_free(c);
        else r->peers[j++] = c;
    }
    r->npeers = j;
}
