/*
 * Test support: a TCP proxy on 127.0.0.1 in front of a local port, in a thread of the
 * test process. Paused, it keeps every connection open and accepts new ones but
 * forwards nothing, as a hung middlebox or a network partition behind a proxy does:
 * the client's kernel still gets its ACKs, so TCP keepalives see nothing wrong. Down, it
 * closes whatever it carries or gets.
 */
#ifndef SAGA_TEST_TCPPROXY_H
#define SAGA_TEST_TCPPROXY_H

#include <stddef.h>

struct tcpproxy;

/* Starts a proxy to 127.0.0.1:target_port; aborts the test on failure. */
struct tcpproxy *tcpproxy_start(int target_port);
/* The port it listens on. */
int tcpproxy_port(const struct tcpproxy *p);
/* Stops forwarding (1) or forwards again (0). */
void tcpproxy_pause(struct tcpproxy *p, int paused);
/*
 * Down (1): closes every connection it carries and closes new ones as soon as they come,
 * as a crashed server behind it would look; up again (0). Returns once the proxy has done so.
 */
void tcpproxy_set_down(struct tcpproxy *p, int down);
/* Waits ms before forwarding each chunk it reads (0: none), a slow link. */
void tcpproxy_delay(struct tcpproxy *p, int ms);
/* Closes every connection and stops; NULL-safe. */
void tcpproxy_stop(struct tcpproxy *p);

/* Copies url (a postgresql:// URI to 127.0.0.1:<port>) into buf with the port replaced. */
const char *tcpproxy_url(const char *url, int port, char *buf, size_t size);

#endif
