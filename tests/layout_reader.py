#!/usr/bin/env python3
"""An independent reader of shmline segments, written only from docs/LAYOUT.md.

It is the proof that the document is the contract: it imports nothing from shmline (only the
Python standard library) and decodes a stream or an event segment byte by byte, validating
everything section 7 of the document asks a foreign implementation to validate.

It is a *passive* reader (LAYOUT.md 4.12): it never registers a reader entry (that needs a
compare-and-swap, which pure Python lacks) and never writes to the segment; it maps it read-only.
So nothing stops the writer from overwriting the frames it looks at: it only reports a frame when
the slot's `seq` holds the expected sequence number both before and after the copy, like a lossy
reader. On a stream whose writer has closed, every frame still in the ring is stable.

Usage:
    layout_reader.py NAME            decode /dev/shm/shmline.stream.NAME
    layout_reader.py --event NAME    decode /dev/shm/shmline.event.NAME

Output: one record per line, `<record> key=value key=value ...` (values never contain spaces):
    stream / event        the object (path and real size)
    header                every identity and geometry field of the header, as stored
    geometry              offsets recomputed from the document's formulae (stream)
    schema                the schema block (stream)
    writer                writer state and identity, and whether that process is alive (stream)
    live                  the live fields of the header (head, futex words, counters, ...)
    reader                one line per reader entry that is not FREE (stream)
    group                 one line per group record that is not FREE (stream)
    writer_entry          one line per writer entry that is not FREE (multi-writer stream)
    frame                 one line per published frame still in the ring, payload in hex (stream)
    gone                  a published frame already overwritten (stream)
    summary               counts (stream)
On a refusal it prints `error status=<STATUS>` (NOT_FOUND, NOT_SHMLINE, VERSION_MISMATCH, CORRUPT,
...) on stdout, the reason on stderr, and exits with status 1. Usage errors exit with status 2.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import time

# ---- constants of LAYOUT.md ----

LAYOUT_VERSION = 5
SHM_DIR = "/dev/shm"
STREAM_PREFIX = "shmline.stream."
EVENT_PREFIX = "shmline.event."
STREAM_MAGIC = b"SHMLSTRM"
EVENT_MAGIC = b"SHMLEVNT"

HEADER_SIZE = 640  # also readers_offset
LINE = 128
FRAME_HEADER_SIZE = 32
SLOT_ALIGN = 64
SLOTS_ALIGN = 4096
MAX_CAPACITY = 1 << 24
MAX_FRAME = 1 << 30
MAX_READERS = 1024
MAX_WRITERS = 64
MAX_GROUPS = 64
GROUP_NAME_LEN = 64
MAX_SEGMENT_SIZE = 1 << 36
DTYPE_LEN = 32
MAX_NDIM = 8
EMPTY = (1 << 64) - 1

FLAG_CHECKSUM = 1 << 0
FLAG_SCHEMA = 1 << 1
FLAGS_KNOWN = FLAG_CHECKSUM | FLAG_SCHEMA
READER_FLAG_LOSSY = 1 << 0
POLICIES = {0: "block", 1: "fail", 2: "drop_newest", 3: "drop_oldest"}

WRITER_STATES = {0: "none", 1: "active", 2: "closed"}
WRITER_CLAIMING = 1 << 31  # writer_state = WRITER_CLAIMING | pid of the claimant
READER_STATES = {0: "free", 1: "claiming", 2: "active", 3: "orphaned"}
# A reader or writer entry's owner word: state (bits 0-1), asleep (bit 2, reader entries only),
# generation (bits 3-31), pid (32-63).
OWNER_STATE_MASK = 0b11
OWNER_ASLEEP = 1 << 2
OWNER_GENERATION_SHIFT = 3
OWNER_PID_SHIFT = 32
GROUP_STATES = {0: "free", 2: "active"}
IDLE = EMPTY  # a group member's pos while it holds no frame
WRITER_ENTRY_STATES = {0: "free", 1: "claiming", 2: "active"}
WRITER_COUNT_CLOSED = 1 << 31
WRITER_COUNT_DEAD = 1 << 30
FRAME_STATUSES = {0: "frame", 1: "skipped"}
EVENT_MODES = {0: "flag", 1: "counting"}
EVENT_SEGMENT_SIZE = 256

STREAM_INIT_WAIT_S = 2.0
EVENT_INIT_WAIT_S = 1.0


class Refused(Exception):
    """The segment is refused with one of the document's status names."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def corrupt(message: str) -> Refused:
    return Refused("CORRUPT", message)


