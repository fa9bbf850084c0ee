#include "saga/fault.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
