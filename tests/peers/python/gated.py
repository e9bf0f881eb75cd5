"""Holds an MCP server's start at a gate, for tests that must see starts in progress.

usage: gated.py STARTED GATE -- COMMAND ARGS...

Announces itself by writing one line, its pid, to the FIFO `STARTED`; then blocks reading
the FIFO `GATE` until the test writes to it and closes it; then replaces itself with
COMMAND (e.g. an HTTP MCP server, which only now starts listening). While it waits, the
server it stands for exists as a process but answers nothing, so it is not yet healthy.
"""

import os
import sys


def main() -> None:
    args = sys.argv[1:]
    if len(args) < 4 or args[2] != "--":
        sys.exit("usage: gated.py STARTED GATE -- COMMAND ARGS...")
    started, gate, command = args[0], args[1], args[3:]
    with open(started, "w") as f:
        f.write(f"{os.getpid()}\n")
    with open(gate) as g:
        g.read()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
