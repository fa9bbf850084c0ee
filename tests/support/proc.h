/*
 * Test support: start one of the suite's programs as a child process with extra
 * environment, its stderr in a log file; stop or kill it; wait for a log line.
 */
#ifndef SAGA_TEST_PROC_H
#define SAGA_TEST_PROC_H

#include <sys/types.h>

/*
 * Starts path with the current environment plus env ("NAME=value", NULL-terminated).
 * The child is killed if the test process ends first.
 */
pid_t proc_start(const char *path, const char *const *env, const char *logfile);

/* Sends sig and waits up to timeout_ms for the exit; returns its wait status or -1. */
int proc_stop(pid_t pid, int sig, int timeout_ms);

/* Waits up to timeout_ms for the child to exit by itself; returns its wait status or -1. */
int proc_wait(pid_t pid, int timeout_ms);

/* 1 once logfile contains needle (checked every 50 ms), 0 after timeout_ms. */
int log_wait(const char *logfile, const char *needle, int timeout_ms);

/* Milliseconds on the monotonic clock. */
long long now_ms(void);

#endif
