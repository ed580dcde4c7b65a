"""What a pipeline run reports: how it ended (`RunReport`, `TaskReport`) and how it goes
(`PipelineMetrics`, `StreamMetrics`, `TaskMetrics`), with the task processes' CPU time and memory
read from /proc."""

from __future__ import annotations

import os
from typing import Dict, List, NamedTuple, Optional, Tuple

from ._ffi import lib

OUTCOMES = {
    lib.SHMLINE_RUN_FINISHED: "finished",
    lib.SHMLINE_RUN_FAILED: "failed",
    lib.SHMLINE_RUN_STOPPED: "stopped",
}
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class TaskReport(NamedTuple):
    """How a task of an ended run ended: `exit_code` (None if a signal killed it or it never
    started), `signal` (the signal number, or None), `stopped` (the runner had asked it to stop,
    so its exit is not a failure of its own), and its CPU time in seconds."""

    name: str
    pid: int
    exit_code: Optional[int]
    signal: Optional[int]
    stopped: bool
    cpu_s: float


class RunReport(NamedTuple):
    """How a run ended: `outcome` is "finished" (every task exited with status 0), "failed" or
    "stopped"; `signal` is the signal that stopped it, if one did; `duration_s` from the start,
    `running_s` from the moment every task had joined; frames and payload bytes written, all
    streams together; every task's `TaskReport`, in declaration order."""

    outcome: str
    signal: Optional[int]
    duration_s: float
    running_s: float
    frames: int
    bytes: int
    tasks: Dict[str, TaskReport]


class StreamMetrics(NamedTuple):
    """A stream's counters: `fill` is the ring pressure (0.0 empty to 1.0 full, as seen by its
    slowest reader), `frames_per_s`/`bytes_per_s` the rates since the previous `metrics()` call
    (since the start for the first), `writer_waits`/`writer_wait_s` how often and how long the
    writer waited for a full ring (backpressure)."""

    name: str
    capacity: int
    fill: float
    frames: int
    bytes: int
    frames_per_s: float
    bytes_per_s: float
    writer_waits: int
    writer_wait_s: float
    readers: int
    writer_state: str


class TaskMetrics(NamedTuple):
    """A task's process: `running` while it lives; CPU time in seconds and `cpu_percent` of one
    core since the previous `metrics()` call (since the process started for the first);
    resident memory in bytes while it runs (None after). Once the run has ended, `exit_code`,
    `signal` and `stopped` say how it did (as in `TaskReport`); None before."""

    name: str
    pid: Optional[int]
    running: bool
    cpu_s: float
    cpu_percent: float
    rss_bytes: Optional[int]
    exit_code: Optional[int]
    signal: Optional[int]
    stopped: Optional[bool]


class PipelineMetrics(NamedTuple):
    """A snapshot of a run: `state` is "running", "finished", "failed" or "stopped"; seconds
    since the start; every stream and task by name, in declaration order."""

    state: str
    elapsed_s: float
    streams: Dict[str, StreamMetrics]
    tasks: Dict[str, TaskMetrics]


def children() -> List[int]:
    """This process's child processes (the runner thread starts the tasks as children)."""
    pids: List[int] = []
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as f:
                pids += [int(p) for p in f.read().split()]
        return pids
    except OSError:
        pass  # a kernel without CONFIG_PROC_CHILDREN: look at every process's parent
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rpartition(")")[2].split()[1]) == me:
                        pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return pids


def task_pids(pipeline: str) -> Dict[str, int]:
    """The pid of every task of `pipeline` that runs now, by task name (from the environment the
    runner gave each)."""
    want = b"SHMLINE_PIPELINE=" + pipeline.encode()
    pids: Dict[str, int] = {}
    for pid in children():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if want in env:
            for entry in env:
                if entry.startswith(b"SHMLINE_TASK="):
                    pids[entry[len(b"SHMLINE_TASK="):].decode(errors="replace")] = pid
    return pids


def proc_sample(pid: int) -> Optional[Tuple[float, int, float]]:
    """(CPU seconds, resident bytes, age in seconds) of a live process; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError):
        return None
    if fields[0] == "Z":
        return None
    # Fields after the command: state is field 3 of stat(5), so field n is fields[n - 3].
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    rss = int(fields[21]) * PAGE
    age = max(uptime - int(fields[19]) / TICKS, 1e-3)
    return cpu, rss, age
