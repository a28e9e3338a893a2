"""What the benchmark reads off the machine and the system under test once a run is over.

- CPU seconds and peak memory per process, from ``/proc`` (Linux only): ``utime + stime`` of every process in
  a started process's tree (intake's forked servers, a worker's Celery pool and scheduler), plus ``cutime +
  cstime`` for children that already exited; peak memory is each process's ``VmHWM`` (its resident
  high-water mark since it started).
- Latency from acceptance to delivery, from the ledger: a batch records when its oldest and newest operation
  were accepted (their stream entry ids) and when it was delivered. Per-row acceptance times are not stored,
  so each batch's rows are taken as accepted evenly between those two times; percentiles are then weighted by
  rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class ProcessSample:
    pid: int
    name: str  # the command line, shortened
    cpu: float  # seconds of CPU (user + system) used so far
    reaped_children_cpu: float
    peak_rss_mb: float


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else ():
        text = _read(f"/proc/{pid}/task/{task}/children")
        if text:
            out.extend(int(c) for c in text.split())
    return out


def process_tree(root: int) -> list[int]:
    """``root`` and every live descendant."""
    pids, queue = [], [root]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        queue.extend(_children(pid))
    return pids


def sample(pid: int) -> ProcessSample | None:
    stat = _read(f"/proc/{pid}/stat")
    status = _read(f"/proc/{pid}/status")
    cmdline = _read(f"/proc/{pid}/cmdline")
    if stat is None or status is None:
        return None
    # Fields after the command name (which may hold spaces) start at field 3.
    rest = stat[stat.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(v) for v in rest[11:15])
    peak_kb = 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            peak_kb = int(line.split()[1])
            break
    args = (cmdline or "").replace("\0", " ").strip().split()
    name = " ".join(a.rsplit("/", 1)[-1] for a in args[:6])
    return ProcessSample(pid, name, (utime + stime) / _TICKS, (cutime + cstime) / _TICKS, peak_kb / 1024)


def sample_tree(root: int) -> dict[int, ProcessSample]:
    return {s.pid: s for s in (sample(p) for p in process_tree(root)) if s is not None}


@dataclass(slots=True)
class StageUsage:
    """CPU and memory of one started process and its descendants over a measured interval."""

    stage: str
    cpu_seconds: float
    processes: list[ProcessSample] = field(default_factory=list)

    @property
    def peak_rss_mb(self) -> float:
        return max((p.peak_rss_mb for p in self.processes), default=0.0)


def usage(stage: str, before: dict[int, ProcessSample], after: dict[int, ProcessSample]) -> StageUsage:
    """CPU used between two samples of one tree; processes born in between count from zero."""
    cpu = 0.0
    for pid, now in after.items():
        then = before.get(pid)
        cpu += now.cpu - (then.cpu if then else 0.0)
        cpu += now.reaped_children_cpu - (then.reaped_children_cpu if then else 0.0)
    return StageUsage(stage, cpu, sorted(after.values(), key=lambda p: p.pid))


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot (all processes, ours or not)."""
    fields = [int(v) for v in (_read("/proc/stat") or "cpu 0").splitlines()[0].split()[1:]]
    idle = sum(fields[3:5])  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICKS


def weighted_percentiles(batches: Iterable[tuple[float, float, float, int]],
                         quantiles: Iterable[float]) -> list[float]:
    """Latency percentiles over rows. ``batches``: (accepted_first, accepted_last, finished_at, rows)."""
    latencies: list[float] = []
    for first, last, finished, rows in batches:
        if rows <= 0:
            continue
        if rows == 1:
            latencies.append(finished - last)
            continue
        step = (last - first) / (rows - 1)
        latencies.extend(finished - (first + i * step) for i in range(rows))
    if not latencies:
        return [0.0 for _ in quantiles]
    latencies.sort()
    top = len(latencies) - 1
    return [latencies[min(top, round(q * top))] for q in quantiles]
