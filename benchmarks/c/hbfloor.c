/*
 * hbfloor.c - the floor under an idle router's CPU: what any server pays
 * per heartbeat of many idle TCP connections when it does nothing but take
 * it (one epoll wake-up and one read), with no protocol and no answer.
 * N loopback connections; a child process writes a SIZE-byte "heartbeat"
 * on each once a second, the N phases spread evenly over the second (as
 * rtload's idle command does); the parent reads them through epoll.  After
 * a second of warm-up, the parent's CPU time (user + system) over SECONDS
 * is printed with what it read, as one JSON line:
 *   {"connections", "seconds", "reads", "bytes", "cpu_pct"}
 *
 * usage: hbfloor N SECONDS SIZE   (raises its open-files limit to the hard limit)
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "loopback.h"

#define WARMUP_S   1.0
#define TICK_NS    1000000L          /* the writer's pace: 1 ms, like rtload's loop */
#define MAX_EVENTS 256

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* a listener on 127.0.0.1 (a free port) whose backlog holds every connection */
static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 128) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        perror("listen");
        exit(1);
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

/* the child: heartbeat k goes to connection k % n at t0 + k / n seconds */
static void write_heartbeats(const int *fds, int n, size_t size, double seconds)
{
    static const char payload[65536];
    double t0 = now_s(), end = t0 + seconds;
    long k = 0;
    struct timespec tick = {0, TICK_NS};
    while (now_s() < end) {
        double due = now_s();
        while (t0 + (double)k / n <= due) {
            if (write(fds[k % n], payload, size) < 0 && errno != EAGAIN) _exit(1);
            k++;
        }
        nanosleep(&tick, NULL);
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: hbfloor N SECONDS SIZE\n");
        return 2;
    }
    int n = atoi(argv[1]);
    double seconds = atof(argv[2]);
    size_t size = (size_t)atoi(argv[3]);
    if (n < 1 || seconds <= 0 || size < 1 || size > 65536) {
        fprintf(stderr, "hbfloor: N >= 1, SECONDS > 0, SIZE in 1..65536\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int port;
    int lfd = listen_loopback(&port);
    int *ours = malloc(sizeof(int) * (size_t)n), *theirs = malloc(sizeof(int) * (size_t)n);
    if (!ours || !theirs) return 1;
    for (int i = 0; i < n; i++) {
        theirs[i] = connect_to(port);
        ours[i] = accept(lfd, NULL, NULL);
        if (ours[i] < 0) {
            perror("accept (open-files limit?)");
            return 1;
        }
    }
    close(lfd);
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        for (int i = 0; i < n; i++) close(ours[i]);
        write_heartbeats(theirs, n, size, WARMUP_S + seconds + 1.0);
    }
    for (int i = 0; i < n; i++) close(theirs[i]);
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = ours[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, ours[i], &ev) != 0) {
            perror("epoll_ctl");
            return 1;
        }
    }
    static char buf[65536];
    struct epoll_event evs[MAX_EVENTS];
    double start = now_s() + WARMUP_S, end = start + seconds, cpu0 = -1;
    unsigned long long reads = 0, bytes = 0;
    for (;;) {
        double t = now_s();
        if (cpu0 < 0 && t >= start) {
            cpu0 = cpu_s();
            reads = bytes = 0;
        }
        if (t >= end) break;
        int k = epoll_wait(ep, evs, MAX_EVENTS, 10);
        for (int i = 0; i < k; i++) {
            ssize_t r = read(evs[i].data.fd, buf, sizeof buf);
            if (r > 0) {
                reads++;
                bytes += (unsigned long long)r;
            }
        }
    }
    double cpu = cpu_s() - cpu0;
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);
    printf("{\"connections\": %d, \"seconds\": %.3f, \"reads\": %llu, \"bytes\": %llu, "
           "\"cpu_pct\": %.2f}\n", n, seconds, reads, bytes, 100.0 * cpu / seconds);
    return 0;
}
