"""Drives an interactive program through a real pseudo-terminal, like a person typing:
waits for each prompt before sending the next line (a line editor drops type-ahead).

Usage: python3 pty_drive.py PROMPT_REGEX LINE... -- PROGRAM ARGS...
Prints everything the program wrote, with terminal escapes removed; exits with its status."""
import os
import pty
import re
import select
import sys
import time

sep = sys.argv.index("--")
prompt = re.compile(sys.argv[1].encode())
lines = sys.argv[2:sep]
argv = sys.argv[sep + 1:]

pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)

out = b""


def read_until(pattern, start, timeout=60.0):
    global out
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pattern.search(out, start):
            return True
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return False
            if not chunk:
                return False
            out += chunk
    return False


for line in lines:
    start = len(out)
    if not read_until(prompt, 0 if start == 0 else start):
        break
    os.write(fd, line.encode() + b"\r")
    time.sleep(0.05)
# Drain what is left until the program exits.
read_until(re.compile(rb"\Z(?!x)x"), len(out), timeout=5.0)
_, status = os.waitpid(pid, 0)
sys.stdout.write(re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", out).decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
