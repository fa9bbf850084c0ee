/*
 * Test support: a TCP proxy in the test process, from 127.0.0.1 on a free port to a
 * port on 127.0.0.1, that the test switches off and on. Off, it listens nowhere and
 * has closed every connection it carried: to a client the target is down
 * (connection refused). Its own thread does the forwarding; the functions below are
 * for the test's main thread.
 */
#ifndef SAGA_TEST_TCP_PROXY_H
#define SAGA_TEST_TCP_PROXY_H

struct tcp_proxy;

/* Starts a proxy to 127.0.0.1:target_port, switched on; aborts the test on failure. */
struct tcp_proxy *tcp_proxy_start(int target_port);

/* The port it listens on (the same whenever it is on). */
int tcp_proxy_port(const struct tcp_proxy *p);

/* Switches it on (1) or off (0); returns once the proxy has done so. */
void tcp_proxy_set_up(struct tcp_proxy *p, int up);

/* Stops the thread, closes every connection and frees p (NULL is fine). */
void tcp_proxy_destroy(struct tcp_proxy *p);

#endif