# ---- CRC32C (LAYOUT.md 3.6): reflected polynomial 0x82F63B78, init and final xor 0xFFFFFFFF ----


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFFFFFF


# The document's check values; a wrong table would make every comparison below meaningless.
assert crc32c(b"123456789") == 0xE3069283
assert crc32c(b"") == 0
assert crc32c(b"hello") == 0x9A71BB4C


# ---- little-endian field access (LAYOUT.md 1) ----


class View:
    """Little-endian fixed-width loads from a read-only mapping, bounds-checked."""

    def __init__(self, m: mmap.mmap, size: int) -> None:
        self.m = m
        self.size = size

    def _check(self, offset: int, width: int) -> None:
        if offset < 0 or offset + width > self.size:
            raise corrupt(f"offset {offset}+{width} lies outside the {self.size}-byte segment")

    def u32(self, offset: int) -> int:
        self._check(offset, 4)
        return struct.unpack_from("<I", self.m, offset)[0]

    def u64(self, offset: int) -> int:
        self._check(offset, 8)
        return struct.unpack_from("<Q", self.m, offset)[0]

    def raw(self, offset: int, length: int) -> bytes:
        self._check(offset, length)
        return bytes(self.m[offset : offset + length])


def round_up(value: int, align: int) -> int:
    return (value + align - 1) & ~(align - 1)


# ---- names and opening (LAYOUT.md 2) ----

_NAME_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def validate_name(name: str) -> None:
    if not 1 <= len(name.encode()) <= 200:
        raise Refused("INVALID_NAME", f"name {name!r} must be 1 to 200 bytes")
    bad = [c for c in name if c not in _NAME_CHARS]
    if bad:
        raise Refused("INVALID_NAME", f"name {name!r}: character {bad[0]!r} is not allowed")
    if name[0] in ".-":
        raise Refused("INVALID_NAME", f"name {name!r} must not start with '.' or '-'")


