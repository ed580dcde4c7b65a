"""dsline's Python API over shmline: `import shmline.dsline as dsline` runs dsline programs.

    import shmline.dsline as dsline

    with dsline.ShmChannel("demo", capacity=4, slot_size=64) as ch:
        ch.send(b"hello")
        assert ch.recv() == b"hello"

dsline 0.0.1's `ShmChannel` is an in-process prototype: its name is only a label, and two
channels of one name are independent. Here a channel is a shmline stream of bytes: a second
`ShmChannel` of the same name, in this process or any other, opens the same channel, so one
process sends and another receives. What changes with that (and every other difference from
dsline) is listed in the "Coming from dsline" section of the package README; in short:

- The first `ShmChannel(name)` creates the stream `name` (`shmline ls` shows it); later ones
  open it and use its capacity and slot size, whatever they asked for. A name is 1 to 200
  characters of `A-Za-z0-9_.-` (`InvalidNameError`, a `ValueError`, otherwise).
- `capacity` is rounded up to a power of two (shmline's rings are), and `.capacity` says what
  the channel has.
- Every handle of a channel receives from one shared queue (a shmline reader group): each
  message goes to exactly one `recv()`, in any process, in the order sent. Messages sent before
  any receiver opened wait in the queue: the channel's creator holds the queue from the start.
  If every handle of a channel is gone (closed and collected, or its process ended) while
  messages are queued, the queue is made again by the next handle from the oldest message the
  ring still holds: messages received before then may come again (at most `capacity`).
- One handle sends: the first `send()` makes it the channel's only sender (a second sending
  handle gets `ChannelError`).
- `close()` ends the channel for everyone when the handle has sent: receivers get the messages
  still queued, then `ChannelClosedError`. Whoever finds the channel ended and empty (or, closing
  the last handle, empty and never sent to) removes its name from `/dev/shm`; a channel closed
  with messages nobody receives stays until `ShmChannel.unlink(name)` or `shmline clean`.
- `Backpressure.Block` with `timeout=None` waits for a receiver for ever (dsline 0.0.1 raises
  `BufferFullError` at once); `recv()` never waits, as in dsline, unless given a `timeout`.
- A corrupted message (checksum failure) is not consumed: every `recv()` raises
  `CorruptedMessageError` for it again.
"""

from __future__ import annotations

import enum
import os
from typing import Any, Optional

from . import errors
from .errors import ShmlineError
from .reader import Reader
from .stream import Stream
from .writer import Writer

__all__ = [
    "ShmChannel", "Backpressure", "DslineError", "ChannelError", "ChannelClosedError",
    "BufferFullError", "BufferEmptyError", "MessageTooLargeError", "CorruptedMessageError",
    "__version__",
]

#: The dsline version whose API this module follows.
__version__ = "0.0.1"

# The reader group every handle of a channel receives through (one queue per channel).
GROUP = "dsline"
# Reader slots of a channel's stream: one per open handle, in any process.
MAX_HANDLES = 64
# Where Linux keeps the segment of stream `name` (the name's file, to tell a channel from a new
# one of the same name before removing the name).
SEGMENT = "/dev/shm/shmline.stream.{}"


class Backpressure(enum.Enum):
    """What `send()` does when the channel holds `capacity` messages nobody received yet."""

    #: Wait for a receiver to make room (for ever, or `BufferFullError` after `timeout`).
    Block = "block"
    #: Raise `BufferFullError` at once; the message is not sent.
    Raise = "raise"
    #: Discard the message being sent (`send()` returns as if it was sent).
    DropNewest = "drop_newest"
    #: Discard the oldest message still queued and send this one.
    DropOldest = "drop_oldest"


#: dsline's base exception: every shmline exception (`ShmlineError`), so that `except
#: DslineError` also catches what shmline raises beyond dsline's list (a bad name...).
DslineError = ShmlineError


class ChannelError(ShmlineError):
    """A channel operation failed (dsline's `ChannelError`); the classes below derive from it
    and from the shmline exception of the same meaning."""


class ChannelClosedError(ChannelError, errors.EndOfStream):
    """The channel is closed: `send()` after `close()` or after the sender closed it, or `recv()`
    once every message was received from a closed channel (or from a sender that died)."""


class BufferFullError(ChannelError, errors.Full):
    """`send()` found the channel full: at once under `Backpressure.Raise`, or after `timeout`
    under `Backpressure.Block` (dsline has no timeout error: a timeout is a full buffer)."""


class BufferEmptyError(ChannelError, errors.Empty):
    """`recv()` found no message (at once, or after its `timeout`)."""


class MessageTooLargeError(ChannelError, errors.FrameTooLargeError):
    """The message is longer than the channel's `slot_size`; nothing was sent."""


class CorruptedMessageError(ChannelError, errors.CorruptError):
    """A message failed its checksum (or the channel's memory holds an impossible value)."""


