/*
 * loopback.h - the TCP loopback plumbing the benchmarks' C programs share:
 * a listener on a free port (printed on stdout for the driver), a
 * connection to a port, TCP_NODELAY (as the SDK's and the router's
 * sockets), a blocking write of a whole buffer.  Failures to set up end
 * the program: these are benchmark tools.  Static inline: each program
 * takes what it uses.
 */
#ifndef BENCH_LOOPBACK_H
#define BENCH_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static inline void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* listens on 127.0.0.1, a free port, and prints the port */
static inline int listen_any(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0) {
        perror("listen");
        exit(1);
    }
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    printf("%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    return fd;
}

/* a connection to 127.0.0.1:port, TCP_NODELAY */
static inline int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("connect");
        exit(1);
    }
    nodelay(fd);
    return fd;
}

/* writes all n bytes (blocking socket): 0, or -1 when the peer is gone */
static inline int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

#endif /* BENCH_LOOPBACK_H */
