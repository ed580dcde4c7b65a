"""Exceptions: one class per C status code under ShmlineError, each also the closest built-in
exception, carrying the library's message; and the bad inputs that raise them."""

from __future__ import annotations

import signal

import numpy as np
import pytest

import shmline
from shmline import errors
from shmline._ffi import ffi, lib

from conftest import finish, run_python


def test_every_c_status_but_ok_has_its_own_exception_class_under_shmline_error():
    statuses = {}
    for code in range(-40, 10):
        name = ffi.string(lib.shmline_status_str(code)).decode()
        if name not in ("UNKNOWN", "OK"):
            statuses[code] = name
    classes = {code: type(errors.error_for(code)) for code in statuses}
    for code, cls in classes.items():
        assert issubclass(cls, shmline.ShmlineError), statuses[code]
        assert cls.status == code, statuses[code]
        assert cls is not shmline.ShmlineError, f"no class for {statuses[code]}"
    assert len(set(classes.values())) == len(statuses)


@pytest.mark.parametrize("cls, builtin", [
    (shmline.Timeout, TimeoutError),
    (shmline.NotFoundError, FileNotFoundError),
    (shmline.AlreadyExistsError, FileExistsError),
    (shmline.PermissionDeniedError, PermissionError),
    (shmline.InvalidArgumentError, ValueError),
    (shmline.InvalidNameError, ValueError),
    (shmline.SchemaMismatchError, ValueError),
    (shmline.NoSpaceError, OSError),
    (shmline.ClosedError, ValueError),
])
def test_exceptions_are_also_the_matching_builtin_exception(cls, builtin):
    assert issubclass(cls, builtin) and issubclass(cls, shmline.ShmlineError)
    error = cls("what went wrong")
    assert str(error) == "what went wrong"
    assert error.status_name == ("" if cls is shmline.ClosedError else
                                 ffi.string(lib.shmline_status_str(cls.status)).decode())


def test_opening_an_unknown_stream_or_event_raises_not_found_naming_it(name):
    with pytest.raises(FileNotFoundError, match=name) as caught:
        shmline.Stream.open(name)
    assert isinstance(caught.value, shmline.NotFoundError)
    assert caught.value.status_name == "NOT_FOUND"
    with pytest.raises(shmline.NotFoundError):
        shmline.Event.open(name)


def test_creating_a_name_that_exists_raises_already_exists(name):
    with shmline.Stream.create(name, max_frame_size=8, unlink_on_close=True):
        with pytest.raises(shmline.AlreadyExistsError):
            shmline.Stream.create(name, max_frame_size=8)
    with shmline.Event.create(name, unlink_on_close=True):
        with pytest.raises(FileExistsError):
            shmline.Event.create(name)


@pytest.mark.parametrize("bad", ["", "a/b", ".hidden", "x" * 201, "sp ace"])
def test_invalid_names_raise_invalid_name(bad):
    with pytest.raises(shmline.InvalidNameError):
        shmline.Stream.create(bad, max_frame_size=8)
    with pytest.raises(shmline.InvalidNameError):
        shmline.Event.open(bad)


def test_bad_options_raise_invalid_argument_saying_what_to_fix(name):
    with pytest.raises(shmline.InvalidArgumentError, match="capacity"):
        shmline.Stream.create(name, max_frame_size=8, capacity=3)
    with pytest.raises(shmline.InvalidArgumentError):
        shmline.Stream.create(name)  # neither a schema nor a maximum frame size
    with pytest.raises(ValueError, match="wait"):
        shmline.Stream.create(name, max_frame_size=8, unlink_on_close=True).writer(wait="nap")


def test_a_bad_option_string_raises_invalid_argument_naming_it_and_every_accepted_value(name):
    with shmline.Stream.create(name, max_frame_size=8, unlink_on_close=True) as stream:
        refused = [
            ("wait", "'adaptive', 'busy_spin', 'block'", lambda: stream.reader(wait="spin")),
            ("start", "'next', 'newest', 'oldest'", lambda: stream.reader(start="latest")),
            ("backpressure", "'block', 'fail', 'drop_newest', 'drop_oldest'",
             lambda: shmline.Stream.create(name + "-b", max_frame_size=8, backpressure="drop")),
            ("mode", "'flag', 'counting'", lambda: shmline.Event.create(name + "-e", mode="count")),
            ("mode", "'flag', 'counting'",
             lambda: shmline.Pipeline(name + "-p").add_event("e", mode=True)),
        ]
        for option, accepted, call in refused:
            with pytest.raises(shmline.InvalidArgumentError) as caught:
                call()
            assert isinstance(caught.value, ValueError)
            message = str(caught.value)
            assert message.startswith(f"{option} must be one of {accepted}, not "), message
            assert message.endswith(("'spin'", "'latest'", "'drop'", "'count'", "True")), message


