/*
 * router.c - the router's life: checks the configuration, opens the
 * listeners (TCP; the Unix socket, replacing a stale one but never a live
 * one or a file that is not a socket), frees everything (and unlinks only
 * the socket it bound), and answers the port and statistics getters.  The
 * router itself is described in router_internal.h.
 */
#include "platform.h"
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "router_internal.h"

#define RT_DEFAULT_HOST      "127.0.0.1"
#define RT_BACKLOG           128

/* ---- small helpers ------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- listeners ------------------------------------------------------------- */

static int open_tcp(smartbus_router *r, const char *host, int port, char *err, size_t errlen)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        set_err(err, errlen, "cannot resolve listen address %s: %s", host, gai_strerror(gai));
        return SMARTBUS_ERR_ARGUMENT;
    }
    int saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, RT_BACKLOG) != 0 ||
            sb_set_nonblock(fd) != 0) {
            saved = errno;
            close(fd);
            continue;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int real = port;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_INET) real = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            else if (ss.ss_family == AF_INET6) real = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        r->tcp_fd = fd;
        r->port = real;
        freeaddrinfo(res);
        return 0;
    }
    freeaddrinfo(res);
    set_err(err, errlen, "cannot listen on %s port %d: %s", host, port,
            strerror(saved ? saved : EADDRNOTAVAIL));
    return SMARTBUS_ERR_OTHER;
}

static int open_ipc(smartbus_router *r, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof sa.sun_path) {
        set_err(err, errlen, "IPC path \"%s\" is empty or longer than %zu bytes", path,
                sizeof sa.sun_path - 1);
        return SMARTBUS_ERR_ARGUMENT;
    }
    memcpy(sa.sun_path, path, len + 1);

    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            set_err(err, errlen, "IPC path %s exists and is not a socket (not removed)", path);
            return SMARTBUS_ERR_OTHER;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM, 0);
        if (probe < 0) {
            set_err(err, errlen, "cannot create a Unix socket: %s", strerror(errno));
            return SMARTBUS_ERR_OTHER;
        }
        (void)sb_set_nonblock(probe);
        int rc = connect(probe, (struct sockaddr *)&sa, sizeof sa);
        int e = errno;
        close(probe);
        if (rc == 0 || e == EAGAIN || e == EWOULDBLOCK || e == EINPROGRESS) {
            set_err(err, errlen, "IPC path %s is in use by another server", path);
            return SMARTBUS_ERR_OTHER;
        }
        if (e == ECONNREFUSED) {
            sb_trace("router: removing stale IPC socket %s", path);
            if (unlink(path) != 0 && errno != ENOENT) {
                set_err(err, errlen, "cannot remove stale IPC socket %s: %s", path,
                        strerror(errno));
                return SMARTBUS_ERR_OTHER;
            }
        } else if (e != ENOENT) {
            set_err(err, errlen, "cannot probe IPC path %s: %s", path, strerror(e));
            return SMARTBUS_ERR_OTHER;
        }
    } else if (errno != ENOENT) {
        set_err(err, errlen, "cannot stat IPC path %s: %s", path, strerror(errno));
        return SMARTBUS_ERR_OTHER;
    }

    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        set_err(err, errlen, "cannot create a Unix socket: %s", strerror(errno));
        return SMARTBUS_ERR_OTHER;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        set_err(err, errlen, "cannot bind IPC path %s: %s", path, strerror(errno));
        close(fd);
        return SMARTBUS_ERR_OTHER;
    }
    r->ipc_path = dup_str(path);
    if (!r->ipc_path) {
        unlink(path);
        close(fd);
        set_err(err, errlen, "out of memory");
        return SMARTBUS_ERR_MEM_ALLOC;
    }
    r->ipc_fd = fd;                   /* from here on free() unlinks the path */
    if (lstat(path, &st) == 0) {
        r->ipc_dev = st.st_dev;
        r->ipc_ino = st.st_ino;
    }
    if (listen(fd, RT_BACKLOG) != 0 || sb_set_nonblock(fd) != 0) {
        set_err(err, errlen, "cannot listen on IPC path %s: %s", path, strerror(errno));
        return SMARTBUS_ERR_OTHER;
    }
    return 0;
}

/* The poller, watching the router's own descriptors: the waker and the
 * listeners (tagged with their addresses in r); 0, or -1 with errno set. */
