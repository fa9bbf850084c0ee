/*
 * Test-only fault hooks: with SAGA_FAULT=<point> in the environment, the program
 * kills itself with SIGKILL when it reaches that point, so tests can crash it at
 * an exact moment (e.g. "relay.after_ack": Kafka acknowledged a batch, the outbox
 * rows are not marked yet). Unset in production; documented in docs/RELIABILITY.md.
 */
#ifndef SAGA_FAULT_H
#define SAGA_FAULT_H

/* Dies by SIGKILL if SAGA_FAULT names point. */
void saga_fault_point(const char *point);

/* 1 if SAGA_FAULT names point (for code that must first reach the exact moment). */
int saga_fault_armed(const char *point);

/*
 * SAGA_FAULT=handler.flaky:<delay ms>:<every>: a slow, transiently failing handler (the
 * chaos suite's rebalance storm). Each call sleeps <delay ms>; every <every>th call
 * returns 1, and the consumer runtime then treats the handler as failed TRANSIENT
 * instead of running it. Returns 0 (at once) without that setting. Thread-safe.
 */
int saga_fault_flaky_handler(void);

#endif