def test_a_second_writer_raises_writer_exists(name):
    with shmline.Stream.create(name, max_frame_size=8, unlink_on_close=True) as s:
        writer = s.writer()
        with pytest.raises(shmline.WriterExistsError):
            s.writer()
        writer.close()
        with pytest.raises(shmline.WrongStateError):
            s.writer()  # a stream has one writer for its whole life


def test_more_readers_than_the_stream_allows_raise_too_many_readers(name):
    with shmline.Stream.create(name, max_frame_size=8, max_readers=2, unlink_on_close=True) as s:
        readers = [s.reader(), s.reader()]
        with pytest.raises(shmline.TooManyReadersError):
            s.reader()
        readers[0].close()
        s.reader().close()


def test_closed_handles_raise_closed_error_and_closing_twice_is_harmless(name):
    s = shmline.Stream.create(name, shape=(2,), dtype=np.uint8, unlink_on_close=True)
    reader, writer = s.reader(), s.writer()
    event = shmline.Event.create(name, unlink_on_close=True)
    for handle in (s, reader, writer, event):
        handle.close()
        handle.close()
        assert handle.closed
    with pytest.raises(shmline.ClosedError, match="closed"):
        writer.write(np.zeros(2, np.uint8))
    with pytest.raises(shmline.ClosedError):
        reader.read()
    with pytest.raises(shmline.ClosedError):
        reader.read_batch(3)
    with pytest.raises(shmline.ClosedError):
        s.reader()
    with pytest.raises(shmline.ClosedError):
        s.stats()
    with pytest.raises(shmline.ClosedError):
        event.set()


