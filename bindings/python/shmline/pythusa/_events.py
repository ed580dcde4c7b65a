"""`WorkerEvent`: PYTHUSA's counted activation event, over two shmline events.

PYTHUSA builds it from a multiprocessing Event, Semaphore, Lock and Value inherited at spawn, so
it cannot be opened by name. Here it is two named shmline events: a counting event holding the
pending activations (the truth) and a flag event that wakes waiters (a hint). Any process can
open it by name, and a `WorkerEvent` pickles as its names, so it crosses `multiprocessing` and
the pipeline's task processes alike.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any, Optional, Tuple

from ..errors import NotFoundError
from ..event import Event

__all__ = ["EventSpec", "WorkerEvent"]

_counter = itertools.count()


class EventSpec:
    """PYTHUSA's frozen event declaration for `Manager.create_event()`: a name and whether the
    event starts open (one pending activation)."""

    __slots__ = ("name", "initial_state")

    name: str
    initial_state: bool

    def __init__(self, name: str, initial_state: bool = False) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "initial_state", bool(initial_state))

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("EventSpec is frozen")

    def __reduce__(self) -> Tuple[Any, ...]:
        return (EventSpec, (self.name, self.initial_state))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EventSpec) and (self.name, self.initial_state) == \
            (other.name, other.initial_state)

    def __hash__(self) -> int:
        return hash((self.name, self.initial_state))

    def __repr__(self) -> str:
        state = "OPEN" if self.initial_state else "CLOSED"
        return f"EventSpec(name={self.name!r}, initial_state={state})"


class WorkerEvent:
    """A process-shared event with counted activations, as PYTHUSA's.

    `signal()` adds one pending activation and opens the event; `reset()` takes one and closes
    the event when none is left; `wait(timeout)` waits until the event is open (it takes
    nothing); `is_open()` and `pending` read the state. Waiting sleeps on a futex (no polling).

    Differences from PYTHUSA: there is no lock (a process killed inside `signal()` or `reset()`
    cannot leave the event locked for ever): the count is the truth, and `is_open()` is
    `pending > 0`, so the two never disagree. Created by `WorkerEvent(name)` (the creating
    process owns the shared memory and removes it when the event is garbage-collected or
    `close()`d); it pickles as its segment names.
    """

    def __init__(self, name: str, initial_state: bool = False, *, ctx: Any = None) -> None:
        """A new event named `name`, open with one pending activation if `initial_state`.
        `ctx` (PYTHUSA's multiprocessing context) is accepted and not needed."""
        base = f"pythusa-{os.getpid()}-{next(_counter)}.{_segment_safe(name)}"
        self._setup(name, base, create=True)
        if initial_state:
            self.signal()

    def _setup(self, name: str, base: str, create: bool) -> None:
        self.name = name
        self._base = base
        if create:
            self._count = Event.create(base + ".n", mode="counting", unlink_on_close=True)
            self._flag = Event.create(base + ".f", unlink_on_close=True)
        else:
            self._count = Event.open(base + ".n")
            self._flag = Event.open(base + ".f")

    @classmethod
    def _attach(cls, name: str, base: str) -> "WorkerEvent":
        """The event created elsewhere with segments `base`.n and `base`.f."""
        event = cls.__new__(cls)
        event._setup(name, base, create=False)
        return event

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_attach, (self.name, self._base))

    def signal(self) -> None:
        """Adds one pending activation and opens the event (wakes every waiter)."""
        self._count.set()
        self._flag.set()

    def reset(self) -> None:
        """Takes one pending activation, if any; the event closes when none is left."""
        self._count.wait(0)
        if self._count.count == 0:
            self._flag.clear()
            # A signal() between the count and the clear must not be hidden.
            if self._count.count > 0:
                self._flag.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits until the event is open: True then, False if `timeout` seconds passed first
        (None: for ever). Takes no activation."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._count.count > 0:
                return True
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._flag.wait(left):
                return self._count.count > 0
            if self._count.count == 0:
                # Opened, then reset before we looked: close the flag again, then look once
                # more (a signal() after the clear sets the flag again, so no wake-up is lost).
                self._flag.clear()
                if self._count.count > 0:
                    self._flag.set()
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False

    def is_open(self) -> bool:
        """Whether an activation is pending."""
        return self._count.count > 0

    @property
    def pending(self) -> int:
        """The number of pending activations."""
        return self._count.count

    def close(self) -> None:
        """Closes this handle (the creator's removes the shared memory). Closing twice does
        nothing."""
        self._count.close()
        self._flag.close()

    def __repr__(self) -> str:
        state = "OPEN" if self.is_open() else "CLOSED"
        return f"<WorkerEvent '{self.name}' [{state}] pending={self.pending}>"


def _attach(name: str, base: str) -> WorkerEvent:
    try:
        return WorkerEvent._attach(name, base)
    except NotFoundError:
        raise NotFoundError(f"PYTHUSA event {name!r} is gone: the process that created it has "
                            "closed it or exited") from None


def _segment_safe(name: str) -> str:
    """`name` with the characters a segment name cannot hold replaced by '_'."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in name)[:80]
