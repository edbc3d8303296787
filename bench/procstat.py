"""CPU time and memory of processes, read from ``/proc`` (Linux).

The harness reads the worker's, the receiver's, Postgres's and its own CPU before and after
each phase, so every figure comes with where the CPU went: the bottleneck is then known, not
guessed. A worker is a process group (prefork has a parent and children), so a worker's CPU
is the sum over its group, counting processes that appeared during the phase from zero.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after its end.
    return text[text.rindex(")") + 2 :].split()


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # Fields after the name start at "state" (field 3): utime is 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def process_rss(pid: int) -> int:
    """Resident set size in bytes (0 if the process is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except OSError:
        return 0


def _all_pids() -> Iterable[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def group_pids(pgid: int) -> list[int]:
    """Every live process of a process group."""
    found = []
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields is not None and int(fields[2]) == pgid:
            found.append(pid)
    return found


def pids_named(name: str) -> list[int]:
    """Every live process whose command name is ``name`` (e.g. ``postgres``)."""
    found = []
    for pid in _all_pids():
        try:
            with open(f"/proc/{pid}/comm") as handle:
                if handle.read().strip() == name:
                    found.append(pid)
        except OSError:
            continue
    return found


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds per pid at one moment."""

    per_pid: dict[int, float]

    @classmethod
    def of(cls, pids: Iterable[int]) -> CpuSnapshot:
        return cls({pid: process_cpu(pid) for pid in pids})

    def since(self, earlier: CpuSnapshot) -> float:
        """CPU seconds spent between ``earlier`` and this snapshot (new pids from zero)."""
        return sum(
            max(0.0, cpu - earlier.per_pid.get(pid, 0.0)) for pid, cpu in self.per_pid.items()
        )


def own_cpu() -> float:
    """This process's CPU seconds (the harness: publishing, pacing, polling)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def group_rss(pgid: int) -> int:
    """Summed RSS of a process group (shared pages of prefork children count twice)."""
    return sum(process_rss(pid) for pid in group_pids(pgid))