@pytest.mark.parametrize("how", ["read", "read_into", "read_batch_into", "read large"])
def test_a_frame_of_the_wrong_size_from_a_foreign_writer_raises_schema_mismatch(name, how):
    from shmline._ffi import ffi as f

    # "read large": frames above the size read() copies through a reused array.
    shape = (4096,) if how == "read large" else (4,)
    size = 4 * shape[0]
    with shmline.Stream.create(name, shape=shape, dtype=np.float32, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        writer.write(np.ones(shape, np.float32))
        # A C writer is free to ignore the schema: write 3 bytes through the C API directly.
        assert lib.shmline_writer_write(writer._h, f.from_buffer(b"abc"), 3, 0, 0) == 0
        writer.write(np.ones(shape, np.float32))
        wrong = f"frame 1 .* is 3 bytes.*{size} bytes"
        if how == "read_batch_into":
            with pytest.raises(shmline.SchemaMismatchError, match=wrong):
                reader.read_batch_into(np.empty((3, *shape), np.float32))
        elif how == "read_into":
            out = np.empty(shape, np.float32)
            assert reader.read_into(out) == size
            with pytest.raises(shmline.SchemaMismatchError, match=wrong):
                reader.read_into(out)
        else:
            assert reader.read().sum() == shape[0]
            with pytest.raises(shmline.SchemaMismatchError, match=wrong):
                reader.read()


class _StillWaiting(Exception):
    """Raised by the alarm of `still_waiting_after` into the call it interrupts."""


def still_waiting_after(seconds: float, call) -> None:
    """Checks that `call()` is still waiting after `seconds` (it is interrupted then, between two
    of its wait slices), rather than returning or raising anything else."""
    def interrupt(*_: object) -> None:
        raise _StillWaiting

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        with pytest.raises(_StillWaiting):
            call()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("forever", [float("inf"), 1e300, 10**400])
def test_an_infinite_or_huge_timeout_waits_for_ever_instead_of_overflowing(name, forever):
    with shmline.Stream.create(name, max_frame_size=8, capacity=2, unlink_on_close=True) as s, \
            shmline.Event.create(name, unlink_on_close=True) as event:
        reader, writer = s.reader(), s.writer()
        buf = bytearray(8)
        still_waiting_after(0.2, lambda: reader.read(timeout=forever))
        still_waiting_after(0.2, lambda: reader.read_into(buf, timeout=forever))
        still_waiting_after(0.2, lambda: reader.read_batch(4, timeout=forever))
        still_waiting_after(0.2, lambda: reader.acquire(timeout=forever))
        still_waiting_after(0.2, lambda: writer.wait_for_readers(2, timeout=forever))
        still_waiting_after(0.2, lambda: event.wait(timeout=forever))
        writer.write_batch([b"a", b"b"])  # the ring is full now
        still_waiting_after(0.2, lambda: writer.write(b"c", timeout=forever))
        still_waiting_after(0.2, lambda: writer.write_batch([b"c"], timeout=forever))
        still_waiting_after(0.2, lambda: writer.reserve(timeout=forever))
        # Every handle is still usable, and nothing extra was written.
        assert [reader.read(timeout=forever), reader.read(timeout=forever)] == [b"a", b"b"]
        assert writer.write(b"c", timeout=forever) is True
        event.set()
        assert event.wait(timeout=forever) is True
        writer.close()
        reader.close()


@pytest.mark.parametrize("bad", [-1, float("nan")])
def test_a_negative_or_nan_timeout_raises_value_error_naming_the_argument(name, bad):
    with shmline.Stream.create(name, max_frame_size=8, unlink_on_close=True) as s, \
            shmline.Event.create(name, unlink_on_close=True) as event:
        with s.reader() as reader, s.writer() as writer:
            for call in (lambda: reader.read(timeout=bad), lambda: writer.write(b"x", timeout=bad),
                         lambda: writer.reserve(timeout=bad), lambda: event.wait(timeout=bad)):
                with pytest.raises(ValueError, match="timeout"):
                    call()


@pytest.mark.parametrize("bad", [5, b"bytes-name", None, ["list"]])
def test_a_name_that_is_not_a_str_raises_type_error_naming_the_argument(name, bad):
    calls = [
        lambda: shmline.Stream.create(bad, max_frame_size=8),
        lambda: shmline.Stream.open(bad),
        lambda: shmline.Stream.unlink(bad),
        lambda: shmline.Stream.remove_stale(bad),
        lambda: shmline.Event.create(bad),
        lambda: shmline.Event.open(bad),
        lambda: shmline.Event.unlink(bad),
        lambda: shmline.Event.remove_stale(bad),
    ]
    for call in calls:
        with pytest.raises(TypeError, match=r"^name must be a str, not "):
            call()
    if bad is not None:  # group=None is a plain reader
        with shmline.Stream.create(name, max_frame_size=8, unlink_on_close=True) as s:
            with pytest.raises(TypeError, match=r"^group must be a str"):
                s.reader(group=bad)


_LEAVE_BEHIND = """
import sys, shmline
# Made, then left behind: this process exits without removing them.
shmline.Stream.create(sys.argv[1], max_frame_size=8)
shmline.Event.create(sys.argv[1])
print("left")
"""


def test_remove_stale_recovers_names_left_by_a_dead_process_and_the_error_says_so(name):
    finish(run_python(_LEAVE_BEHIND, name), "left")
    with pytest.raises(shmline.AlreadyExistsError) as stream_exists:
        shmline.Stream.create(name, max_frame_size=8, unlink_on_close=True)
    with pytest.raises(shmline.AlreadyExistsError) as event_exists:
        shmline.Event.create(name, unlink_on_close=True)
    # The messages name the Python call that recovers the name, not the C or Rust one.
    assert "shmline.Stream.remove_stale" in str(stream_exists.value)
    assert "shmline.Event.remove_stale" in str(event_exists.value)
    for message in (str(stream_exists.value), str(event_exists.value)):
        assert "shmline_" not in message and "::" not in message, message
    assert shmline.Stream.remove_stale(name) is True
    assert shmline.Stream.remove_stale(name) is False
    assert shmline.Event.remove_stale(name) is True
    assert shmline.Event.remove_stale(name) is False
    with shmline.Stream.create(name, max_frame_size=8, unlink_on_close=True), \
            shmline.Event.create(name, unlink_on_close=True):
        # Names in use by a live process are never removed.
        with pytest.raises(shmline.AlreadyExistsError, match="in use"):
            shmline.Stream.remove_stale(name)
        with pytest.raises(shmline.AlreadyExistsError, match="alive|in use"):
            shmline.Event.remove_stale(name)
        with pytest.raises(shmline.InvalidNameError):
            shmline.Stream.remove_stale("bad/name")


@pytest.mark.parametrize("forever", [float("inf"), 1e300, 10**400])
def test_a_pipeline_takes_an_infinite_or_huge_join_timeout_and_stop_grace(name, forever):
    with shmline.Pipeline(name, join_timeout=forever, stop_grace=forever) as pipeline:
        assert pipeline.name == name
    with pytest.raises(ValueError, match="join_timeout"):
        shmline.Pipeline(name, join_timeout=-1)


@pytest.mark.parametrize("bad", [5, b"bytes-name", None])
def test_a_pipeline_name_that_is_not_a_str_raises_type_error(name, bad):
    with pytest.raises(TypeError, match=r"^name must be a str, not "):
        shmline.Pipeline(bad)
    with shmline.Pipeline(name) as pipeline:
        for declare in (pipeline.add_stream, pipeline.add_event):
            with pytest.raises(TypeError, match="name is a str"):
                declare(bad)


@pytest.mark.parametrize("bad", [5, b"bytes-name", ["list"]])
def test_a_task_joining_with_a_pipeline_or_task_name_that_is_not_a_str_raises_type_error(bad):
    with pytest.raises(TypeError, match=r"^pipeline must be a str, not "):
        shmline.Task.join(pipeline=bad, task="t")
    with pytest.raises(TypeError, match=r"^task must be a str, not "):
        shmline.Task.join(pipeline="p", task=bad)
