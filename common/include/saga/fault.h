/*
 * Test-only fault hooks: with SAGA_FAULT=<point> in the environment, the program
 * kills itself with SIGKILL when it reaches that point, so tests can crash it at
 * an exact moment (e.g. "relay.after_ack": Kafka acknowledged a batch, the outbox
 * rows are not marked yet), or loses a connection there (saga_fault_break_socket).
 * Unset in production; documented in docs/RELIABILITY.md.
 */
#ifndef SAGA_FAULT_H
#define SAGA_FAULT_H

/* Dies by SIGKILL if SAGA_FAULT names point. */
void saga_fault_point(const char *point);

/* 1 if SAGA_FAULT names point (for code that must first reach the exact moment). */
int saga_fault_armed(const char *point);

/*
 * If SAGA_FAULT names point, breaks the connection on socket fd as a network
 * failure would: the socket is closed (what was already sent still reaches the
 * peer) and fd is left open on an unconnected socket, so its owner's next read
 * or write fails and its own close stays valid. Any thread.
 */
void saga_fault_break_socket(const char *point, int fd);

/*
 * The same, but the connection stays open towards the peer (a duplicate of the
 * socket is kept for the life of the process): the peer sees nothing, as when a
 * network path dies without a FIN, and waits for what never comes.
 */
void saga_fault_halfopen_socket(const char *point, int fd);

/*
 * SAGA_FAULT=handler.flaky:<delay ms>:<every>: a slow, transiently failing handler (the
 * chaos suite's rebalance storm). Each call sleeps <delay ms>; every <every>th call
 * returns 1, and the consumer runtime then treats the handler as failed TRANSIENT
 * instead of running it. Returns 0 (at once) without that setting. Thread-safe.
 */
int saga_fault_flaky_handler(void);

#endif
