"""CPU time and resident memory of a process tree, from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants that are still running."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            todo.extend(int(c) for c in children)
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process tree."""
    total = 0.0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is field 3 (state): utime and stime are fields 14 and 15.
        total += (int(fields[11]) + int(fields[12])) * TICK_S
    return total


def rss_bytes(pid: int) -> int:
    """Resident memory of the process tree."""
    total = 0
    for p in tree(pid):
        try:
            pages = int(Path(f"/proc/{p}/statm").read_text().split()[1])
        except OSError:
            continue
        total += pages * PAGE
    return total