def open_segment(path: str, min_size: int, magic: bytes, init_wait: float) -> tuple[View, int]:
    """Steps 1-5 of LAYOUT.md 2.3, read-only. Returns the view and the object's real size."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise Refused("NOT_FOUND", f"{path} does not exist") from None
    except PermissionError:
        raise Refused("PERMISSION_DENIED", f"{path}: permission denied") from None
    try:
        deadline = time.monotonic() + init_wait
        while True:
            size = os.fstat(fd).st_size
            if size >= min_size:
                break
            if time.monotonic() >= deadline:
                raise Refused("NOT_SHMLINE", f"{path} is {size} bytes, too small")
            time.sleep(0.001)
        m = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    view = View(m, size)
    while True:
        found = view.u64(0)
        if found != 0 or time.monotonic() >= deadline:
            break
        time.sleep(0.001)
    found_bytes = found.to_bytes(8, "little")
    if found_bytes != magic:
        raise Refused("NOT_SHMLINE", f"{path}: magic {found_bytes!r}, expected {magic!r}")
    version = view.u32(8)
    if version != LAYOUT_VERSION:
        raise Refused(
            "VERSION_MISMATCH", f"{path}: layout version {version}, this reader knows {LAYOUT_VERSION}"
        )
    return view, size


# ---- process liveness (LAYOUT.md 6) ----


def is_alive(pid: int, start_time: int) -> bool:
    if pid == 0 or pid > (1 << 31) - 1:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return False
    rest = text[text.rfind(")") + 1 :].split()
    if len(rest) < 20:
        return False
    state, starttime = rest[0][:1], rest[19]
    return state != "X" and starttime.isdigit() and int(starttime) == start_time


# ---- schema block (LAYOUT.md 3.4) ----

_ASCII_ALNUM = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_SIZES = {"b": {1}, "i": {1, 2, 4, 8}, "u": {1, 2, 4, 8}, "f": {2, 4, 8, 16}, "c": {8, 16, 32},
          "m": {8}, "M": {8}}


def parse_dtype(text: str) -> tuple[str, int]:
    """Normalises a dtype string and returns (normalised, item size), or raises CORRUPT."""
    if not text:
        raise corrupt("schema dtype is empty")
    if text[0] in "<>|":
        order, rest = text[0], text[1:]
    elif text[0] == "=":
        order, rest = "<", text[1:]
    else:
        order, rest = "<", text
    kind, body = rest[:1], rest[1:]
    if kind == "" or kind not in "biufcmMSUV":
        raise corrupt(f"schema dtype {text!r} has an unknown kind")
    if kind in "bSV" or (kind in "iu" and body == "1"):
        order = "|"
    digits, bracket, unit = body.partition("[")
    if bracket:
        inner = unit[:-1]
        if kind not in "mM" or not unit.endswith("]") or not inner or not set(inner) <= _ASCII_ALNUM:
            raise corrupt(f"schema dtype {text!r} has a bad unit")
    if not digits or not set(digits) <= set("0123456789"):
        raise corrupt(f"schema dtype {text!r} has no item size")
    n = int(digits)
    if kind in _SIZES and n not in _SIZES[kind]:
        raise corrupt(f"schema dtype {text!r}: size {n} is not allowed for kind {kind!r}")
    item = 4 * n if kind == "U" else n
    if item <= 0:
        raise corrupt(f"schema dtype {text!r} has a zero item size")
    normalised = order + rest
    if len(normalised) >= DTYPE_LEN:
        raise corrupt(f"schema dtype {text!r} is too long")
    return normalised, item


def read_schema(view: View, max_frame: int) -> dict:
    raw = view.raw(128, DTYPE_LEN)
    end = raw.find(b"\0")
    if end < 0:
        raise corrupt("schema dtype is not NUL-terminated within 32 bytes")
    try:
        text = raw[:end].decode("ascii")
    except UnicodeDecodeError:
        raise corrupt("schema dtype is not ASCII") from None
    dtype, item = parse_dtype(text)
    ndim = view.u32(160)
    if ndim > MAX_NDIM:
        raise corrupt(f"schema ndim {ndim} is more than {MAX_NDIM}")
    shape = [view.u64(168 + 8 * i) for i in range(ndim)]
    if 0 in shape:
        raise corrupt(f"schema shape {shape} has a zero dimension")
    frame_size = item
    for d in shape:
        frame_size *= d
    if frame_size > MAX_FRAME or frame_size > max_frame:
        raise corrupt(f"schema frame size {frame_size} exceeds max_frame {max_frame}")
    return {"dtype": dtype, "ndim": ndim, "shape": shape, "item_size": item, "frame_size": frame_size}


# ---- stream (LAYOUT.md 3 and 4) ----


def fmt(record: str, **fields: object) -> str:
    parts = [record]
    for key, value in fields.items():
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        parts.append(f"{key}={value}")
    return " ".join(parts)


def read_stream(name: str) -> list[str]:
    path = f"{SHM_DIR}/{STREAM_PREFIX}{name}"
    view, object_size = open_segment(path, HEADER_SIZE, STREAM_MAGIC, STREAM_INIT_WAIT_S)
    out = [fmt("stream", name=name, path=path, object_size=object_size)]

    # Line 0, copied once (LAYOUT.md 2.3 step 7): never re-read below.
    h = {
        "magic": STREAM_MAGIC.decode(),
        "layout_version": view.u32(8),
        "header_size": view.u32(12),
        "segment_size": view.u64(16),
        "capacity": view.u32(24),
        "slot_size": view.u32(28),
        "max_frame": view.u32(32),
        "max_readers": view.u32(36),
        "max_writers": view.u32(40),
        "flags": view.u32(44),
        "readers_offset": view.u64(48),
        "slots_offset": view.u64(56),
        "creator_pid": view.u32(64),
        "creator_start_time": view.u64(72),
        "created_unix_ns": view.u64(80),
        "policy": view.u32(88),
        "max_groups": view.u32(92),
        "writers_offset": view.u64(96),
        "groups_offset": view.u64(104),
    }
    out.append(fmt("header", **h))

    # LAYOUT.md 3.7, in order.
    if h["header_size"] != HEADER_SIZE:
        raise corrupt(f"header_size is {h['header_size']}, expected {HEADER_SIZE}")
    if h["readers_offset"] != HEADER_SIZE:
        raise corrupt(f"readers_offset is {h['readers_offset']}, expected {HEADER_SIZE}")
    capacity, max_frame, max_readers = h["capacity"], h["max_frame"], h["max_readers"]
    if not (1 <= capacity <= MAX_CAPACITY and capacity & (capacity - 1) == 0):
        raise corrupt(f"capacity {capacity} is not a power of two in 1..{MAX_CAPACITY}")
    if not 1 <= max_frame <= MAX_FRAME:
        raise corrupt(f"max_frame {max_frame} is not in 1..{MAX_FRAME}")
    if not 1 <= max_readers <= MAX_READERS:
        raise corrupt(f"max_readers {max_readers} is not in 1..{MAX_READERS}")
    max_writers = h["max_writers"]
    if not 1 <= max_writers <= MAX_WRITERS:
        raise corrupt(f"max_writers {max_writers} is not in 1..{MAX_WRITERS}")
    max_groups = h["max_groups"]
    if not 0 <= max_groups <= MAX_GROUPS:
        raise corrupt(f"max_groups {max_groups} is not in 0..{MAX_GROUPS}")
    writer_entries = max_writers if max_writers > 1 else 0
    slot_size = round_up(FRAME_HEADER_SIZE + max_frame, SLOT_ALIGN)
    writers_offset = HEADER_SIZE + max_readers * LINE
    groups_offset = writers_offset + writer_entries * LINE
    slots_offset = round_up(groups_offset + max_groups * LINE, SLOTS_ALIGN)
    segment_size = slots_offset + capacity * slot_size
    for field, expected in (
        ("slot_size", slot_size),
        ("writers_offset", writers_offset),
        ("groups_offset", groups_offset),
        ("slots_offset", slots_offset),
        ("segment_size", segment_size),
    ):
        if h[field] != expected:
            raise corrupt(f"{field} is {h[field]}, the document's formula gives {expected}")
    if segment_size > MAX_SEGMENT_SIZE:
        raise corrupt(f"segment_size {segment_size} is more than {MAX_SEGMENT_SIZE}")
    if segment_size != object_size:
        raise corrupt(f"segment_size is {segment_size}, the object is {object_size} bytes")
    flags = h["flags"]
    if flags & ~FLAGS_KNOWN:
        raise corrupt(f"flags {flags:#x} has bits other than {FLAGS_KNOWN:#x}")
    if h["policy"] not in POLICIES:
        raise corrupt(f"policy is {h['policy']}, expected 0 to 3")
    checksum = bool(flags & FLAG_CHECKSUM)
    reader_offsets = [HEADER_SIZE + LINE * i for i in range(max_readers)]
    writer_offsets = [writers_offset + LINE * j for j in range(writer_entries)]
    group_offsets = [groups_offset + LINE * g for g in range(max_groups)]
    slot_offsets = [slots_offset + slot_size * i for i in range(capacity)]
    out.append(
        fmt(
            "geometry",
            slot_size=slot_size,
            slots_offset=slots_offset,
            segment_size=segment_size,
            reader_offsets=reader_offsets[:16],
            writer_offsets=writer_offsets[:16] or "-",
            group_offsets=group_offsets[:16] or "-",
            slot_offsets=slot_offsets[:16],
        )
    )

    if flags & FLAG_SCHEMA:
        s = read_schema(view, max_frame)
        out.append(fmt("schema", present=True, **s))
    else:
        out.append(fmt("schema", present=False))

    # Line 4: writer identity (LAYOUT.md 4.11).
    state = view.u32(512)
    writer_pid = view.u32(516)
    writer_start = view.u64(520)
    identified = state in (1, 2)
    if state & WRITER_CLAIMING:
        # A claimant, known by its pid alone until it records its start time.
        claimant = state & ~WRITER_CLAIMING
        state_name, alive = "claiming", os.path.exists(f"/proc/{claimant}")
        writer_pid = claimant
    else:
        state_name = WRITER_STATES.get(state, f"unknown({state})")
        alive = identified and is_alive(writer_pid, writer_start)
    out.append(
        fmt(
            "writer",
            state=state_name,
            pid=writer_pid,
            start_time=writer_start,
            alive=alive,
        )
    )

    head = view.u64(256)
    out.append(
        fmt(
            "live",
            head=head,
            data_futex=view.u32(264),
            readers_waiting=view.u32(400),
            claim_seq=view.u64(272),
            space_futex=view.u32(384),
            writer_waiting=view.u32(388),
            scan_seq=view.u64(528),
            write_limit=view.u64(536),
            bytes_written=view.u64(544),
            wait_count=view.u64(552),
            wait_ns=view.u64(560),
            readers_reclaimed=view.u64(568),
            frames_dropped=view.u64(576),
            frames_skipped=view.u64(584),
            writers_reclaimed=view.u64(592),
            writer_count=view.u32(600) & ~(WRITER_COUNT_CLOSED | WRITER_COUNT_DEAD),
            writers_closed=bool(view.u32(600) & WRITER_COUNT_CLOSED),
            writers_dead=bool(view.u32(600) & WRITER_COUNT_DEAD),
            table_lock=view.u32(604),
        )
    )

    # Reader table (LAYOUT.md 3.5): report, never index with these values.
    for i, off in enumerate(reader_offsets):
        owner = view.u64(off + 8)
        rstate = owner & OWNER_STATE_MASK
        if rstate == 0:
            continue
        pid = owner >> OWNER_PID_SHIFT
        rflags = view.u32(off + 16)
        group = view.u32(off + 20)
        start = view.u64(off + 24)
        pos = view.u64(off)
        held_end = view.u64(off + 56)
        member = group != 0 and rstate in (2, 3)
        if member and pos == IDLE:
            lag = 0  # a group member holding no frame (LAYOUT.md 4.12)
        else:
            lag = head - pos if pos <= head else "invalid"
        out.append(
            fmt(
                "reader",
                index=i,
                offset=off,
                state=READER_STATES.get(rstate, f"unknown({rstate})"),
                flags=rflags,
                lossy=bool(rflags & READER_FLAG_LOSSY),
                pos="IDLE" if pos == IDLE else pos,
                pid=pid,
                generation=(owner & 0xFFFF_FFFF) >> OWNER_GENERATION_SHIFT,
                asleep=bool(owner & OWNER_ASLEEP),
                start_time=start,
                alive=is_alive(pid, start),
                frames_read=view.u64(off + 32),
                bytes_read=view.u64(off + 40),
                missed=view.u64(off + 48),
                lag=lag,
                group=group - 1 if member else "-",
                held_end=("IDLE" if held_end == IDLE else held_end) if member else "-",
            )
        )

    # Group table (LAYOUT.md 3.5b): report, never index with these values.
    for g, off in enumerate(group_offsets):
        gstate = view.u32(off + 8)
        if gstate == 0:
            continue
        raw_name = view.raw(off + 64, GROUP_NAME_LEN)
        name_bytes = raw_name.split(b"\0", 1)[0]
        nxt = view.u64(off)
        first = view.u64(off + 24)
        out.append(
            fmt(
                "group",
                index=g,
                offset=off,
                state=GROUP_STATES.get(gstate, f"unknown({gstate})"),
                # Untrusted bytes: printed without spaces or control characters.
                name="".join(chr(b) if 33 <= b < 127 else "?" for b in name_bytes) or "-",
                next=nxt,
                first=first,
                handed_out=nxt - first if first <= nxt else "invalid",
                orphans=view.u32(off + 12),
                redelivered=view.u64(off + 16),
                lag=head - nxt if nxt <= head else "invalid",
            )
        )

    # Writer table of a multi-writer stream (LAYOUT.md 3.5a).
    for j, off in enumerate(writer_offsets):
        owner = view.u64(off + 8)
        wstate = owner & OWNER_STATE_MASK
        if wstate == 0:
            continue
        pid = owner >> OWNER_PID_SHIFT
        start = view.u64(off + 24)
        claim = view.u64(off)
        out.append(
            fmt(
                "writer_entry",
                index=j,
                offset=off,
                state=WRITER_ENTRY_STATES.get(wstate, f"unknown({wstate})"),
                pid=pid,
                generation=(owner & 0xFFFF_FFFF) >> OWNER_GENERATION_SHIFT,
                start_time=start,
                alive=is_alive(pid, start),
                claim="EMPTY" if claim == EMPTY else claim,
                frames_written=view.u64(off + 40),
                bytes_written=view.u64(off + 48),
            )
        )

    # Frames (LAYOUT.md 4.12, read like a lossy reader, 4.7).
    frames = gone = 0
    seqs = []
    for seq in range(max(0, head - capacity), head):
        index = seq & (capacity - 1)
        off = slots_offset + index * slot_size
        found = view.u64(off)
        if found != seq:
            if found != EMPTY and found < seq:
                raise corrupt(f"slot {index} of published frame {seq} holds older frame {found}")
            out.append(fmt("gone", seq=seq, found="EMPTY" if found == EMPTY else found))
            gone += 1
            continue
        length = view.u32(off + 16)
        if length > max_frame:
            if view.u64(off) != seq:
                out.append(fmt("gone", seq=seq, found="rewritten"))
                gone += 1
                continue
            raise corrupt(f"frame {seq} claims {length} bytes, more than max_frame {max_frame}")
        timestamp = view.u64(off + 8)
        fflags = view.u32(off + 20)
        stored_crc = view.u32(off + 24)
        # Only multi-writer streams give the status a meaning (LAYOUT.md 3.6, 4.14).
        status = FRAME_STATUSES.get(view.u32(off + 28), "unknown") if writer_entries else "frame"
        payload = view.raw(off + FRAME_HEADER_SIZE, length)
        if view.u64(off) != seq:
            out.append(fmt("gone", seq=seq, found="rewritten"))
            gone += 1
            continue
        if checksum and crc32c(payload) != stored_crc:
            raise corrupt(
                f"frame {seq} fails its checksum (stored {stored_crc:#010x}, "
                f"computed {crc32c(payload):#010x})"
            )
        out.append(
            fmt(
                "frame",
                seq=seq,
                index=index,
                offset=off,
                timestamp_ns=timestamp,
                len=length,
                flags=fflags,
                crc32c=f"{stored_crc:#010x}",
                status=status,
                crc="ok" if checksum else "none",
                payload=payload.hex() or "-",
            )
        )
        frames += 1
        seqs.append(seq)
    out.append(
        fmt(
            "summary",
            frames=frames,
            gone=gone,
            first=seqs[0] if seqs else "-",
            last=seqs[-1] if seqs else "-",
            checksum=checksum,
        )
    )
    return out


# ---- event (LAYOUT.md 5) ----


def read_event(name: str) -> list[str]:
    path = f"{SHM_DIR}/{EVENT_PREFIX}{name}"
    view, object_size = open_segment(path, EVENT_SEGMENT_SIZE, EVENT_MAGIC, EVENT_INIT_WAIT_S)
    segment_size = view.u64(16)
    if segment_size != EVENT_SEGMENT_SIZE:
        raise corrupt(f"segment_size is {segment_size}, an event is {EVENT_SEGMENT_SIZE} bytes")
    if object_size != segment_size:
        raise corrupt(f"segment_size is {segment_size}, the object is {object_size} bytes")
    mode = view.u32(12)
    if mode not in EVENT_MODES:
        raise corrupt(f"mode is {mode}, not 0 (flag) or 1 (counting)")
    creator_pid = view.u32(24)
    creator_start = view.u64(32)
    value = view.u32(128)
    return [
        fmt("event", name=name, path=path, object_size=object_size),
        fmt(
            "header",
            magic=EVENT_MAGIC.decode(),
            layout_version=view.u32(8),
            mode=EVENT_MODES[mode],
            segment_size=segment_size,
            creator_pid=creator_pid,
            creator_start_time=creator_start,
            created_unix_ns=view.u64(40),
            creator_alive=is_alive(creator_pid, creator_start),
        ),
        fmt("live", value=value, waiters=view.u32(132), sets=view.u64(136), is_set=value != 0),
    ]


def main(argv: list[str]) -> int:
    args = argv[1:]
    event = bool(args) and args[0] == "--event"
    if event:
        args = args[1:]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        validate_name(args[0])
        lines = read_event(args[0]) if event else read_stream(args[0])
    except Refused as refusal:
        print(fmt("error", status=refusal.status))
        print(f"layout_reader: {refusal.status}: {refusal}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
