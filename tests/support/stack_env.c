#include "stack_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_VARS 128

static struct {
    char key[64];
    char value[1024];
} vars[MAX_VARS];
static int nvars = -1;

static void load(void)
{
    const char *path = getenv("SAGA_STACK_ENV");
    char line[1200];
    FILE *f;

    nvars = 0;
    if (!path || !(f = fopen(path, "r"))) {
        fprintf(stderr, "stack_env: cannot read SAGA_STACK_ENV=%s (is the stack fixture up?)\n",
                path ? path : "(unset)");
        exit(1);
    }
    while (fgets(line, sizeof(line), f) && nvars < MAX_VARS) {
        char *key = line, *eq = strchr(line, '='), *v;
        size_t len;
        if (line[0] == '#' || !eq)
            continue;
        if (strncmp(key, "export ", 7) == 0) /* stack.env exports what a shell sources */
            key += 7;
        *eq = '\0';
        v = eq + 1;
        len = strcspn(v, "\n");
        v[len] = '\0';
        if (len >= 2 && v[0] == '\'' && v[len - 1] == '\'') {
            v[len - 1] = '\0';
            v++;
        }
        snprintf(vars[nvars].key, sizeof(vars[nvars].key), "%.63s", key);
        snprintf(vars[nvars].value, sizeof(vars[nvars].value), "%.1023s", v);
        nvars++;
    }
    fclose(f);
}

const char *stack_env_opt(const char *key)
{
    if (nvars < 0)
        load();
    for (int i = 0; i < nvars; i++)
        if (strcmp(vars[i].key, key) == 0)
            return vars[i].value;
    return NULL;
}

const char *stack_env(const char *key)
{
    const char *v = stack_env_opt(key);
    if (v)
        return v;
    fprintf(stderr, "stack_env: %s is not in %s\n", key, getenv("SAGA_STACK_ENV"));
    exit(1);
}

const char *stack_unique(const char *prefix, char *buf, unsigned long size)
{
    static int seq;
    snprintf(buf, size, "%s-%ld-%ld-%d", prefix, (long)getpid(), (long)time(NULL), ++seq);
    return buf;
}

void stack_cmd(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s %s --dir %s --build %s --no-deps >/dev/null", SAGA_STACK_SCRIPT,
             args, stack_env("STACK_DIR"), SAGA_BUILD_DIR);
    if (system(cmd) != 0) {
        fprintf(stderr, "stack_cmd: failed: %s\n", cmd);
        exit(1);
    }
}
