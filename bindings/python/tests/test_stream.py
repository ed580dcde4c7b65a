"""Streams in one process: copy and batch paths, schema checks, timeouts, iteration, lossy
readers, metadata and stats."""

from __future__ import annotations

import os

import numpy as np
import pytest

import shmline


def test_a_frame_written_is_read_back_as_an_equal_new_array_of_the_schema(name):
    with shmline.Stream.create(name, shape=(2, 3), dtype=np.float32, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        frame = np.arange(6, dtype=np.float32).reshape(2, 3)
        writer.write(frame)
        got = reader.read()
        assert got.dtype == np.float32 and got.shape == (2, 3)
        np.testing.assert_array_equal(got, frame)
        assert got.flags.owndata and got.flags.writeable
        writer.close()
        reader.close()


def test_a_stream_opened_by_name_has_the_schema_it_was_created_with(name):
    with shmline.Stream.create(name, shape=(5, 4), dtype="<i2", capacity=16,
                               unlink_on_close=True) as created, shmline.Stream.open(name) as s:
        assert (s.dtype, s.shape, s.frame_size) == (np.dtype("<i2"), (5, 4), 40)
        assert (s.capacity, s.max_frame_size, s.name) == (16, 40, name)
        assert created.dtype == s.dtype
        info = s.info
        assert info == created.info and isinstance(info, shmline.StreamInfo)
        assert (info.name, info.capacity, info.max_frame_size, info.dtype, info.shape,
                info.frame_size, info.backpressure) == (name, 16, 40, np.dtype("<i2"), (5, 4), 40,
                                                        "block")
        assert info.creator_pid == os.getpid() and info.segment_size >= 16 * 40


def test_a_scalar_schema_carries_one_value_per_frame(name):
    with shmline.Stream.create(name, dtype=np.float64, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        writer.write(np.float64(2.5))
        writer.write(3.5)
        assert reader.read() == 2.5 and reader.read().shape == ()


def test_bytes_streams_carry_frames_of_any_length_up_to_the_maximum(name):
    with shmline.Stream.create(name, max_frame_size=100, unlink_on_close=True) as s:
        assert s.dtype is None and s.shape is None
        reader, writer = s.reader(), s.writer()
        payloads = [b"", b"x", bytes(range(100)), bytearray(b"abc"), memoryview(b"0123")[::2]]
        for p in payloads:
            writer.write(p)
        for p in payloads:
            assert reader.read() == bytes(p)
        with pytest.raises(shmline.FrameTooLargeError):
            writer.write(bytes(101))


def test_write_refuses_an_array_of_another_dtype_or_shape_and_names_both(name):
    with shmline.Stream.create(name, shape=(8,), dtype=np.float32, unlink_on_close=True) as s:
        writer = s.writer()
        with pytest.raises(shmline.SchemaMismatchError, match=r"<f4.*\(8,\).*<f8.*\(8,\)"):
            writer.write(np.zeros(8))
        with pytest.raises(shmline.SchemaMismatchError, match=r"\(8,\).*\(9,\)"):
            writer.write(np.zeros(9, np.float32))
        with pytest.raises(ValueError):  # SchemaMismatchError is a ValueError
            writer.write([1.0] * 8)  # a list becomes float64
        assert writer.position == 0


def test_write_copies_a_non_contiguous_array_into_one_frame_in_c_order(name):
    with shmline.Stream.create(name, shape=(3, 2), dtype=np.int64, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        base = np.arange(12, dtype=np.int64).reshape(3, 4)
        strided = base[:, ::2]
        transposed = np.arange(6, dtype=np.int64).reshape(2, 3).T
        writer.write(strided)
        writer.write(transposed)
        np.testing.assert_array_equal(reader.read(), strided)
        np.testing.assert_array_equal(reader.read(), transposed)


def test_read_into_fills_an_array_of_the_schema_and_refuses_any_other(name):
    with shmline.Stream.create(name, shape=(4,), dtype=np.uint16, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        out = np.zeros(4, np.uint16)
        for i in range(3):
            writer.write(np.full(4, i, np.uint16))
            assert reader.read_into(out) == 8
            np.testing.assert_array_equal(out, np.full(4, i))
        with pytest.raises(shmline.SchemaMismatchError, match="uint16"):
            reader.read_into(np.zeros(4, np.int16))
        with pytest.raises(ValueError, match="writable"):
            ro = np.zeros(4, np.uint16)
            ro.flags.writeable = False
            reader.read_into(ro)
        with pytest.raises(ValueError, match="C-contiguous"):
            reader.read_into(np.zeros(8, np.uint16)[::2])


def test_read_into_a_too_small_buffer_leaves_the_bytes_frame_unread(name):
    with shmline.Stream.create(name, max_frame_size=64, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        writer.write(b"0123456789")
        with pytest.raises(shmline.BufferTooSmallError, match="10"):
            reader.read_into(bytearray(4))
        buf = bytearray(16)
        assert reader.read_into(buf) == 10 and buf[:10] == b"0123456789"


def test_a_reader_requiring_another_schema_is_refused(name):
    with shmline.Stream.create(name, shape=(8,), dtype=np.float32, unlink_on_close=True) as s:
        s.reader(require_dtype=np.float32, require_shape=8).close()
        with pytest.raises(shmline.SchemaMismatchError):
            s.reader(require_dtype=np.float64, require_shape=8)
        with pytest.raises(shmline.SchemaMismatchError):
            s.reader(require_dtype=np.float32, require_shape=(2, 4))


def test_write_batch_writes_each_row_as_a_frame_and_read_batch_returns_them_in_order(name):
    with shmline.Stream.create(name, shape=(4,), dtype=np.int32, capacity=64,
                               unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        batch = np.arange(40 * 4, dtype=np.int32).reshape(40, 4)
        writer.write_batch(batch, flags=7)
        got = reader.read_batch(100)
        np.testing.assert_array_equal(got, batch)
        info = reader.batch_info
        assert list(info["seq"]) == list(range(40)) and set(info["flags"]) == {7}
        assert reader.info.seq == 39
        with pytest.raises(shmline.SchemaMismatchError, match=r"\(n, \*\(4,\)\)"):
            writer.write_batch(np.zeros((3, 5), np.int32))


def test_a_batch_larger_than_the_ring_is_written_as_the_reader_makes_room(name):
    import threading

    with shmline.Stream.create(name, shape=(2,), dtype=np.float64, capacity=8,
                               unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        batch = np.random.default_rng(1).random((1000, 2))
        got = []

        def drain():
            out = np.empty((16, 2))
            while sum(len(g) for g in got) < 1000:
                n = reader.read_batch_into(out, timeout=60)
                got.append(out[:n].copy())

        thread = threading.Thread(target=drain)
        thread.start()
        writer.write_batch(batch, timeout=60)
        thread.join(60)
        np.testing.assert_array_equal(np.concatenate(got), batch)


def test_bytes_batches_keep_each_frame_and_its_length(name):
    with shmline.Stream.create(name, max_frame_size=32, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        frames = [b"a", b"", b"bcd" * 10, bytearray(b"xyz")]
        writer.write_batch(frames)
        writer.write_batch(np.arange(12, dtype=np.uint8).reshape(3, 4))
        assert reader.read_batch(10) == [bytes(f) for f in frames] + [
            bytes([0, 1, 2, 3]), bytes([4, 5, 6, 7]), bytes([8, 9, 10, 11])]


def test_iterating_a_reader_yields_every_frame_then_stops_at_end_of_stream(name):
    with shmline.Stream.create(name, shape=(3,), dtype=np.uint8, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        for i in range(10):
            writer.write(np.full(3, i, np.uint8))
        writer.close()
        assert [int(f[0]) for f in reader] == list(range(10))
        with pytest.raises(shmline.EndOfStream):
            reader.read()


def test_a_blocking_read_raises_a_timeout_error_after_its_timeout(name):
    with shmline.Stream.create(name, max_frame_size=8, unlink_on_close=True) as s:
        reader = s.reader()
        with pytest.raises(TimeoutError):
            reader.read(timeout=0.12)  # longer than one 50 ms wait slice
        with pytest.raises(shmline.Timeout):
            reader.read(timeout=0)
        with pytest.raises(shmline.Timeout):
            reader.acquire(timeout=0.01)
        with pytest.raises(shmline.Timeout):
            reader.read_batch(4, timeout=0)
        assert reader.try_read() is None
        with pytest.raises(ValueError):
            reader.read(timeout=-1)


def test_a_full_ring_makes_write_time_out_and_try_write_return_false(name):
    with shmline.Stream.create(name, max_frame_size=8, capacity=4, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        for i in range(4):
            assert writer.try_write(bytes([i]))
        assert not writer.try_write(b"x")
        with pytest.raises(shmline.Timeout):
            writer.write(b"x", timeout=0.06)
        with pytest.raises(shmline.Timeout):
            writer.reserve(timeout=0)
        with pytest.raises(shmline.Timeout) as caught:
            writer.write_batch([b"a", b"b"], timeout=0)
        assert caught.value.written == 0
        assert reader.read() == b"\x00"
        with pytest.raises(shmline.Timeout) as caught:
            writer.write_batch([b"a", b"b"], timeout=0.01)
        assert caught.value.written == 1
        assert [reader.read() for _ in range(4)] == [b"\x01", b"\x02", b"\x03", b"a"]


def test_a_lossy_reader_skips_frames_it_was_lapped_on_and_counts_them(name):
    with shmline.Stream.create(name, shape=(1,), dtype=np.int64, capacity=4,
                               unlink_on_close=True) as s:
        lossy, writer = s.reader(lossy=True), s.writer()
        for i in range(10):
            writer.write(np.array([i]))  # never blocks: no lossless reader
        got = []
        while (frame := lossy.try_read()) is not None:
            got.append(int(frame[0]))
        assert got == sorted(got) and got[-1] == 9 and len(got) < 10
        assert lossy.missed == 10 - len(got)
        with pytest.raises(shmline.UnsupportedError):
            lossy.acquire()


def test_frame_info_carries_sequence_number_flags_length_and_commit_time(name):
    import time

    with shmline.Stream.create(name, max_frame_size=16, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        before = time.monotonic_ns()
        writer.write(b"abc", flags=0xDEADBEEF)
        writer.write(b"defg", flags=1)
        reader.read()
        info = reader.info
        assert (info.seq, info.len, info.flags, info.missed) == (0, 3, 0xDEADBEEF, 0)
        assert before <= info.timestamp_ns <= time.monotonic_ns()
        reader.read()
        assert reader.info[:4] == (1, reader.info.timestamp_ns, 4, 1)
        assert reader.position == 2 and writer.position == 2


def test_readers_starting_at_oldest_newest_and_next_see_what_their_start_says(name):
    with shmline.Stream.create(name, shape=(), dtype=np.int32, capacity=8,
                               unlink_on_close=True) as s:
        writer = s.writer()
        for i in range(3):
            writer.write(np.int32(i))
        oldest, newest, nxt = s.reader(start="oldest"), s.reader(start="newest"), s.reader()
        writer.write(np.int32(3))
        assert int(oldest.read()) == 0
        assert int(newest.read()) == 2
        assert int(nxt.read()) == 3
        with pytest.raises(ValueError, match="start"):
            s.reader(start="middle")


def test_stats_count_frames_bytes_and_readers_without_disturbing_them(name):
    with shmline.Stream.create(name, max_frame_size=16, capacity=8, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        for _ in range(3):
            writer.write(b"12345")
        stats = s.stats()
        assert (stats.writer_state, stats.frames_written, stats.bytes_written) == ("active", 3, 15)
        assert stats.reader_count == 1 and stats.readers[0].lag == 3
        assert stats.fill == pytest.approx(3 / 8)
        reader.read()
        assert s.stats().readers[0].frames_read == 1
        writer.close()
        assert s.stats().writer_state == "closed"


def test_stream_list_names_the_streams_that_exist(name):
    with shmline.Stream.create(name, max_frame_size=8, unlink_on_close=True):
        assert name in shmline.Stream.list()
    assert name not in shmline.Stream.list()


def test_a_stream_without_unlink_on_close_lives_until_unlinked(name):
    shmline.Stream.create(name, max_frame_size=8).close()
    with shmline.Stream.open(name) as s:
        assert s.max_frame_size == 8
    shmline.Stream.unlink(name)
    with pytest.raises(shmline.NotFoundError):
        shmline.Stream.open(name)


def test_schemas_refuse_dtypes_shmline_cannot_describe(name):
    for dtype in [np.dtype([("a", "<f4"), ("b", "<i4")]), np.dtype(object), np.dtype(("<f4", 3))]:
        with pytest.raises(ValueError, match="cannot be a stream schema"):
            shmline.Stream.create(name, shape=(2,), dtype=dtype, unlink_on_close=True)
    with pytest.raises(ValueError, match="needs a dtype"):
        shmline.Stream.create(name, shape=(2,), unlink_on_close=True)
