#include "saga/fault.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "saga/log.h"

int saga_fault_armed(const char *point)
{
    const char *want = getenv("SAGA_FAULT");
    return want && strcmp(want, point) == 0;
}

void saga_fault_point(const char *point)
{
    if (saga_fault_armed(point)) {
        saga_log(SAGA_LOG_WARN, NULL, "fault hook %s: killing this process (SAGA_FAULT)", point);
        kill(getpid(), SIGKILL);
        pause();
    }
}

static void replace_socket(const char *point, int fd)
{
    int dead;

    /* dup2 closes the connected socket and puts the unconnected one in its place in one
     * step, so no other thread can be handed fd in between. */
    dead = socket(AF_INET, SOCK_STREAM, 0);
    if (dead < 0 || dup2(dead, fd) < 0) {
        saga_log(SAGA_LOG_ERROR, NULL, "fault hook %s: cannot break the connection", point);
        abort();
    }
    close(dead);
}

void saga_fault_break_socket(const char *point, int fd)
{
    if (!saga_fault_armed(point) || fd < 0)
        return;
    replace_socket(point, fd);
    saga_log(SAGA_LOG_WARN, NULL, "fault hook %s: connection broken (SAGA_FAULT)", point);
}

void saga_fault_halfopen_socket(const char *point, int fd)
{
    if (!saga_fault_armed(point) || fd < 0)
        return;
    if (dup(fd) < 0) /* kept open on purpose: the peer must not see the connection end */
        abort();
    replace_socket(point, fd);
    saga_log(SAGA_LOG_WARN, NULL, "fault hook %s: connection half-open (SAGA_FAULT)", point);
}

int saga_fault_flaky_handler(void)
{
    static atomic_uint calls;
    const char *want = getenv("SAGA_FAULT");
    long delay_ms = 0, every = 0;
    if (!want || sscanf(want, "handler.flaky:%ld:%ld", &delay_ms, &every) != 2)
        return 0;
    if (delay_ms > 0) {
        struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return every > 0 && (atomic_fetch_add(&calls, 1) + 1) % (unsigned long)every == 0;
}