class ShmChannel:
    """A channel of bytes messages between processes, opened by name (dsline's `ShmChannel`).

    `ShmChannel(name)` opens the channel `name`, creating it if it does not exist, with room for
    `capacity` messages (rounded up to a power of two) of at most `slot_size` bytes, every
    message checksummed. `backpressure` and `timeout` are this handle's: what its `send()` does
    when the channel is full. Any number of handles, in any processes, receive from the channel
    (each message goes to one of them); one of them sends.

    Raises `ValueError` for an empty name, a `capacity` or `slot_size` below 1 or a negative
    `timeout` (as dsline does), `InvalidNameError` (a `ValueError`) for a name shmline cannot
    use, and `ChannelError` if `name` is a shmline stream that is not a bytes channel.
    """

    def __init__(
        self,
        name: str,
        capacity: int = 1024,
        slot_size: int = 4096,
        backpressure: Backpressure = Backpressure.Block,
        timeout: Optional[float] = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        if not name.strip():
            raise ValueError("channel name must not be empty")
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        if slot_size < 1:
            raise ValueError(f"slot_size must be at least 1, not {slot_size}")
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout must be None or >= 0, not {timeout!r}")
        if not isinstance(backpressure, Backpressure):
            raise TypeError(f"backpressure must be a dsline.Backpressure, not {backpressure!r}")
        self._name = name
        self._backpressure = backpressure
        self._timeout = timeout
        self._closed = False
        self._writer: Optional[Writer[Any]] = None
        self._member: Optional[Reader[bytes]] = None
        self._unlinked = False
        self._stream = self._open_or_create(name, capacity, slot_size)
        if self._stream.dtype is not None:
            raise ChannelError(
                f"stream {name!r} carries arrays of {self._stream.dtype}, not bytes messages: "
                "it is not a channel")
        try:
            self._inode: Optional[int] = os.stat(SEGMENT.format(name)).st_ino
        except OSError:
            self._inode = None  # not on Linux's /dev/shm: never removes the name itself
        # Joined now, not at the first recv(): the group is the channel's queue, and it holds
        # the messages sent before any receiver asks for one.
        self._member = self._stream.reader(group=GROUP, start="oldest")

    @staticmethod
    def _open_or_create(name: str, capacity: int, slot_size: int) -> Stream[Any]:
        # Another process may create or remove the name between the two calls: try again.
        while True:
            try:
                return Stream.open(name)
            except errors.NotFoundError:
                pass
            try:
                return Stream.create(
                    name, max_frame_size=slot_size, capacity=1 << (capacity - 1).bit_length(),
                    max_readers=MAX_HANDLES, checksum=True)
            except errors.AlreadyExistsError:
                pass

    @staticmethod
    def unlink(name: str) -> None:
        """Removes the name of channel `name` (`NotFoundError` if there is none): for a channel
        that was never drained to its end. Handles open on it keep working."""
        Stream.unlink(name)

    @property
    def name(self) -> str:
        """The channel's name."""
        return self._name

    @property
    def capacity(self) -> int:
        """How many messages the channel holds: the `capacity` asked for rounded up to a power
        of two, or the capacity of the channel that existed under this name."""
        return self._stream.capacity

    @property
    def slot_size(self) -> int:
        """The longest message in bytes."""
        return self._stream.max_frame_size

    @property
    def backpressure(self) -> Backpressure:
        """What this handle's `send()` does when the channel is full."""
        return self._backpressure

    @property
    def closed(self) -> bool:
        """Whether the channel is closed: this handle was closed, or its sender closed it (or
        died)."""
        return self._closed or self._ended()

    def send(self, data: Any) -> None:
        """Sends `data` (any bytes-like object) as one message.

        When the channel already holds `capacity` messages, what happens is this handle's
        `backpressure`: `Block` waits for room (`BufferFullError` after `timeout` seconds; None
        waits for ever), `Raise` raises `BufferFullError`, `DropNewest` discards `data`,
        `DropOldest` discards the oldest queued message and sends `data`. Raises
        `MessageTooLargeError` (nothing sent) for data longer than `slot_size`, and
        `ChannelClosedError` after `close()` or once the channel's sender closed it.
        """
        if self._closed:
            raise ChannelClosedError(f"channel {self._name!r} is closed: nothing can be sent")
        writer = self._writer or self._open_writer()
        policy = self._backpressure
        try:
            if policy is Backpressure.Block:
                writer.write(data, timeout=self._timeout)
            elif writer.try_write(data):
                pass
            elif policy is Backpressure.Raise:
                raise BufferFullError(
                    f"channel {self._name!r} is full ({self.capacity} messages): the message "
                    "was not sent")
            elif policy is Backpressure.DropOldest:
                self._send_dropping_oldest(writer, data)
        except errors.FrameTooLargeError as e:
            raise MessageTooLargeError(str(e)) from None
        except (errors.Timeout, errors.Full) as e:
            raise BufferFullError(str(e)) from None
        except errors.CorruptError as e:  # the oldest message, received to be dropped
            raise CorruptedMessageError(str(e)) from None

    def _open_writer(self) -> Writer[Any]:
        try:
            self._writer = self._stream.writer()
        except (errors.WriterExistsError, errors.WrongStateError) as e:
            if self._ended():
                raise ChannelClosedError(
                    f"channel {self._name!r} was closed by its sender: nothing can be sent "
                    "(receivers drain it; a new channel of this name can be made once it is "
                    "drained or unlinked)") from None
            raise ChannelError(
                f"channel {self._name!r} already has a sender ({e}): one handle sends") from None
        return self._writer

    def _send_dropping_oldest(self, writer: Writer[Any], data: Any) -> None:
        """Makes room by receiving (and discarding) the oldest queued message through this
        handle, then sends; waits as `Block` if that cannot make room (a reader outside the
        channel's queue, such as a shmline reader of the stream, holds the writer back)."""
        member = self._member
        while member is not None:
            dropped = member.try_read()
            if writer.try_write(data):
                return
            if dropped is None:
                break
        writer.write(data, timeout=self._timeout)

    def recv(self, timeout: Optional[float] = 0.0) -> bytes:
        """The oldest message nobody received yet.

        By default (dsline's behaviour) it does not wait: `BufferEmptyError` if no message is
        queued. `timeout` (an extension) waits that many seconds for one (None: for ever) before
        raising `BufferEmptyError`. Raises `ChannelClosedError` once the channel is closed (this
        handle closed, or its sender closed or died) and every message was received, and
        `CorruptedMessageError` for a message that fails its checksum (it is not consumed).
        """
        member = self._member
        if member is None:
            raise ChannelClosedError(f"channel {self._name!r} is closed and empty")
        try:
            if timeout == 0:
                message = member.try_read()
            else:
                message = member.read(timeout=timeout)
        except errors.Timeout:
            message = None
        except (errors.EndOfStream, errors.WriterDead) as e:
            self._finish()
            why = "its sender died" if isinstance(e, errors.WriterDead) else "it was closed"
            raise ChannelClosedError(
                f"channel {self._name!r} is empty and {why}: every message was received") \
                from None
        except errors.CorruptError as e:
            raise CorruptedMessageError(str(e)) from None
        if message is None:
            if self._closed:
                self._finish()
                raise ChannelClosedError(f"channel {self._name!r} is closed and empty")
            raise BufferEmptyError(f"channel {self._name!r} has no message")
        return message

    def __len__(self) -> int:
        """How many messages are queued: sent and not yet received by anyone."""
        if self._stream.closed:
            return 0
        stats = self._stream.stats()
        queue = [r.position for r in stats.readers if r.group == GROUP]
        if not queue:
            return 0
        return max(0, stats.frames_written - min(queue))

    def close(self) -> None:
        """Closes this handle. If it sent, that closes the channel: receivers (this handle
        included) get the messages still queued, then `ChannelClosedError`. `send()` raises
        `ChannelClosedError` from now on, and this handle's `recv()` raises it instead of
        `BufferEmptyError` once nothing is queued. Closing twice does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.close()
        self._remove_if_done()

    def _finish(self) -> None:
        """After the last `recv()` this handle can make: leaves the queue and removes the name
        if the channel is over."""
        if self._member is not None:
            self._member.close()
            self._member = None
        self._remove_if_done()

    def _ended(self) -> bool:
        """Whether the channel's sender closed it or died (no message can come any more)."""
        if self._stream.closed:
            return True
        return self._stream.stats().writer_state in ("closed", "dead")

    def _remove_if_done(self) -> None:
        """Removes the channel's name once nobody can use it any more: it is empty, and either
        ended (its sender closed it or died) or never had a sender and this handle is the last
        one open. The next `ShmChannel` of this name makes a new channel; handles still open keep
        their mapping (and get `ChannelClosedError`)."""
        if self._unlinked or self._inode is None or self._stream.closed:
            return
        stats = self._stream.stats()
        queue = [r.position for r in stats.readers if r.group == GROUP]
        if queue and stats.frames_written > min(queue):
            return  # messages wait for a receiver
        ended = stats.writer_state in ("closed", "dead")
        mine = 0 if self._member is None else 1
        others = sum(1 for r in stats.readers if r.group == GROUP and r.alive) - mine
        if not ended and (stats.writer_state != "none" or others > 0):
            return  # a sender or another handle may still use it
        self._unlinked = True
        path = SEGMENT.format(self._name)
        try:
            # The name may already be another channel's (someone removed ours and made a new
            # one): remove it only if it is still this segment.
            if os.stat(path).st_ino == self._inode:
                Stream.unlink(self._name)
        except (OSError, errors.NotFoundError):
            pass

    def __enter__(self) -> "ShmChannel":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __reduce__(self) -> Any:
        # A channel is its name: another process (multiprocessing's spawn) opens the same one.
        return (ShmChannel, (self._name, self.capacity, self.slot_size, self._backpressure,
                             self._timeout))

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (f"<shmline.dsline.ShmChannel {self._name!r} capacity={self.capacity} "
                f"slot_size={self.slot_size}{state}>")
