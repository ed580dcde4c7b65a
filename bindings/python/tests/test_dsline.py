"""`shmline.dsline`: dsline's `ShmChannel` API, in one process and between processes."""

from __future__ import annotations

import os
import pickle
import threading
import time

import pytest

import shmline
import shmline.dsline as dsline
from conftest import PATIENCE, finish, run_python

# A child that opens channel argv[1], sends int(argv[2]) messages b"m<i>" (waiting for room as
# long as it takes) and closes the channel.
SENDER = r"""
import sys, shmline.dsline as dsline
with dsline.ShmChannel(sys.argv[1], capacity=4, slot_size=64, timeout=120) as ch:
    for i in range(int(sys.argv[2])):
        ch.send(b"m%d" % i)
print("sent", flush=True)
"""

# A child that opens channel argv[1], receives until the channel is closed, checks it got
# b"m0", b"m1", ... in order, and prints how many.
RECEIVER = r"""
import sys, shmline.dsline as dsline
ch = dsline.ShmChannel(sys.argv[1])
got = []
while True:
    try:
        got.append(ch.recv(timeout=120))
    except dsline.ChannelClosedError:
        break
assert got == [b"m%d" % i for i in range(len(got))], got[:10]
print("received", len(got), flush=True)
"""


def segment_exists(name: str) -> bool:
    return os.path.exists(f"/dev/shm/shmline.stream.{name}")


def test_a_message_sent_is_received_by_the_same_channel_and_the_name_goes_with_the_channel(name):
    with dsline.ShmChannel(name, capacity=4, slot_size=64) as ch:
        ch.send(b"hello")
        assert ch.recv() == b"hello"
        assert ch.name == name
        assert segment_exists(name)
    assert ch.closed
    assert not segment_exists(name)


def test_a_second_channel_of_the_same_name_opens_the_same_queue(name):
    sender = dsline.ShmChannel(name, capacity=8, slot_size=16)
    receiver = dsline.ShmChannel(name, capacity=2, slot_size=4096)  # the existing sizes win
    assert (receiver.capacity, receiver.slot_size) == (8, 16)
    sender.send(b"one")
    sender.send(memoryview(b"two"))
    assert receiver.recv() == b"one"
    assert sender.recv() == b"two"  # one queue: each message goes to one handle
    sender.close()
    with pytest.raises(dsline.ChannelClosedError):
        receiver.recv()


def test_capacity_is_rounded_up_to_a_power_of_two(name):
    for asked, got in [(1, 1), (3, 4), (1000, 1024), (1024, 1024)]:
        with dsline.ShmChannel(f"{name}-{asked}", capacity=asked) as ch:
            assert ch.capacity == got


def test_len_counts_the_messages_sent_and_not_received(name):
    with dsline.ShmChannel(name, capacity=4) as ch:
        assert len(ch) == 0
        ch.send(b"a")
        ch.send(b"b")
        assert len(ch) == 2
        other = dsline.ShmChannel(name)
        assert len(other) == 2
        other.recv()
        assert len(ch) == 1
        ch.recv()
        assert len(ch) == 0


def test_block_waits_for_room_until_the_timeout_then_raises_buffer_full(name):
    with dsline.ShmChannel(name, capacity=2, timeout=0.2) as ch:
        ch.send(b"1")
        ch.send(b"2")
        started = time.monotonic()
        with pytest.raises(dsline.BufferFullError):
            ch.send(b"3")
        assert time.monotonic() - started >= 0.19
        assert [ch.recv(), ch.recv()] == [b"1", b"2"]


def test_raise_refuses_a_message_at_once_when_the_channel_is_full(name):
    with dsline.ShmChannel(name, capacity=2, backpressure=dsline.Backpressure.Raise) as ch:
        ch.send(b"1")
        ch.send(b"2")
        with pytest.raises(dsline.BufferFullError):
            ch.send(b"3")
        assert len(ch) == 2
        assert [ch.recv(), ch.recv()] == [b"1", b"2"]
        ch.send(b"4")
        assert ch.recv() == b"4"


