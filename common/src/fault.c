#include "saga/fault.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
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
