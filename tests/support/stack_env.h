/*
 * Test support: the addresses and passwords of the test stack, read from the
 * stack.env file that scripts/stack writes (named by SAGA_STACK_ENV).
 */
#ifndef SAGA_TEST_STACK_ENV_H
#define SAGA_TEST_STACK_ENV_H

/* The value of key in stack.env; aborts the test run with a message when absent. */
const char *stack_env(const char *key);
/* The same, or NULL when absent. */
const char *stack_env_opt(const char *key);

/* A name unique to this process and call, e.g. "it-kafka-4242-1", for topics and groups. */
const char *stack_unique(const char *prefix, char *buf, unsigned long size);

/* Runs `scripts/stack ARGS --dir <the test stack> --no-deps`, e.g. "kill kafka" or "up";
 * aborts the test if it fails. */
void stack_cmd(const char *args);

#endif
