#!/usr/bin/env python3
"""Samples the command lines of every descendant of a process until it exits.

    cmdline_sampler.py ROOT_PID OUT_FILE

Every 20 ms it reads /proc, keeps the processes whose parent chain leads to
ROOT_PID, and writes each distinct command line (arguments joined by spaces) once
to OUT_FILE (mode 0600: had a secret been on a command line, it is there). Used by
test_stack.sh while a secured stack starts; it_secure then checks that none of the
stack's passwords was ever on a command line.
"""
import os
import sys
import time


def snapshot():
    parent = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            # pid (comm) state ppid ...: comm may hold spaces and parentheses
            parent[int(pid)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return parent


def descends(pid, root, parent):
    for _ in range(64):
        if pid == root:
            return True
        pid = parent.get(pid)
        if not pid:
            return False
    return False


def main():
    root, out = int(sys.argv[1]), sys.argv[2]
    seen = set()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        while True:
            alive = os.path.exists(f"/proc/{root}")
            parent = snapshot()
            for pid in parent:
                if pid == os.getpid() or not descends(pid, root, parent):
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as c:
                        line = c.read().rstrip(b"\0").replace(b"\0", b" ")
                except OSError:
                    continue
                text = line.decode("utf-8", "replace")
                if text and text not in seen:
                    seen.add(text)
                    f.write(text + "\n")
                    f.flush()
            if not alive:
                return
            time.sleep(0.02)


if __name__ == "__main__":
    main()