def test_drop_newest_discards_the_messages_sent_to_a_full_channel(name):
    with dsline.ShmChannel(name, capacity=2, backpressure=dsline.Backpressure.DropNewest) as ch:
        for m in [b"1", b"2", b"3", b"4"]:
            ch.send(m)
        assert len(ch) == 2
        assert [ch.recv(), ch.recv()] == [b"1", b"2"]
        with pytest.raises(dsline.BufferEmptyError):
            ch.recv()


def test_drop_oldest_discards_the_oldest_queued_messages_to_send_the_new_ones(name):
    with dsline.ShmChannel(name, capacity=2, backpressure=dsline.Backpressure.DropOldest) as ch:
        receiver = dsline.ShmChannel(name)
        for m in [b"1", b"2", b"3", b"4", b"5"]:
            ch.send(m)
        assert len(ch) == 2
        assert [receiver.recv(), receiver.recv()] == [b"4", b"5"]
        with pytest.raises(dsline.BufferEmptyError):
            receiver.recv()


def test_a_blocked_sender_in_another_process_sends_everything_once_the_receiver_drains(name):
    receiver = dsline.ShmChannel(name, capacity=4, slot_size=64)
    child = run_python(SENDER, name, "200")  # 50 times the capacity
    got = []
    while True:
        try:
            got.append(receiver.recv(timeout=PATIENCE))
        except dsline.ChannelClosedError:
            break
    finish(child, "sent")
    assert got == [b"m%d" % i for i in range(200)]
    assert receiver.closed
    assert not segment_exists(name)


def test_messages_sent_before_the_receiver_process_opens_wait_for_it(name):
    with dsline.ShmChannel(name, capacity=8, slot_size=64) as sender:
        for i in range(8):
            sender.send(b"m%d" % i)
    assert segment_exists(name)  # closed but not drained: the messages wait
    child = run_python(RECEIVER, name)
    finish(child, "received 8")
    assert not segment_exists(name)


def test_a_receiver_process_gets_channel_closed_once_the_sender_closes(name):
    with dsline.ShmChannel(name, capacity=4, slot_size=64) as sender:
        receiver_child = run_python(RECEIVER, name)
        deadline = time.monotonic() + PATIENCE
        with shmline.Stream.open(name) as stream:
            while len(stream.stats().readers) < 2:
                assert time.monotonic() < deadline, "the receiver never opened the channel"
                time.sleep(0.01)
        for i in range(20):
            sender.send(b"m%d" % i)
    finish(receiver_child, "received 20")
    assert not segment_exists(name)


def test_a_channel_passed_to_another_process_by_pickle_is_the_same_channel(name):
    with dsline.ShmChannel(name, capacity=4) as ch:
        copy = pickle.loads(pickle.dumps(ch))
        ch.send(b"x")
        assert copy.recv() == b"x"
        copy.close()


def test_send_after_close_raises_channel_closed_but_recv_drains_first(name):
    ch = dsline.ShmChannel(name, capacity=4)
    ch.send(b"a")
    ch.send(b"b")
    ch.close()
    ch.close()  # twice does nothing
    assert ch.closed
    with pytest.raises(dsline.ChannelClosedError):
        ch.send(b"c")
    assert ch.recv() == b"a"
    assert ch.recv() == b"b"
    with pytest.raises(dsline.ChannelClosedError):
        ch.recv()
    assert not segment_exists(name)


def test_a_closed_channel_cannot_get_a_new_sender_until_it_is_drained(name):
    with dsline.ShmChannel(name) as first:
        first.send(b"a")
    late = dsline.ShmChannel(name)
    with pytest.raises(dsline.ChannelClosedError):
        late.send(b"b")
    assert late.recv() == b"a"
    with pytest.raises(dsline.ChannelClosedError):
        late.recv()
    # Drained: the name is free for a new channel.
    with dsline.ShmChannel(name) as fresh:
        fresh.send(b"c")
        assert fresh.recv() == b"c"


def test_a_second_sender_of_an_open_channel_is_refused(name):
    with dsline.ShmChannel(name) as first:
        first.send(b"a")
        with dsline.ShmChannel(name) as second:
            with pytest.raises(dsline.ChannelError):
                second.send(b"b")
            assert second.recv() == b"a"


