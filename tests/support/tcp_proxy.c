#include "tcp_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAIRS_MAX 16

struct pair {
    int client, target; /* -1 when the slot is free */
};

struct tcp_proxy {
    int port, target_port;
    atomic_int want_up, is_up, stop;
    int listen_fd; /* -1 while off; only the proxy's thread touches it after the start */
    struct pair pairs[PAIRS_MAX];
    pthread_t thread;
};

static void die(const char *what)
{
    fprintf(stderr, "tcp_proxy: %s: %s\n", what, strerror(errno));
    exit(1);
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    return a;
}

/* Listens on p->port, or on a free port the first time (before the thread starts, so
 * p->port never changes while the test reads it); -1 if that failed. */
static int listen_on(struct tcp_proxy *p)
{
    struct sockaddr_in a = loopback(p->port);
    socklen_t len = sizeof(a);
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    /* The port comes back while connections of the last time are in TIME_WAIT. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        close(fd);
        return -1;
    }
    if (!p->port)
        p->port = ntohs(a.sin_port);
    p->listen_fd = fd;
    return 0;
}

static void close_pair(struct pair *c)
{
    if (c->client < 0)
        return;
    close(c->client);
    close(c->target);
    c->client = c->target = -1;
}

static void close_all(struct tcp_proxy *p)
{
    for (int i = 0; i < PAIRS_MAX; i++)
        close_pair(&p->pairs[i]);
    if (p->listen_fd >= 0)
        close(p->listen_fd);
    p->listen_fd = -1;
}

static void accept_one(struct tcp_proxy *p)
{
    struct sockaddr_in to = loopback(p->target_port);
    int client = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC), target, slot = -1;

    if (client < 0)
        return;
    for (int i = 0; i < PAIRS_MAX && slot < 0; i++)
        if (p->pairs[i].client < 0)
            slot = i;
    target = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (slot < 0 || target < 0 || connect(target, (struct sockaddr *)&to, sizeof(to)) != 0) {
        close(client);
        if (target >= 0)
            close(target);
        return;
    }
    p->pairs[slot] = (struct pair){client, target};
}

/* Copies what from has to to; 0, or -1 when either side is done. */
static int pump(int from, int to)
{
    char buf[16384];
    ssize_t got = read(from, buf, sizeof(buf));
    if (got <= 0)
        return -1;
    for (ssize_t off = 0; off < got;) {
        ssize_t w = send(to, buf + off, (size_t)(got - off), MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        off += w;
    }
    return 0;
}

static void *proxy_main(void *arg)
{
    struct tcp_proxy *p = arg;

    while (!atomic_load(&p->stop)) {
        struct pollfd fds[1 + 2 * PAIRS_MAX];
        int slot_of[1 + 2 * PAIRS_MAX];
        int want = atomic_load(&p->want_up), n = 0;

        if (want != atomic_load(&p->is_up)) {
            if (!want)
                close_all(p);
            else if (listen_on(p) != 0)
                die("listening again");
            atomic_store(&p->is_up, want);
        }
        if (p->listen_fd >= 0)
            fds[n++] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
        for (int i = 0; i < PAIRS_MAX; i++) {
            if (p->pairs[i].client < 0)
                continue;
            slot_of[n] = i;
            fds[n++] = (struct pollfd){.fd = p->pairs[i].client, .events = POLLIN};
            slot_of[n] = i;
            fds[n++] = (struct pollfd){.fd = p->pairs[i].target, .events = POLLIN};
        }
        if (poll(fds, (nfds_t)n, 50) <= 0)
            continue;
        for (int k = 0; k < n; k++) {
            struct pair *c;
            if (!fds[k].revents)
                continue;
            if (fds[k].fd == p->listen_fd) {
                accept_one(p);
                continue;
            }
            c = &p->pairs[slot_of[k]];
            if (c->client < 0) /* closed a moment ago through its other side */
                continue;
            if (pump(fds[k].fd, fds[k].fd == c->client ? c->target : c->client) != 0)
                close_pair(c);
        }
    }
    close_all(p);
    return NULL;
}

struct tcp_proxy *tcp_proxy_start(int target_port)
{
    struct tcp_proxy *p = calloc(1, sizeof(*p));

    if (!p)
        die("calloc");
    p->target_port = target_port;
    p->listen_fd = -1;
    for (int i = 0; i < PAIRS_MAX; i++)
        p->pairs[i] = (struct pair){-1, -1};
    if (listen_on(p) != 0)
        die("listening");
    atomic_store(&p->want_up, 1);
    atomic_store(&p->is_up, 1);
    if (pthread_create(&p->thread, NULL, proxy_main, p) != 0)
        die("pthread_create");
    return p;
}

int tcp_proxy_port(const struct tcp_proxy *p)
{
    return p->port;
}

void tcp_proxy_set_up(struct tcp_proxy *p, int up)
{
    struct timespec ts = {0, 10 * 1000000L};
    atomic_store(&p->want_up, up ? 1 : 0);
    while (atomic_load(&p->is_up) != (up ? 1 : 0))
        nanosleep(&ts, NULL);
}

void tcp_proxy_destroy(struct tcp_proxy *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, 1);
    pthread_join(p->thread, NULL);
    free(p);
}
