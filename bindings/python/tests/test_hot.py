"""The per-frame hot paths: the compiled calls of API-mode builds (shmline._fastpath) and the cffi
paths they fall back to give the same frames, checks and errors."""

from __future__ import annotations

import gc
import os
import sys
import weakref

import numpy as np
import pytest

import shmline
from shmline import _hot
from shmline._ffi import ffi, lib


def cffi_only(*handles):
    """Makes writers and readers take their cffi paths, as in a build without the compiled
    calls."""
    for h in handles:
        for attr in ("_fast_write", "_fast_reserve_slot", "_fast_reserve", "_fast_read",
                     "_fast_read_into", "_fast_acquire_slot", "_fast_acquire"):
            if hasattr(h, attr):
                setattr(h, attr, _hot.nothing)


PATHS = ["compiled", "cffi"]


def test_the_compiled_calls_are_there_where_the_build_has_them_and_read_numpy_arrays_right():
    # API-mode builds have them; ABI-mode wheels on CPython 3.11 and later have the limited-API
    # build (_fastpath.abi3.so). CI sets SHMLINE_REQUIRE_COMPILED where they must be.
    if _hot.WriterCore is None:
        if os.environ.get("SHMLINE_REQUIRE_COMPILED"):
            pytest.fail(f"SHMLINE_REQUIRE_COMPILED is set but this build ({shmline.cffi_mode} "
                        f"mode, Python {sys.version.split()[0]}) runs without the compiled calls")
        pytest.skip("this build has no compiled calls (ABI mode before CPython 3.11, or a build "
                    "that could not compile them)")
    assert _hot.ReaderCore is not None
    assert issubclass(shmline.WriteSlot, _hot.WriteSlotBase)
    assert issubclass(shmline.ReadSlot, _hot.ReadSlotBase)
    from shmline import _fastpath
    limited = ".abi3." in os.path.basename(_fastpath.__file__)
    assert limited == (shmline.cffi_mode == "abi")
    assert not limited or sys.version_info >= (3, 11)


@pytest.mark.parametrize("path", PATHS)
def test_frames_small_and_large_come_back_equal_whichever_path_moves_them(name, path):
    # 64 KiB is the largest frame the compiled calls copy; 128 KiB goes through cffi anyway.
    for shape in [(8,), (3, 5), (8192,), (16384,)]:
        with shmline.Stream.create(f"{name}-{shape[-1]}", shape=shape, dtype=np.float64,
                                   capacity=4, unlink_on_close=True) as s:
            reader, writer = s.reader(), s.writer()
            if path == "cffi":
                cffi_only(reader, writer)
            frames = [np.random.default_rng(i).random(shape) for i in range(3)]
            out = np.empty(shape)
            writer.write(frames[0], flags=7)
            writer.write(frames[1])
            writer.write(frames[2])
            got = reader.read()
            np.testing.assert_array_equal(got, frames[0])
            assert reader.info.flags == 7 and reader.info.seq == 0
            assert reader.read_into(out) == frames[1].nbytes
            np.testing.assert_array_equal(out, frames[1])
            np.testing.assert_array_equal(reader.read(), frames[2])
            assert reader.info.seq == 2 and got is not out