static int watch_own(smartbus_router *r)
{
    if (sb_poller_open(&r->poller) != 0) return -1;
    if (sb_poller_set(&r->poller, r->waker.rfd, SB_POLL_IN, &r->waker) != 0) return -1;
    if (r->tcp_fd >= 0 && sb_poller_set(&r->poller, r->tcp_fd, SB_POLL_IN, &r->tcp_fd) != 0)
        return -1;
    if (r->ipc_fd >= 0 && sb_poller_set(&r->poller, r->ipc_fd, SB_POLL_IN, &r->ipc_fd) != 0)
        return -1;
    r->listening = 1;
    return 0;
}

int smartbus_router_new(const smartbus_router_config *cfg, smartbus_router **out, char *err,
                        size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (out) *out = NULL;
    if (!cfg || !out) {
        set_err(err, errlen, "missing configuration or result pointer");
        return SMARTBUS_ERR_ARGUMENT;
    }
    if (cfg->unit_id < 0 || cfg->unit_id >= MAX_GLOBAL_SMART_NODE) {
        set_err(err, errlen, "router unit id %d is invalid (must be 0..15)", cfg->unit_id);
        return SMARTBUS_ERR_UNITID_INVALID;
    }
    if (cfg->port > 65535) {
        set_err(err, errlen, "port %d is invalid (must be 0..65535, or < 0 for none)", cfg->port);
        return SMARTBUS_ERR_ARGUMENT;
    }
    if (cfg->max_out_bytes && cfg->max_out_bytes < SMARTBUS_ROUTER_MIN_OUT_BYTES) {
        set_err(err, errlen, "max_out_bytes %zu is too small (0 for the default, else at least %zu)",
                cfg->max_out_bytes, SMARTBUS_ROUTER_MIN_OUT_BYTES);
        return SMARTBUS_ERR_ARGUMENT;
    }
    if (cfg->stall_timeout_ms < 0 || cfg->registration_timeout_ms < 0 ||
        cfg->max_connections < 0 || cfg->heartbeat_answer_interval_ms < 0) {
        set_err(err, errlen, "stall_timeout_ms, registration_timeout_ms, max_connections and "
                "heartbeat_answer_interval_ms must not be negative (0 for the defaults)");
        return SMARTBUS_ERR_ARGUMENT;
    }
    /* what a registration can carry (the field less its terminator) */
    size_t user_max = sizeof(((sbw_register *)0)->user) - 1;
    size_t password_max = sizeof(((sbw_register *)0)->password) - 1;
    if ((cfg->user && strlen(cfg->user) > user_max) ||
        (cfg->password && strlen(cfg->password) > password_max)) {
        set_err(err, errlen, "the user name or the password is too long (at most %zu and %zu "
                "bytes: a registration carries no more)", user_max, password_max);
        return SMARTBUS_ERR_ARGUMENT;
    }
    if (cfg->password && cfg->password[0] && !(cfg->user && cfg->user[0])) {
        /* the registration carries both: a password alone would refuse every client */
        set_err(err, errlen, "a password needs a user name");
        return SMARTBUS_ERR_ARGUMENT;
    }
    smartbus_router *r = calloc(1, sizeof *r);
    if (!r) {
        set_err(err, errlen, "out of memory");
        return SMARTBUS_ERR_MEM_ALLOC;
    }
    r->tcp_fd = r->ipc_fd = -1;
    r->port = -1;
    r->waker.rfd = r->waker.wfd = -1;
    r->poller.epfd = -1;
    rt_list_init(&r->registering);
    rt_list_init(&r->draining);
    rt_list_init(&r->stalls);
    rt_list_init(&r->to_write);
    rt_list_init(&r->resumed);
    rt_list_init(&r->idle_out);
    r->unit = (uint8_t)cfg->unit_id;
    r->max_out = cfg->max_out_bytes ? cfg->max_out_bytes : SMARTBUS_ROUTER_DEFAULT_MAX_OUT_BYTES;
    if (r->max_out > SBW_MAX_PACKET) r->max_out = SBW_MAX_PACKET;   /* also the packet limit */
    r->budget = 2 * r->max_out + RT_CONTROL_HEADROOM;
    r->stall_ms = cfg->stall_timeout_ms ? cfg->stall_timeout_ms
                                        : SMARTBUS_ROUTER_DEFAULT_STALL_TIMEOUT_MS;
    r->register_ms = cfg->registration_timeout_ms ? cfg->registration_timeout_ms
                                                  : SMARTBUS_ROUTER_DEFAULT_REGISTRATION_TIMEOUT_MS;
    r->hb_answer_ms = cfg->heartbeat_answer_interval_ms
                          ? cfg->heartbeat_answer_interval_ms
                          : SMARTBUS_ROUTER_DEFAULT_HEARTBEAT_ANSWER_INTERVAL_MS;
    r->max_conns = (size_t)(cfg->max_connections ? cfg->max_connections
                                                 : SMARTBUS_ROUTER_DEFAULT_MAX_CONNECTIONS);
    r->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    r->now = sb_now_ms();
    r->auth = cfg->user && cfg->user[0];
    r->user = dup_str(cfg->user ? cfg->user : "");
    r->password = dup_str(cfg->password ? cfg->password : "");
    int rc = 0;
    if (!r->user || !r->password) {
        set_err(err, errlen, "out of memory");
        rc = SMARTBUS_ERR_MEM_ALLOC;
    }
    if (rc == 0 && sb_monitor_init(r) != 0) {
        set_err(err, errlen, "cannot create the monitor's lock");
        rc = SMARTBUS_ERR_OTHER;
    }
    if (rc == 0 && sb_waker_open(&r->waker) != 0) {
        set_err(err, errlen, "cannot create the wake-up channel: %s", strerror(errno));
        rc = SMARTBUS_ERR_OTHER;
    }
    if (rc == 0 && cfg->port >= 0) {
        const char *host = cfg->host && cfg->host[0] ? cfg->host : RT_DEFAULT_HOST;
        rc = open_tcp(r, host, cfg->port, err, errlen);
    }
    if (rc == 0 && cfg->ipc_path) rc = open_ipc(r, cfg->ipc_path, err, errlen);
    if (rc == 0 && watch_own(r) != 0) {
        set_err(err, errlen, "cannot create the poller: %s", strerror(errno));
        rc = SMARTBUS_ERR_OTHER;
    }
    if (rc != 0) {
        smartbus_router_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int smartbus_router_port(const smartbus_router *r)
{
    return r ? r->port : -1;
}

void smartbus_router_free(smartbus_router *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->npeers; i++) sb_peer_free(r->peers[i]);
    free(r->peers);
    sb_buf_free(&r->spare_in);
    sb_poller_close(&r->poller);
    if (r->tcp_fd >= 0) close(r->tcp_fd);
    if (r->ipc_fd >= 0) close(r->ipc_fd);
    if (r->ipc_path) {
        /* only the socket we bound: not a file someone put there since */
        struct stat st;
        if (lstat(r->ipc_path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == r->ipc_dev &&
            st.st_ino == r->ipc_ino)
            unlink(r->ipc_path);
        free(r->ipc_path);
    }
    sb_waker_close(&r->waker);
    sb_monitor_free(r);
    if (r->spare_fd >= 0) close(r->spare_fd);
    free(r->user);
    free(r->password);
    free(r);
}

void smartbus_router_get_stats(smartbus_router *r, smartbus_router_stats *st)
{
    if (!st) return;
    memset(st, 0, sizeof *st);
    if (!r) return;
    st->accepted = sb_relaxed(&r->st.accepted);
    st->registered = sb_relaxed(&r->st.registered);
    st->refused = sb_relaxed(&r->st.refused);
    st->closed = sb_relaxed(&r->st.closed);
    st->routed_msgs = sb_relaxed(&r->st.routed_msgs);
    st->routed_bytes = sb_relaxed(&r->st.routed_bytes);
    st->dropped_no_route = sb_relaxed(&r->st.dropped_no_route);
    st->dropped_unregistered = sb_relaxed(&r->st.dropped_unregistered);
    st->heartbeats = sb_relaxed(&r->st.heartbeats);
    st->stalled_disconnects = sb_relaxed(&r->st.stalled_disconnects);
    st->paused_reads = sb_relaxed(&r->st.paused_reads);
    st->clients = sb_relaxed(&r->st.clients);
    st->registration_timeouts = sb_relaxed(&r->st.registration_timeouts);
    st->rejected_connections = sb_relaxed(&r->st.rejected_connections);
    st->protocol_errors = sb_relaxed(&r->st.protocol_errors);
    st->dropped_forged = sb_relaxed(&r->st.dropped_forged);
    st->heartbeat_answers = sb_relaxed(&r->st.heartbeat_answers);
}
