#!/usr/bin/env python3
"""Runs a command on a fresh pseudo-terminal, as a counsellor at a terminal
would: waits for each expected text, then types the answer. Prints all the
terminal showed and exits with the command's status.

usage: terminal.py STEPS_JSON COMMAND [ARGS...]
STEPS_JSON is a list of [expected text, text to type]."""
import json, os, pty, select, sys, time

steps = json.loads(sys.argv[1])
argv = sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)

out = b""
pos = 0


def read_more(deadline):
    global out
    ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.time()))
    if not ready:
        return False
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        return False
    if not chunk:
        return False
    out += chunk
    return True


for expected, typed in steps:
    deadline = time.time() + 60
    while expected.encode() not in out[pos:]:
        if not read_more(deadline):
            sys.stdout.write(out.decode(errors="replace"))
            sys.stdout.write("\n[terminal.py: gave up waiting for %r]\n" % expected)
            os.kill(pid, 9)
            sys.exit(99)
    pos = out.index(expected.encode(), pos) + len(expected.encode())
    os.write(fd, typed.encode())

while read_more(time.time() + 60):
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
