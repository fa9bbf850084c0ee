#include "saga/fault.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

void saga_fault_break_socket(const char *point, int fd)
{
    int dead;

    if (!saga_fault_armed(point) || fd < 0)
        return;
    /* dup2 closes the connected socket and puts the unconnected one in its place in one
     * step, so no other thread can be handed fd in between. */
    dead = socket(AF_INET, SOCK_STREAM, 0);
    if (dead < 0 || dup2(dead, fd) < 0) {
        saga_log(SAGA_LOG_ERROR, NULL, "fault hook %s: cannot break the connection", point);
        abort();
    }
    close(dead);
    saga_log(SAGA_LOG_WARN, NULL, "fault hook %s: connection broken (SAGA_FAULT)", point);
}
