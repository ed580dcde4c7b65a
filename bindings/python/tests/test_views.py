"""Zero-copy views: what reserve() and acquire() lend, and the lifetime rules of the module docs
of shmline.stream (memory safety, read-only views, what happens after the with block)."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import shmline
from conftest import leftovers


def test_a_reserved_view_is_committed_when_its_block_ends(name):
    with shmline.Stream.create(name, shape=(2, 2), dtype=np.float32, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        with writer.reserve(flags=5) as frame:
            assert frame.shape == (2, 2) and frame.dtype == np.float32 and frame.flags.writeable
            frame[...] = [[1, 2], [3, 4]]
        np.testing.assert_array_equal(reader.read(), [[1, 2], [3, 4]])
        assert reader.info.flags == 5


def test_a_reserved_view_is_aborted_when_its_block_raises(name):
    with shmline.Stream.create(name, shape=(2,), dtype=np.int8, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        with pytest.raises(RuntimeError):
            with writer.reserve() as frame:
                frame[:] = 9
                raise RuntimeError("compute failed")
        assert writer.position == 0 and reader.try_read() is None
        writer.write(np.array([1, 2], np.int8))  # the writer is usable again
        np.testing.assert_array_equal(reader.read(), [1, 2])


def test_an_acquired_view_shows_the_frame_in_place_and_refuses_writes(name):
    with shmline.Stream.create(name, shape=(3,), dtype=np.int32, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        writer.write(np.array([7, 8, 9], np.int32))
        with reader.acquire() as frame:
            np.testing.assert_array_equal(frame, [7, 8, 9])
            assert not frame.flags.writeable and not frame.flags.owndata
            with pytest.raises(ValueError, match="read-only"):
                frame[0] = 1
            assert reader.info.seq == 0
        assert reader.position == 1


def test_bytes_views_are_memoryviews_released_after_their_block(name):
    with shmline.Stream.create(name, max_frame_size=32, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        with writer.reserve(5) as buf:
            buf[:] = b"hello"
        slot = writer.reserve()
        with slot as buf:
            assert len(buf) == 32
            buf[:2] = b"hi"
            slot.commit(2)
        with reader.acquire() as view:
            assert view.readonly and bytes(view) == b"hello"
            with pytest.raises(TypeError):
                view[0] = 1
        with pytest.raises(ValueError, match="released"):
            bytes(view)
        assert reader.read() == b"hi"
        with pytest.raises(ValueError, match="released"):
            buf[0] = 1


def test_a_writer_view_used_after_its_block_raises_instead_of_writing_a_later_frame(name):
    with shmline.Stream.create(name, shape=(4,), dtype=np.uint8, capacity=1,
                               unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        with writer.reserve() as frame:
            frame[:] = 1
        with pytest.raises(ValueError, match="read-only"):
            frame[:] = 2
        np.testing.assert_array_equal(reader.read(), [1, 1, 1, 1])


def test_zero_copy_views_show_each_frame_as_the_slots_come_round_again(name):
    with shmline.Stream.create(name, shape=(4,), dtype=np.int32, capacity=2,
                               unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        written = []
        for i in range(6):
            with writer.reserve() as out:
                out[:] = i
            written.append(out)
            with reader.acquire() as frame:
                np.testing.assert_array_equal(frame, [i] * 4)
                assert not frame.flags.writeable
        # Every reservation's view was retired, even those of a slot reserved again since.
        for out in written:
            with pytest.raises(ValueError, match="read-only"):
                out[0] = -1
        with writer.reserve() as out:
            assert out.flags.writeable and all(out is not old for old in written)
            out[:] = 6
        np.testing.assert_array_equal(reader.read(), [6] * 4)
        writer.close()
        reader.close()


def test_slots_refuse_a_second_commit_abort_or_release(name):
    with shmline.Stream.create(name, max_frame_size=8, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        slot = writer.reserve(1)
        with pytest.raises(shmline.WrongStateError):
            writer.reserve()
        with pytest.raises(shmline.FrameTooLargeError):
            slot.commit(2)  # more than reserved: the slot stays reserved
        slot.commit()
        for again in (slot.commit, slot.abort):
            with pytest.raises(shmline.WrongStateError):
                again()
        frame = reader.acquire()
        with pytest.raises(shmline.WrongStateError, match="already acquired"):
            reader.acquire()
        frame.release()
        with pytest.raises(shmline.WrongStateError):
            frame.release()


def test_a_view_kept_after_everything_is_closed_stays_mapped_and_the_segment_goes_with_it(name):
    stream = shmline.Stream.create(name, shape=(1024,), dtype=np.float64, unlink_on_close=True)
    reader, writer = stream.reader(), stream.writer()
    writer.write(np.arange(1024, dtype=np.float64))
    with reader.acquire() as kept:
        pass
    writer.close()
    reader.close()
    stream.close()
    gc.collect()
    # Everything is closed, but the view still pins the mapping: reading it is safe (it shows
    # what the slot holds), and the segment's name lives until the view is gone.
    assert kept.sum() == sum(range(1024))
    assert leftovers(name)
    derived = kept[10:20]
    del kept
    gc.collect()
    assert derived[0] == 10.0 and leftovers(name)
    del derived
    gc.collect()
    assert not leftovers(name)


def test_closing_a_reader_inside_the_block_releases_the_frame_and_the_view_stays_safe(name):
    with shmline.Stream.create(name, shape=(2,), dtype=np.int16, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        writer.write(np.array([3, 4], np.int16))
        with reader.acquire() as frame:
            reader.close()
            assert frame.tolist() == [3, 4]
        with pytest.raises(shmline.ClosedError):
            reader.acquire()
        writer.close()
        del frame


def test_a_frame_left_acquired_by_an_interrupted_acquire_does_not_wedge_the_reader(name):
    from shmline._ffi import ffi, lib

    with shmline.Stream.create(name, shape=(1,), dtype=np.int64, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        for i in range(3):
            writer.write(np.array([i]))
        # What a Ctrl-C right after the library lent a frame leaves: acquired in C, not in Python.
        # (In API-mode builds the read tries the compiled call first, which must see the lent
        # frame and leave it to the cffi path instead of reading on past it.)
        data = ffi.new("const void **")
        assert lib.shmline_reader_acquire(reader._h, 0, data, reader._info) == 0
        assert int(reader.read()[0]) == 1  # frame 0 was lent to nobody: it is skipped
        assert lib.shmline_reader_acquire(reader._h, 0, data, reader._info) == 0
        with pytest.raises(shmline.Timeout):
            reader.acquire(timeout=0.01)  # frame 2 was lent to nobody: skipped, nothing left
        writer.write(np.array([3]))
        with reader.acquire(timeout=1) as frame:
            assert int(frame[0]) == 3


def test_a_slot_left_reserved_by_an_interrupted_reserve_does_not_wedge_the_writer(name):
    from shmline._ffi import ffi, lib

    with shmline.Stream.create(name, shape=(1,), dtype=np.int64, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        slot = ffi.new("void **")
        capacity = ffi.new("size_t *")
        assert lib.shmline_writer_reserve(writer._h, 0, slot, capacity) == 0
        writer.write(np.array([5]))
        assert lib.shmline_writer_reserve(writer._h, 0, slot, capacity) == 0
        with writer.reserve() as frame:
            frame[0] = 6
        assert [int(reader.read()[0]), int(reader.read()[0])] == [5, 6]