@pytest.mark.parametrize("path", PATHS)
def test_bytes_frames_of_any_buffer_type_come_back_whichever_path_moves_them(name, path):
    with shmline.Stream.create(name, max_frame_size=100_000, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        if path == "cffi":
            cffi_only(reader, writer)
        sent = [b"", b"abc", bytearray(b"xyz" * 10), memoryview(b"0123456789")[2:6],
                np.arange(4, dtype=np.int16), bytes(range(256)) * 300]
        for frame in sent:
            writer.write(frame)
        for frame in sent[:3]:
            assert reader.read() == bytes(frame)
        into = bytearray(100_000)
        for frame in sent[3:]:
            n = reader.read_into(memoryview(into))
            assert bytes(into[:n]) == bytes(frame)


@pytest.mark.parametrize("path", PATHS)
def test_an_array_reshaped_or_retyped_in_place_after_a_write_is_refused_next_time(name, path):
    with shmline.Stream.create(name, shape=(8,), dtype=np.uint64, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        if path == "cffi":
            cffi_only(reader, writer)
        frame = np.arange(8, dtype=np.uint64)
        writer.write(frame)
        # resize() rather than `frame.shape = ...`, which NumPy 2.5 deprecates: both change the
        # shape of this very object in place, which is what the test needs.
        frame.resize((2, 4), refcheck=False)
        with pytest.raises(shmline.SchemaMismatchError, match=r"\(2, 4\)"):
            writer.write(frame)
        frame.resize((8,), refcheck=False)
        frame.dtype = np.int64
        with pytest.raises(shmline.SchemaMismatchError, match="int64"):
            writer.write(frame)
        out = np.empty(8, np.uint64)
        assert reader.read_into(out) == 64
        out.resize((4, 2), refcheck=False)
        writer.write(np.zeros(8, np.uint64))
        with pytest.raises(shmline.SchemaMismatchError):
            reader.read_into(out)
        assert writer.position == 2 and reader.position == 1


@pytest.mark.parametrize("path", PATHS)
def test_bad_timeouts_and_flags_are_refused_even_when_the_call_could_succeed_now(name, path):
    with shmline.Stream.create(name, shape=(2,), dtype=np.int32, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        if path == "cffi":
            cffi_only(reader, writer)
        frame = np.zeros(2, np.int32)
        with pytest.raises(ValueError, match="timeout"):
            writer.write(frame, timeout=-1)
        with pytest.raises(OverflowError):
            writer.write(frame, flags=1 << 32)
        with pytest.raises(OverflowError):
            writer.write(frame, flags=-1)
        assert writer.position == 0
        writer.write(frame, timeout=float("inf"), flags=(1 << 32) - 1)
        for read in (reader.read, lambda **kw: reader.read_into(np.empty(2, np.int32), **kw)):
            with pytest.raises(ValueError, match="timeout"):
                read(timeout=float("nan"))
        assert reader.read(timeout=0).tolist() == [0, 0] and reader.info.flags == (1 << 32) - 1


def test_array_subclasses_and_byte_swapped_arrays_are_written_as_their_values(name):
    with shmline.Stream.create(name, shape=(3,), dtype=np.int32, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        writer.write(np.ma.masked_array([1, 2, 3], dtype=np.int32))
        writer.write(np.array([4, 5, 6], dtype=np.int32).view(np.matrix).A1)
        swapped = np.array([7, 8, 9], dtype=">i4")
        with pytest.raises(shmline.SchemaMismatchError):
            writer.write(swapped)
        writer.write(swapped.astype(np.int32))
        assert [reader.read().tolist() for _ in range(3)] == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


def test_a_closed_handle_refuses_every_hot_call_with_closed_error(name):
    with shmline.Stream.create(name, shape=(1,), dtype=np.int8, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        writer.write(np.ones(1, np.int8))
        reader.close()
        writer.close()
        for call in (lambda: writer.write(np.ones(1, np.int8)), writer.reserve, reader.read,
                     lambda: reader.read_into(np.empty(1, np.int8)), reader.acquire):
            with pytest.raises(shmline.ClosedError):
                call()


@pytest.mark.parametrize("path", PATHS)
def test_zero_copy_frames_and_a_foreign_frame_of_the_wrong_size_behave_on_either_path(name, path):
    with shmline.Stream.create(name, shape=(4,), dtype=np.int32, capacity=2,
                               unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        if path == "cffi":
            cffi_only(reader, writer)
        for i in range(5):
            with writer.reserve(flags=i) as out:
                out[:] = i
            with reader.acquire() as frame:
                assert frame.tolist() == [i] * 4 and reader.info.flags == i
        # A C writer is free to ignore the schema: 3 bytes through the C API directly.
        assert lib.shmline_writer_write(writer._h, ffi.from_buffer(b"abc"), 3, 0, 0) == 0
        with pytest.raises(shmline.SchemaMismatchError, match="is 3 bytes"):
            reader.acquire()
        assert writer.try_write(np.full(4, 9, np.int32))
        with reader.acquire() as frame:  # the wrong frame was released: the next one comes
            assert frame.tolist() == [9] * 4
        assert writer.try_write(np.zeros(4, np.int32)) and writer.try_write(np.zeros(4, np.int32))
        assert not writer.try_write(np.zeros(4, np.int32))  # full: capacity 2


def schema_pair(name, path, capacity=4):
    """A stream of 4 int32 and its reader and writer, on the given path."""
    stream = shmline.Stream.create(name, shape=(4,), dtype=np.int32, capacity=capacity,
                                   unlink_on_close=True)
    reader, writer = stream.reader(), stream.writer()
    if path == "cffi":
        cffi_only(reader, writer)
    return stream, reader, writer


@pytest.mark.parametrize("path", PATHS)
def test_each_reservation_gets_a_new_view_that_is_read_only_after_its_block(name, path):
    stream, reader, writer = schema_pair(name, path, capacity=2)
    with stream:
        kept = []
        for i in range(5):  # more reservations than slots: each slot is reserved again
            with writer.reserve() as frame:
                assert frame.flags.writeable and all(frame is not k for k in kept)
                frame[:] = i
            kept.append(frame)
            assert reader.read().tolist() == [i] * 4
        for frame in kept:
            assert not frame.flags.writeable
            with pytest.raises(ValueError, match="read-only"):
                frame[0] = 99
        assert reader.try_read() is None


@pytest.mark.parametrize("path", PATHS)
def test_a_block_that_raises_aborts_its_slot_and_leaves_the_view_read_only(name, path):
    stream, reader, writer = schema_pair(name, path)
    with stream:
        with pytest.raises(KeyError):
            with writer.reserve(flags=3) as frame:
                frame[:] = 1
                raise KeyError("compute failed")
        assert not frame.flags.writeable
        assert writer.position == 0 and reader.try_read() is None
        with writer.reserve() as frame:
            frame[:] = 2
        assert reader.read().tolist() == [2] * 4 and reader.info.flags == 0


@pytest.mark.parametrize("path", PATHS)
def test_commit_abort_or_release_inside_the_block_leave_nothing_for_its_end(name, path):
    stream, reader, writer = schema_pair(name, path)
    with stream:
        slot = writer.reserve()
        with slot as frame:
            frame[:] = 5
            slot.commit(flags=9)
        slot = writer.reserve()
        with slot as frame:
            frame[:] = 6
            slot.abort()
        assert not frame.flags.writeable and writer.position == 1
        lent = reader.acquire()
        with lent as frame:
            assert frame.tolist() == [5] * 4 and reader.info.flags == 9
            lent.release()
            with pytest.raises(shmline.WrongStateError):
                lent.release()
        assert reader.position == 1 and reader.try_read() is None


@pytest.mark.parametrize("path", PATHS)
def test_a_second_reserve_or_acquire_before_the_first_ends_is_refused(name, path):
    stream, reader, writer = schema_pair(name, path)
    with stream:
        with writer.reserve() as frame:
            with pytest.raises(shmline.WrongStateError, match="already reserved"):
                writer.reserve()
            frame[:] = 1
        writer.write(np.zeros(4, np.int32))
        with reader.acquire() as frame:
            with pytest.raises(shmline.WrongStateError, match="already acquired"):
                reader.acquire(timeout=0)
            assert frame.tolist() == [1] * 4
        assert writer.position == 2 and reader.read().tolist() == [0] * 4


@pytest.mark.parametrize("path", PATHS)
def test_bad_timeouts_and_flags_of_zero_copy_calls_are_refused_even_when_they_could_succeed(
        name, path):
    stream, reader, writer = schema_pair(name, path)
    with stream:
        for timeout in (-1, float("nan")):
            with pytest.raises(ValueError, match="timeout"):
                writer.reserve(timeout=timeout)
        with pytest.raises(ValueError, match="nbytes"):
            writer.reserve(4)
        with pytest.raises(OverflowError):
            with writer.reserve(flags=1 << 32):
                pass
        assert writer.position == 0
        with writer.reserve(timeout=2, flags=(1 << 32) - 1) as frame:
            frame[:] = 3
        with pytest.raises(ValueError, match="timeout"):
            reader.acquire(timeout=-0.5)
        with reader.acquire(timeout=0.0) as frame:
            assert frame.tolist() == [3] * 4 and reader.info.flags == (1 << 32) - 1


@pytest.mark.parametrize("path", PATHS)
def test_closing_the_writer_inside_the_block_drops_the_slot_and_its_end_does_nothing(name, path):
    stream, reader, writer = schema_pair(name, path)
    with stream:
        with writer.reserve() as frame:
            frame[:] = 4
            writer.close()
        assert not frame.flags.writeable and frame.tolist() == [4] * 4
        with pytest.raises(shmline.ClosedError):
            writer.reserve()
        with pytest.raises(shmline.EndOfStream):
            reader.read(timeout=0)
        reader.close()
        with pytest.raises(shmline.ClosedError):
            reader.acquire()


@pytest.mark.parametrize("path", PATHS)
def test_an_interrupt_while_a_slot_gets_its_first_view_does_not_wedge_the_handle(
        name, path, monkeypatch):
    stream, reader, writer = schema_pair(name, path)
    with stream:
        def interrupted(*_):
            raise KeyboardInterrupt
        monkeypatch.setattr(writer, "_array_at", interrupted)
        with pytest.raises(KeyboardInterrupt):
            writer.reserve()
        monkeypatch.undo()
        with writer.reserve() as frame:  # the interrupted reservation was given up
            frame[:] = 7
        writer.write(np.full(4, 8, np.int32))
        monkeypatch.setattr(reader, "_view_at", interrupted)
        with pytest.raises(KeyboardInterrupt):
            reader.acquire()
        monkeypatch.undo()
        with reader.acquire(timeout=0) as frame:  # the interrupted frame was given back
            assert frame.tolist() in ([7] * 4, [8] * 4)
        assert reader.position == 2


def test_a_writer_or_reader_dropped_with_a_slot_armed_is_collected(name):
    with shmline.Stream.create(name, shape=(4,), dtype=np.int32, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        writer.write(np.zeros(4, np.int32))
        handles = [weakref.ref(writer), weakref.ref(reader)]
        kept = [writer.reserve(), reader.acquire()]
        del writer, reader, kept
        gc.collect()
        assert [h() for h in handles] == [None, None]


def test_a_kept_exit_of_a_compiled_slot_refuses_to_run_once_its_slot_is_gone(name):
    if _hot.WriteSlotBase is None:
        pytest.skip("ABI-mode builds have no compiled slots")
    with shmline.Stream.create(name, shape=(4,), dtype=np.int32, unlink_on_close=True) as s:
        writer = s.writer()
        slot = writer.reserve()
        exit_ = slot.__exit__
        assert exit_ is slot.__exit__  # made once per slot
        exit_(None, None, None)
        assert writer.position == 1
        del slot
        writer.close()  # the writer's slot object goes with the writer
        del writer
        gc.collect()
        with pytest.raises(ReferenceError):
            exit_(None, None, None)
