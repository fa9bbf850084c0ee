#include "saga/fault.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "saga/log.h"

void saga_fault_point(const char *point)
{
    const char *want = getenv("SAGA_FAULT");
    if (want && strcmp(want, point) == 0) {
        saga_log(SAGA_LOG_WARN, NULL, "fault hook %s: killing this process (SAGA_FAULT)", point);
        kill(getpid(), SIGKILL);
        pause();
    }
}
