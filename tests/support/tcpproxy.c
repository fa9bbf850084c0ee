#include "tcpproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROXY_MAX 32

struct tcpproxy {
    int listen_fd, port, target_port;
    atomic_int paused, stop, down, down_seen, delay_ms;
    pthread_t thread;
};

static void *proxy_main(void *arg)
{
    struct tcpproxy *p = arg;
    struct pollfd fds[1 + 2 * PROXY_MAX];
    int peer[1 + 2 * PROXY_MAX];
    int n = 1;
    static char buf[65536];

    fds[0] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
    while (!p->stop) {
        int paused = p->paused, down = p->down;
        if (down) {
            /* Down: every connection closed, new ones closed as they come. */
            for (int i = 1; i < n; i++)
                close(fds[i].fd);
            n = 1;
            if (poll(fds, 1, 50) > 0 && (fds[0].revents & POLLIN)) {
                int c = accept(p->listen_fd, NULL, NULL);
                if (c >= 0)
                    close(c);
            }
            p->down_seen = 1;
            continue;
        }
        p->down_seen = 0;
        for (int i = 0; i < n; i++)
            fds[i].revents = 0;
        /* Paused: new connections are still accepted (and hang), nothing is read. */
        if (poll(fds, paused ? 1 : (nfds_t)n, 50) <= 0)
            continue;
        if ((fds[0].revents & POLLIN) && n + 2 <= 1 + 2 * PROXY_MAX) {
            int c = accept(p->listen_fd, NULL, NULL);
            int s = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in to = {.sin_family = AF_INET,
                                     .sin_port = htons((uint16_t)p->target_port),
                                     .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            if (c >= 0 && s >= 0 && connect(s, (struct sockaddr *)&to, sizeof(to)) == 0) {
                fds[n] = (struct pollfd){.fd = c, .events = POLLIN};
                peer[n++] = s;
                fds[n] = (struct pollfd){.fd = s, .events = POLLIN};
                peer[n++] = c;
            } else {
                if (c >= 0)
                    close(c);
                if (s >= 0)
                    close(s);
            }
        }
        for (int i = 1; i < n; i++) {
            ssize_t got;
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            fds[i].revents = 0; /* handled: a pass restarted below must not read it again */
            got = recv(fds[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                continue;
            if (got > 0) {
                if (p->delay_ms > 0)
                    usleep((useconds_t)p->delay_ms * 1000);
                for (ssize_t off = 0; off < got;) {
                    ssize_t w = write(peer[i], buf + off, (size_t)(got - off));
                    if (w <= 0)
                        break;
                    off += w;
                }
                continue;
            }
            { /* one side closed: close the pair, compact the table */
                int a = fds[i].fd, b = peer[i];
                close(a);
                close(b);
                for (int j = 1; j < n; j++)
                    if (fds[j].fd == a || fds[j].fd == b) {
                        fds[j] = fds[n - 1];
                        peer[j] = peer[n - 1];
                        n--;
                        j--;
                    }
                i = 0;
            }
        }
    }
    for (int i = 1; i < n; i++)
        close(fds[i].fd);
    return NULL;
}

struct tcpproxy *tcpproxy_start(int target_port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    struct tcpproxy *p = calloc(1, sizeof(*p));

    signal(SIGPIPE, SIG_IGN);
    if (!p || (p->listen_fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
        bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(p->listen_fd, 16) != 0 ||
        getsockname(p->listen_fd, (struct sockaddr *)&a, &len) != 0) {
        fprintf(stderr, "tcpproxy: cannot listen\n");
        abort();
    }
    p->port = ntohs(a.sin_port);
    p->target_port = target_port;
    if (pthread_create(&p->thread, NULL, proxy_main, p) != 0)
        abort();
    return p;
}

int tcpproxy_port(const struct tcpproxy *p)
{
    return p->port;
}

void tcpproxy_pause(struct tcpproxy *p, int paused)
{
    p->paused = paused;
}

void tcpproxy_set_down(struct tcpproxy *p, int down)
{
    p->down = down;
    while (p->down_seen != down)
        usleep(10000);
}

void tcpproxy_delay(struct tcpproxy *p, int ms)
{
    p->delay_ms = ms;
}

void tcpproxy_stop(struct tcpproxy *p)
{
    if (!p)
        return;
    p->stop = 1;
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    free(p);
}

const char *tcpproxy_url(const char *url, int port, char *buf, size_t size)
{
    const char *at = strrchr(url, '@'), *host = at ? at + 1 : strstr(url, "://") + 3;
    const char *colon = strchr(host, ':'), *slash = strchr(host, '/');
    if (!colon || (slash && colon > slash)) {
        fprintf(stderr, "tcpproxy: no port in the url\n");
        abort();
    }
    snprintf(buf, size, "%.*s%d%s", (int)(colon + 1 - url), url, port, slash ? slash : "");
    return buf;
}