def test_recv_on_an_empty_channel_raises_buffer_empty_at_once_or_after_its_timeout(name):
    with dsline.ShmChannel(name) as ch:
        with pytest.raises(dsline.BufferEmptyError):
            ch.recv()
        started = time.monotonic()
        with pytest.raises(dsline.BufferEmptyError):
            ch.recv(timeout=0.1)
        assert time.monotonic() - started >= 0.09


def test_a_message_longer_than_the_slot_size_is_refused(name):
    with dsline.ShmChannel(name, slot_size=8) as ch:
        ch.send(b"12345678")
        with pytest.raises(dsline.MessageTooLargeError):
            ch.send(b"123456789")
        assert ch.recv() == b"12345678"
        assert len(ch) == 0


def test_a_corrupted_message_raises_corrupted_message(name):
    with dsline.ShmChannel(name, capacity=2, slot_size=64) as ch:
        payload = b"corrupt-me-%s" % name.encode()
        ch.send(payload)
        with open(f"/dev/shm/shmline.stream.{name}", "r+b") as f:
            data = f.read()
            at = data.index(payload)
            f.seek(at)
            f.write(b"C")
        with pytest.raises(dsline.CorruptedMessageError):
            ch.recv()
        with pytest.raises(dsline.CorruptedMessageError):
            ch.recv()  # not consumed
    shmline.Stream.unlink(name)


def test_exceptions_keep_dslines_hierarchy_and_are_shmlines():
    assert dsline.DslineError is shmline.ShmlineError
    assert issubclass(dsline.ChannelError, dsline.DslineError)
    pairs = [
        (dsline.ChannelClosedError, shmline.EndOfStream),
        (dsline.BufferFullError, shmline.Full),
        (dsline.BufferEmptyError, shmline.Empty),
        (dsline.MessageTooLargeError, shmline.FrameTooLargeError),
        (dsline.CorruptedMessageError, shmline.CorruptError),
    ]
    for cls, shm in pairs:
        assert issubclass(cls, dsline.ChannelError) and issubclass(cls, shm), cls


def test_arguments_dsline_refuses_are_refused(name):
    for kwargs in [dict(capacity=0), dict(slot_size=0), dict(timeout=-1)]:
        with pytest.raises(ValueError):
            dsline.ShmChannel(name, **kwargs)
    with pytest.raises(ValueError):
        dsline.ShmChannel("")
    with pytest.raises(ValueError):  # shmline's rule for names: InvalidNameError
        dsline.ShmChannel("no spaces/or slashes")
    with pytest.raises(shmline.InvalidNameError):
        dsline.ShmChannel("no spaces/or slashes")


def test_a_stream_of_arrays_is_not_a_channel(name):
    import numpy as np

    with shmline.Stream.create(name, dtype=np.float32, shape=(2,), unlink_on_close=True):
        with pytest.raises(dsline.ChannelError):
            dsline.ShmChannel(name)


def test_closing_a_receiver_keeps_the_channel_for_the_other_handles(name):
    with dsline.ShmChannel(name) as sender:
        receiver = dsline.ShmChannel(name)
        receiver.close()
        with pytest.raises(dsline.ChannelClosedError):
            receiver.recv()  # closed and empty
        assert segment_exists(name)
        sender.send(b"a")
        assert dsline.ShmChannel(name).recv() == b"a"
    assert not segment_exists(name)


def test_a_sender_killed_with_sigkill_closes_the_channel_after_its_messages(name):
    receiver = dsline.ShmChannel(name, capacity=8)
    child = run_python(
        "import os, signal, sys, shmline.dsline as dsline\n"
        "ch = dsline.ShmChannel(sys.argv[1])\n"
        "for i in range(3): ch.send(b'm%d' % i)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n", name)
    # shmline counts an unreaped (zombie) process as alive: reap the child as soon as it dies.
    reaper = threading.Thread(target=child.wait)
    reaper.start()
    got = []
    with pytest.raises(dsline.ChannelClosedError, match="died"):
        while True:
            got.append(receiver.recv(timeout=PATIENCE))
    reaper.join(timeout=PATIENCE)
    assert child.returncode == -9
    assert got == [b"m0", b"m1", b"m2"]
    assert receiver.closed
    assert not segment_exists(name)
