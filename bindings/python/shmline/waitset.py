"""Waiting on several inputs at once: `WaitSet`, and `select()` to read frames from whichever
reader has one.

    for name, frame in shmline.select(audio=audio_reader, video=video_reader):
        ...  # until both streams have ended

A waiting set sleeps (no CPU) on every member at once (Linux `futex_waitv`; kernels before 5.16
sleep on one member in slices of at most 5 ms) and wakes when a writer publishes, closes, or an
event is set; it wakes every 100 ms to check that the readers' writers are alive.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from . import errors
from ._common import NULL, check, wait_for
from ._ffi import ffi, lib
from ._handle import Handle
from .event import Event
from .reader import Reader

__all__ = ["WaitSet", "select"]

_wait = lib.shmline_waitset_wait


class WaitSet(Handle):
    """Readers (of any streams: lossless, lossy, group members) and events to wait on together.

        ws = shmline.WaitSet()
        frames = ws.add(reader)
        stop = ws.add(stop_event)
        for key in ws.wait(timeout=1.0):
            ...

    `wait()` returns the keys of the members that are ready: a reader whose next read returns at
    once (a frame, or `EndOfStream` / `WriterDead` / an error), an event that is on (flag) or has
    a pending signal (counting; the set does not take it: `event.wait(0)` does, and may find that
    another waiter took it first). Readiness is level-triggered: a member stays ready until read,
    cleared or taken, so `remove()` a reader that reached its end. A member of a reader group may
    claim frames when the set checks it; its next read returns them.

    The set keeps its members alive but does not own them: closing a member while it is in the
    set makes `wait()` raise `ClosedError`. Use a set, and its readers, from one thread at a time.
    """

    def __init__(self) -> None:
        out = ffi.new("shmline_waitset **")
        check(lib.shmline_waitset_create(out))
        self._own(out[0], lib.shmline_waitset_close)
        self._members: Dict[int, Union[Reader[Any], Event]] = {}
        self._key = ffi.new("size_t *")
        self._count = ffi.new("size_t *")
        self._keys = ffi.new("size_t[]", 16)

    def add(self, member: Union[Reader[Any], Event]) -> int:
        """Adds a `Reader` or an `Event`; returns its key (the number of members added before
        it, removed ones included). `InvalidArgumentError` (a `ValueError`) if it is in the set
        already."""
        if isinstance(member, Reader):
            return self.add_reader(member)
        if isinstance(member, Event):
            return self.add_event(member)
        raise TypeError(f"a WaitSet holds Readers and Events, not {type(member).__name__}")

    def add_reader(self, reader: Reader[Any]) -> int:
        """Adds a reader; returns its key."""
        self._open(reader)
        self._call(lib.shmline_waitset_add_reader(self._handle(), reader._h, self._key))
        return self._added(reader)

    def add_event(self, event: Event) -> int:
        """Adds an event; returns its key."""
        self._open(event)
        self._call(lib.shmline_waitset_add_event(self._handle(), event._h, self._key))
        return self._added(event)

    def remove(self, key: int) -> None:
        """Removes the member of key `key` (it stays open); `KeyError` if there is none."""
        if key not in self._members:
            raise KeyError(key)
        self._call(lib.shmline_waitset_remove(self._handle(), key))
        del self._members[key]

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, key: object) -> bool:
        return key in self._members

    def __getitem__(self, key: int) -> Union[Reader[Any], Event]:
        """The member of key `key`."""
        return self._members[key]

    def wait(self, timeout: Optional[float] = None) -> List[int]:
        """Waits until at least one member is ready, for at most `timeout` seconds (None: for
        ever; 0: just check), and returns the keys of every ready member in increasing order:
        an empty list if none became ready in time (like `select.select`).
        `InvalidArgumentError` (a `ValueError`) for a set with no member; `ClosedError` if a
        member was closed."""
        if not self._members:
            raise errors.InvalidArgumentError(
                "wait on an empty WaitSet would wait for nothing: add a member first")
        for member in self._members.values():
            self._open(member)
        if len(self._keys) < len(self._members):
            self._keys = ffi.new("size_t[]", len(self._members))
        h, keys, count, cap = self._handle(), self._keys, self._count, len(self._keys)
        try:
            self._call(wait_for(lambda ns: _wait(h, ns, keys, cap, count), timeout, ""))
        except errors.Timeout:
            return []
        return [int(keys[i]) for i in range(count[0])]

    def close(self) -> None:
        """Closes the set (not its members). Closing twice does nothing."""
        super().close()
        self._members.clear()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._members)} members"
        return f"<shmline.WaitSet {state}>"

    def _added(self, member: Union[Reader[Any], Event]) -> int:
        key = int(self._key[0])
        self._members[key] = member
        return key

    def _handle(self) -> Any:
        if self._h == NULL:
            raise errors.ClosedError(f"{self._what()} is closed")
        return self._h

    def _what(self) -> str:
        return "the WaitSet"

    @staticmethod
    def _open(member: Union[Reader[Any], Event]) -> None:
        if member.closed:
            raise errors.ClosedError(f"{member!r} is closed: remove it from the WaitSet first")


def select(*, timeout: Optional[float] = None,
           **readers: Reader[Any]) -> Iterator[Tuple[str, Any]]:
    """Yields `(name, frame)` from whichever reader has a frame, until every reader's stream has
    ended (its writer closed it and every frame was read); each keyword names a reader.

        for name, frame in shmline.select(a=reader_a, b=reader_b):
            print(name, frame)

    The readers may also be `shmline.pythusa` reader bindings (PYTHUSA tasks' fan-in without
    polling). Ready readers take turns, one frame each, so a busy input does not starve a quiet
    one; each reader still sees its own frames in order. Raises `WriterDead` when an input's
    writer died without closing its stream (after its last frame: nothing is lost silently), and
    `Timeout` if no frame and no end arrives for `timeout` seconds (None: wait for ever).
    """
    for name, reader in list(readers.items()):
        # A binding that wraps a Reader (a `shmline.pythusa` reader binding) is read through it.
        inner = getattr(reader, "reader", None)
        if not isinstance(reader, Reader) and isinstance(inner, Reader):
            readers[name] = reader = inner
        if not isinstance(reader, Reader):
            raise TypeError(f"select() reads Readers; {name}= is a {type(reader).__name__}")
    with WaitSet() as ws:
        names = {ws.add_reader(reader): name for name, reader in readers.items()}
        while names:
            ready = ws.wait(timeout)
            if not ready:
                raise errors.Timeout(f"no frame from {sorted(names.values())} within the timeout "
                                     f"of {timeout} s")
            for key in ready:
                try:
                    frame = readers[names[key]].try_read()
                except errors.EndOfStream:
                    ws.remove(key)
                    del names[key]
                    continue
                if frame is not None:
                    yield names[key], frame
