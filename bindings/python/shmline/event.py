"""Events: process-shared switches (flag mode) and counters of pending signals (counting mode)."""

from __future__ import annotations

from typing import Any, Optional

from ._common import EVENT_MODES, NOT_FOUND, EventMode, check, name_bytes, option
from ._ffi import ffi, lib
from ._handle import Handle

__all__ = ["Event"]


class Event(Handle):
    """A named event that any process can open, set, clear and wait on.

    Flag mode (the default) is a switch: `set()` turns it on until `clear()`, and waiting does
    not turn it off, so one set releases every waiter. Counting mode (`mode="counting"`) is a
    semaphore: each `set()` adds one pending signal and each successful `wait()` takes one, so
    every set releases exactly one wait. Waiting sleeps on a futex (no CPU); Ctrl-C interrupts it
    within about 50 ms. An event handle may be used by any number of threads at once.
    """

    def __init__(self, handle: Any) -> None:
        # Use create() or open().
        self._own(handle, lib.shmline_event_close)
        mode = ffi.new("uint32_t *")
        check(lib.shmline_event_mode(self._h, mode))
        self._mode: EventMode = "counting" if mode[0] == lib.SHMLINE_EVENT_COUNTING else "flag"
        self._name = ""

    @classmethod
    def create(cls, name: str, *, mode: EventMode = "flag", unlink_on_close: bool = False,
               permissions: int = 0o600) -> "Event":
        """Creates the event `name`, clear (exclusively: `AlreadyExistsError` if it exists), and
        opens it. `mode` is "flag" (a switch) or "counting" (a counter of signals; see the
        class). `unlink_on_close` removes the name when this handle is closed; otherwise the
        event lives until `Event.unlink(name)`. The segment is `/dev/shm/shmline.event.<name>`."""
        opts = ffi.new("shmline_event_options *", lib.shmline_event_options_default())
        opts.mode = option(EVENT_MODES, mode, "mode")
        opts.unlink_on_close = bool(unlink_on_close)
        opts.permissions = permissions
        out = ffi.new("shmline_event **")
        check(lib.shmline_event_create(name_bytes(name), opts, out))
        event = cls(out[0])
        event._name = name
        return event

    @classmethod
    def open(cls, name: str) -> "Event":
        """Opens the existing event `name` (`NotFoundError` if there is none)."""
        out = ffi.new("shmline_event **")
        check(lib.shmline_event_open(name_bytes(name), out))
        event = cls(out[0])
        event._name = name
        return event

    @staticmethod
    def unlink(name: str) -> None:
        """Removes the name of event `name`; open handles keep working."""
        check(lib.shmline_event_unlink(name_bytes(name)))

    @staticmethod
    def remove_stale(name: str) -> bool:
        """Removes event `name` if its creator is dead, so that
        the name can be created again after a crash; `create()` never does that by itself.
        Processes that still have the old event open keep their own copy. Returns True if it
        removed the event, False if there was none.

        Raises `AlreadyExistsError` if its creator is alive (nothing is removed),
        `VersionMismatchError` or `CorruptError` if the segment cannot be judged,
        `InvalidNameError` for a bad name, `TypeError` for a name that is not a `str`.
        """
        status = lib.shmline_event_remove_stale(name_bytes(name))
        if status == NOT_FOUND:
            return False
        check(status)
        return True

    @property
    def name(self) -> str:
        """The event's name."""
        return self._name

    @property
    def mode(self) -> EventMode:
        """"flag" (a switch) or "counting" (a counter of signals)."""
        return self._mode

    @property
    def count(self) -> int:
        """Pending signals (counting mode) or 0/1 (flag mode): a snapshot for monitoring."""
        out = ffi.new("uint32_t *")
        self._call(lib.shmline_event_count(self._h, out))
        return int(out[0])

    def set(self) -> None:
        """Flag mode: turns the event on and wakes every waiter. Counting mode: adds one pending
        signal and wakes one waiter. What this process wrote before is visible to the waiter it
        releases."""
        self._call(lib.shmline_event_set(self._h))

    def clear(self) -> None:
        """Turns the event off (flag mode) or drops every pending signal (counting mode)."""
        self._call(lib.shmline_event_clear(self._h))

    def is_set(self) -> bool:
        """Whether the event is on (flag) or has a pending signal (counting), without taking
        it."""
        out = ffi.new("bool *")
        self._call(lib.shmline_event_is_set(self._h, out))
        return bool(out[0])

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits until the event is on (flag mode; it stays on) or takes one pending signal
        (counting mode). Returns True then, or False if `timeout` seconds passed first (None:
        wait for ever; 0: just check), like `threading.Event.wait`."""
        return self._waited(lib.shmline_event_wait, timeout)

    def close(self) -> None:
        """Closes this handle (removing the name if it was created with `unlink_on_close`).
        Closing twice does nothing. Use the handle from no other thread meanwhile."""
        super().close()

    def __repr__(self) -> str:
        return f"<shmline.Event {self._name!r} ({self._mode}){' closed' if self.closed else ''}>"

    def _what(self) -> str:
        return f"event {self._name!r}"
