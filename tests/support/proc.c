#include "proc.h"

#include <fcntl.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

pid_t proc_start(const char *path, const char *const *env, const char *logfile)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd;
        /* The child never outlives the test, whatever happens to the test. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
            close(fd);
        }
        for (int i = 0; env && env[i]; i++)
            putenv((char *)(uintptr_t)env[i]);
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    return pid;
}

int proc_wait(pid_t pid, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    int status;
    do {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0)
            return -1;
        sleep_ms(20);
    } while (now_ms() < end);
    return -1;
}

int proc_stop(pid_t pid, int sig, int timeout_ms)
{
    int status;
    kill(pid, sig);
    status = proc_wait(pid, timeout_ms);
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return -1;
    }
    return status;
}

int log_wait(const char *logfile, const char *needle, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    do {
        FILE *f = fopen(logfile, "r");
        if (f) {
            char line[8192];
            while (fgets(line, sizeof(line), f)) {
                if (strstr(line, needle)) {
                    fclose(f);
                    return 1;
                }
            }
            fclose(f);
        }
        sleep_ms(50);
    } while (now_ms() < end);
    return 0;
}
