//! `docs/LAYOUT.md` is the contract: `tests/layout_reader.py`, a pure-Python reader written only
//! from that document, decodes segments the Rust core made, byte for byte, and refuses the same
//! damaged segments the core refuses.
//!
//! The script prints one record per line (`<record> key=value ...`); these tests compare every
//! record with what the Rust side wrote. They need `python3` (3.11 or later). Without it they are
//! skipped with a message, except under CI (`CI` set), where a missing interpreter fails.

mod support;

use shmline::monotonic_ns;
use shmline::{
    Event, EventMode, EventOptions, ReaderOptions, Schema, Status, Stream, StreamOptions,
};
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use support::unique;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/layout_reader.py");

/// The Python interpreter behind `python3`, resolved once (`python3` is often a slow wrapper
/// script, e.g. a pyenv shim); `None` (with a message) if it is missing outside CI.
fn python() -> Option<&'static PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let probe = Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output();
            match probe {
                Ok(out) if out.status.success() => {
                    let path = String::from_utf8(out.stdout).expect("a UTF-8 path");
                    Some(PathBuf::from(path.trim()))
                }
                Ok(out) => panic!("python3 is installed but does not run: {out:?}"),
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        && std::env::var_os("CI").is_none() =>
                {
                    eprintln!(
                        "SKIPPED: python3 is not installed, so tests/layout_reader.py cannot \
                         check docs/LAYOUT.md against the Rust core"
                    );
                    None
                }
                Err(e) => panic!("cannot run python3 (required under CI): {e}"),
            }
        })
        .as_ref()
}

fn have_python() -> bool {
    python().is_some()
}

/// One output line of the script: a record name and its `key=value` fields.
#[derive(Debug)]
struct Record {
    kind: String,
    fields: HashMap<String, String>,
}

impl Record {
    fn get(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("record {:?} has no field {key:?}", self))
    }

    fn num(&self, key: &str) -> u64 {
        let value = self.get(key);
        value
            .parse()
            .unwrap_or_else(|_| panic!("field {key}={value} of {self:?} is not a number"))
    }
}

/// The script's output and exit status.
struct Report {
    ok: bool,
    records: Vec<Record>,
    stderr: String,
}

impl Report {
    fn all(&self, kind: &str) -> Vec<&Record> {
        self.records.iter().filter(|r| r.kind == kind).collect()
    }

    fn one(&self, kind: &str) -> &Record {
        let found = self.all(kind);
        assert_eq!(found.len(), 1, "expected one {kind:?} record: {found:?}");
        found[0]
    }

    /// The status name of a refusal (`CORRUPT`, ...).
    fn refusal(&self) -> &str {
        assert!(
            !self.ok,
            "the reader accepted the segment: {:?}",
            self.records
        );
        self.one("error").get("status")
    }
}

fn run_reader(args: &[&str]) -> Report {
    // -I -S: isolated and without site-packages, so the script sees the standard library only
    // (and starts in milliseconds).
    let out = Command::new(python().expect("checked by the test"))
        .args(["-I", "-S", SCRIPT])
        .args(args)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8(out.stdout).expect("the reader prints UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let records = stdout
        .lines()
        .map(|line| {
            let mut words = line.split(' ');
            let kind = words.next().unwrap_or_default().to_owned();
            let fields = words
                .map(|w| {
                    let (k, v) = w.split_once('=').unwrap_or_else(|| {
                        panic!("malformed output word {w:?} in {line:?}\nstderr: {stderr}")
                    });
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            Record { kind, fields }
        })
        .collect();
    let ok = out.status.success();
    // The script exits 1 on a refusal and 2 on a usage error; anything else is a crash.
    assert!(
        ok || out.status.code() == Some(1),
        "the reader crashed ({}):\n{stderr}",
        out.status
    );
    Report {
        ok,
        records,
        stderr,
    }
}

/// Payload length of frame `seq`: empty, full (100) and odd sizes.
const LENS: [usize; 12] = [0, 100, 1, 64, 37, 99, 8, 50, 3, 77, 64, 12];

fn payload(seq: u64) -> Vec<u8> {
    (0..LENS[seq as usize])
        .map(|i| (seq as usize * 31 + i * 7 + 1) as u8)
        .collect()
}

fn frame_flags(seq: u64) -> u32 {
    0x8000_0000 | (seq as u32 * 3)
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "-".into();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_python_reader_written_from_layout_md_decodes_every_byte_of_a_closed_stream() {
    if !have_python() {
        return;
    }
    let name = unique("frames");
    let stream = Stream::create(
        &name,
        &StreamOptions {
            capacity: 8,
            max_frame_size: 100,
            max_readers: 4,
            schema: Some(Schema::new("<u2", &[4, 8]).unwrap()),
            checksum: true,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut lossless = stream.reader(&ReaderOptions::default()).unwrap();
    let _lossy = stream
        .reader(&ReaderOptions {
            lossy: true,
            ..Default::default()
        })
        .unwrap();
    let mut writer = stream.writer().unwrap();
    let before = monotonic_ns();
    // A full ring, then the lossless reader frees five slots and the writer wraps into four of
    // them: frames 4..12 are in the ring, 8..12 in slots 0..4.
    for seq in 0..8 {
        writer
            .write_with_flags(&payload(seq), frame_flags(seq))
            .unwrap();
    }
    for seq in 0..5 {
        let frame = lossless.read().unwrap();
        assert_eq!((frame.info.seq, frame.data), (seq, payload(seq)));
    }
    for seq in 8..12 {
        writer
            .write_with_flags(&payload(seq), frame_flags(seq))
            .unwrap();
    }
    let after = monotonic_ns();
    writer.close();

    let report = run_reader(&[&name]);
    assert!(
        report.ok,
        "the reader refused the stream:\n{}",
        report.stderr
    );
    let me = std::process::id() as u64;

    let object = report.one("stream");
    assert_eq!(object.num("object_size"), 5632);
    let header = report.one("header");
    for (field, value) in [
        ("layout_version", u64::from(shmline::LAYOUT_VERSION)),
        ("header_size", 640),
        ("segment_size", 5632),
        ("capacity", 8),
        ("slot_size", 192),
        ("max_frame", 100),
        ("max_readers", 4),
        ("max_writers", 1),
        ("flags", 3),
        ("readers_offset", 640),
        ("slots_offset", 4096),
        ("creator_pid", me),
        ("policy", 0),
        ("writers_offset", 1152),
        ("max_groups", 4),
        ("groups_offset", 1152),
    ] {
        assert_eq!(header.num(field), value, "header field {field}");
    }
    assert_eq!(header.get("magic"), "SHMLSTRM");
    // The worked example of LAYOUT.md section 8, recomputed by the script from the formulae.
    let geometry = report.one("geometry");
    assert_eq!(geometry.get("reader_offsets"), "640,768,896,1024");
    assert_eq!(geometry.get("writer_offsets"), "-");
    assert_eq!(geometry.get("group_offsets"), "1152,1280,1408,1536");
    assert_eq!(
        geometry.get("slot_offsets"),
        "4096,4288,4480,4672,4864,5056,5248,5440"
    );

    let schema = report.one("schema");
    assert_eq!(schema.get("present"), "1");
    assert_eq!(schema.get("dtype"), "<u2");
    assert_eq!(schema.get("ndim"), "2");
    assert_eq!(schema.get("shape"), "4,8");
    assert_eq!(schema.num("frame_size"), 64);

    let writer_record = report.one("writer");
    assert_eq!(writer_record.get("state"), "closed");
    assert_eq!(writer_record.num("pid"), me);
    // The script's own reading of /proc/<pid>/stat field 22 matches the start time Rust stored.
    assert_eq!(writer_record.get("alive"), "1");

    let live = report.one("live");
    let total: usize = LENS.iter().sum();
    assert_eq!(live.num("head"), 12);
    assert_eq!(live.num("bytes_written"), total as u64);
    // The writer's last scan saw the lossless reader at 5.
    assert_eq!(live.num("write_limit"), 5 + 8);
    assert_eq!(live.num("scan_seq") % 2, 0, "no scan in progress");
    assert!(
        live.num("data_futex") >= 1,
        "closing bumps the readers' futex"
    );
    assert_eq!(live.num("readers_waiting"), 0);
    assert_eq!(live.num("writer_waiting"), 0);
    assert_eq!(live.num("claim_seq"), 0);
    assert_eq!(live.num("wait_count"), 0);
    assert_eq!(live.num("readers_reclaimed"), 0);
    assert_eq!(live.num("frames_dropped"), 0);

    let readers = report.all("reader");
    assert_eq!(readers.len(), 2, "{readers:?}");
    let (first, second) = (readers[0], readers[1]);
    assert_eq!(first.get("group"), "-");
    assert!(report.all("group").is_empty());
    assert_eq!(first.num("index"), 0);
    assert_eq!(first.get("state"), "active");
    assert_eq!(first.get("lossy"), "0");
    assert_eq!(first.num("pos"), 5);
    assert_eq!(first.num("frames_read"), 5);
    assert_eq!(
        first.num("bytes_read"),
        LENS[..5].iter().sum::<usize>() as u64
    );
    assert_eq!(first.num("lag"), 7);
    assert_eq!(first.num("pid"), me);
    assert_eq!(first.get("alive"), "1");
    assert_eq!(first.num("generation"), 0, "never freed");
    assert_eq!(first.get("asleep"), "0");
    assert_eq!(second.num("index"), 1);
    assert_eq!(second.get("state"), "active");
    assert_eq!(second.num("flags"), 1);
    assert_eq!(second.get("lossy"), "1");
    assert_eq!(second.num("pos"), 0);

    assert!(report.all("gone").is_empty(), "{:?}", report.all("gone"));
    let frames = report.all("frame");
    assert_eq!(frames.len(), 8);
    let mut last_timestamp = before;
    for (frame, seq) in frames.iter().zip(4u64..12) {
        let data = payload(seq);
        let index = seq & 7;
        assert_eq!(frame.num("seq"), seq);
        assert_eq!(frame.num("index"), index);
        assert_eq!(frame.num("offset"), 4096 + 192 * index);
        assert_eq!(frame.num("len"), data.len() as u64, "frame {seq}");
        assert_eq!(frame.num("flags"), frame_flags(seq) as u64, "frame {seq}");
        assert_eq!(frame.get("payload"), hex(&data), "frame {seq}");
        assert_eq!(frame.get("crc"), "ok");
        assert_eq!(
            frame.get("crc32c"),
            format!("{:#010x}", crc32c::crc32c(&data)),
            "frame {seq}"
        );
        let timestamp = frame.num("timestamp_ns");
        assert!(
            (last_timestamp..=after).contains(&timestamp),
            "frame {seq}: timestamp {timestamp} outside {last_timestamp}..={after}"
        );
        last_timestamp = timestamp;
    }
    let summary = report.one("summary");
    assert_eq!(
        (
            summary.num("frames"),
            summary.num("first"),
            summary.num("last")
        ),
        (8, 4, 11)
    );
}

#[test]
fn a_python_reader_sees_a_schemaless_stream_without_checksums_or_writer() {
    if !have_python() {
        return;
    }
    let name = unique("plain");
    let _stream = Stream::create(
        &name,
        &StreamOptions {
            capacity: 4,
            max_frame_size: 16,
            max_readers: 1,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let report = run_reader(&[&name]);
    assert!(report.ok, "{}", report.stderr);
    let header = report.one("header");
    assert_eq!(header.num("flags"), 0);
    assert_eq!(header.num("slot_size"), 64); // round_up(32 + 16, 64)
    assert_eq!(header.num("slots_offset"), 4096);
    assert_eq!(header.num("segment_size"), 4096 + 4 * 64);
    assert_eq!(report.one("schema").get("present"), "0");
    assert_eq!(report.one("writer").get("state"), "none");
    assert_eq!(report.one("live").num("head"), 0);
    assert!(report.all("reader").is_empty());
    let summary = report.one("summary");
    assert_eq!(summary.num("frames"), 0);
    assert_eq!(summary.get("checksum"), "0");
}

#[test]
fn a_python_reader_decodes_the_writer_table_and_skipped_numbers_of_a_multi_writer_stream() {
    if !have_python() {
        return;
    }
    let name = unique("multi");
    let stream = Stream::create(
        &name,
        &StreamOptions {
            capacity: 8,
            max_frame_size: 16,
            max_readers: 2,
            max_writers: 3,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut first = stream.writer().unwrap();
    let mut second = stream.writer().unwrap();
    first.write(b"one").unwrap();
    // An aborted reservation: its number cannot be handed back, so it is published skipped.
    drop(second.reserve().unwrap());
    second.write(b"three").unwrap();
    let report = run_reader(&[&name]);
    assert!(report.ok, "{}", report.stderr);
    let header = report.one("header");
    assert_eq!(header.num("max_writers"), 3);
    assert_eq!(header.num("writers_offset"), 640 + 2 * 128);
    // round_up(896 + 3 * 128, 4096)
    assert_eq!(header.num("slots_offset"), 4096);
    assert_eq!(
        report.one("geometry").get("writer_offsets"),
        "896,1024,1152"
    );
    let entries = report.all("writer_entry");
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries.iter().all(|e| e.get("state") == "active"));
    assert!(entries.iter().all(|e| e.get("alive") == "1"));
    assert_eq!(entries[0].num("claim"), 0);
    assert_eq!(entries[1].num("claim"), 2);
    assert_eq!(
        entries[1].num("frames_written"),
        1,
        "the skipped number is not a frame"
    );
    assert_eq!(entries[1].num("bytes_written"), 5);
    let live = report.one("live");
    assert_eq!(live.num("head"), 3);
    assert_eq!(live.num("claim_seq"), 3);
    assert_eq!(live.num("writer_count"), 2);
    assert_eq!(live.get("writers_closed"), "0");
    assert_eq!(live.num("frames_skipped"), 1);
    let statuses: Vec<&str> = report
        .all("frame")
        .iter()
        .map(|f| f.get("status"))
        .collect();
    assert_eq!(statuses, ["frame", "skipped", "frame"]);
    drop((first, second));
    let live = run_reader(&[&name]);
    assert_eq!(live.one("live").get("writers_closed"), "1");
    assert_eq!(live.one("writer").get("state"), "closed");
}

/// Overwrites `bytes` at `offset` of a segment file, as a buggy or hostile process could.
fn damage(file: &str, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{file}"))
        .unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

#[test]
fn a_python_reader_decodes_the_owner_word_of_a_reused_entry_and_a_claiming_writer() {
    if !have_python() {
        return;
    }
    let name = unique("owner");
    let stream = Stream::create(
        &name,
        &StreamOptions {
            max_frame_size: 8,
            max_readers: 1,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    drop(stream.reader(&ReaderOptions::default()).unwrap());
    let _again = stream.reader(&ReaderOptions::default()).unwrap();
    // A writer caught claiming the role: WRITER_CLAIMING (bit 31) | its pid.
    let me = std::process::id();
    damage(
        &format!("shmline.stream.{name}"),
        512,
        &(shmline::__private::layout::WRITER_CLAIMING | me).to_le_bytes(),
    );
    let report = run_reader(&[&name]);
    let reader = report.one("reader");
    assert_eq!(reader.get("state"), "active");
    assert_eq!(reader.num("pid"), u64::from(me));
    assert_eq!(
        reader.num("generation"),
        1,
        "freed once, by the first reader leaving"
    );
    let writer = report.one("writer");
    assert_eq!(writer.get("state"), "claiming");
    assert_eq!(writer.num("pid"), u64::from(me));
    assert_eq!(writer.get("alive"), "1");
}

#[test]
fn python_and_rust_refuse_the_same_damaged_headers_with_the_same_status() {
    if !have_python() {
        return;
    }
    let name = unique("damaged");
    let _stream = Stream::create(
        &name,
        &StreamOptions {
            capacity: 4,
            max_frame_size: 16,
            max_readers: 1,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let file = format!("shmline.stream.{name}");
    // Damages one field, checks both readers refuse it with `status`, then repairs it.
    let refused = |what: &str, offset: u64, bad: &[u8], good: &[u8], status: Status| {
        damage(&file, offset, bad);
        let rust = Stream::open(&name).map(|_| ()).unwrap_err().status();
        let python = run_reader(&[&name]);
        assert_eq!(rust, status, "Rust, damaged {what}");
        assert_eq!(python.refusal(), status.name(), "Python, damaged {what}");
        damage(&file, offset, good);
    };
    let u32le = u32::to_le_bytes;
    refused("magic", 0, b"SHMLXXXX", b"SHMLSTRM", Status::NotShmline);
    // A segment of the previous layout (version 3, whose sleepers issue no membarrier) and of
    // the next are refused as such.
    let version = shmline::LAYOUT_VERSION;
    let (current, previous, next) = (u32le(version), u32le(version - 1), u32le(version + 1));
    refused("version", 8, &previous, &current, Status::VersionMismatch);
    refused("version", 8, &next, &current, Status::VersionMismatch);
    refused("max_groups", 92, &u32le(65), &u32le(4), Status::Corrupt);
    let (bad_groups, good_groups) = (0u64.to_le_bytes(), 768u64.to_le_bytes());
    refused(
        "groups_offset",
        104,
        &bad_groups,
        &good_groups,
        Status::Corrupt,
    );
    refused("capacity", 24, &u32le(3), &u32le(4), Status::Corrupt);
    refused("slot_size", 28, &u32le(128), &u32le(64), Status::Corrupt);
    refused("unknown flag", 44, &u32le(4), &u32le(0), Status::Corrupt);
    refused("unknown policy", 88, &u32le(4), &u32le(0), Status::Corrupt);
    let (bad_size, good_size) = (8192u64.to_le_bytes(), 4352u64.to_le_bytes());
    refused("segment_size", 16, &bad_size, &good_size, Status::Corrupt);
    assert!(run_reader(&[&name]).ok, "the repaired header is accepted");
    assert_eq!(
        run_reader(&[&unique("missing")]).refusal(),
        Status::NotFound.name()
    );
}

#[test]
fn a_damaged_payload_fails_its_checksum_in_python_as_in_rust() {
    if !have_python() {
        return;
    }
    let name = unique("crc");
    let stream = Stream::create(
        &name,
        &StreamOptions {
            capacity: 4,
            max_frame_size: 16,
            max_readers: 1,
            checksum: true,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
    let mut writer = stream.writer().unwrap();
    writer.write(b"checked").unwrap();
    writer.close();
    assert!(run_reader(&[&name]).ok);
    // Payload of frame 0: slot 0 at 4096, after the 32-byte frame header.
    damage(&format!("shmline.stream.{name}"), 4096 + 32, b"C");
    assert_eq!(run_reader(&[&name]).refusal(), Status::Corrupt.name());
    assert_eq!(reader.read().unwrap_err().status(), Status::Corrupt);
}

#[test]
fn a_python_reader_reads_the_state_of_flag_and_counting_events() {
    if !have_python() {
        return;
    }
    let me = std::process::id() as u64;
    let options = |mode| EventOptions {
        mode,
        unlink_on_close: true,
        ..Default::default()
    };

    let flag_name = unique("flag");
    let flag = Event::create(&flag_name, &options(EventMode::Flag)).unwrap();
    flag.set();
    let report = run_reader(&["--event", &flag_name]);
    assert!(report.ok, "{}", report.stderr);
    let header = report.one("header");
    assert_eq!(header.get("magic"), "SHMLEVNT");
    assert_eq!(
        header.num("layout_version"),
        u64::from(shmline::LAYOUT_VERSION)
    );
    assert_eq!(header.get("mode"), "flag");
    assert_eq!(header.num("segment_size"), 256);
    assert_eq!(header.num("creator_pid"), me);
    assert_eq!(header.get("creator_alive"), "1");
    let live = report.one("live");
    assert_eq!(
        (live.num("value"), live.num("waiters"), live.num("sets")),
        (1, 0, 1)
    );
    flag.clear();
    assert_eq!(
        run_reader(&["--event", &flag_name])
            .one("live")
            .num("value"),
        0
    );

    let counting_name = unique("counting");
    let counting = Event::create(&counting_name, &options(EventMode::Counting)).unwrap();
    for _ in 0..3 {
        counting.set();
    }
    counting.try_wait().unwrap();
    let report = run_reader(&["--event", &counting_name]);
    assert!(report.ok, "{}", report.stderr);
    assert_eq!(report.one("header").get("mode"), "counting");
    let live = report.one("live");
    assert_eq!((live.num("value"), live.num("sets")), (2, 3));
}

#[test]
fn a_python_reader_decodes_the_group_table_and_the_members_of_a_reader_group() {
    if !have_python() {
        return;
    }
    let name = unique("groups");
    let stream = Stream::create(
        &name,
        &StreamOptions {
            capacity: 8,
            max_frame_size: 16,
            max_readers: 3,
            max_groups: 2,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let member = |group: &str| ReaderOptions {
        group: Some(group.into()),
        ..Default::default()
    };
    let mut holder = stream.reader(&member("workers")).unwrap();
    let _idle = stream.reader(&member("workers")).unwrap();
    let _plain = stream.reader(&ReaderOptions::default()).unwrap();
    let mut writer = stream.writer().unwrap();
    for i in 0..3u8 {
        writer.write(&[i]).unwrap();
    }
    let mut buf = [0u8; 32];
    let mut infos = [shmline::FrameInfo::default(); 2];
    // Claims frames 0 and 1 (room for two), delivers both, releases them at the end of the batch;
    // then lends frame 2 in place and holds it.
    assert_eq!(holder.read_batch(&mut buf, &mut infos).unwrap(), 2);
    let held = holder.acquire().unwrap();
    assert_eq!(held.info().seq, 2);

    let report = run_reader(&[&name]);
    assert!(report.ok, "{}", report.stderr);
    let header = report.one("header");
    assert_eq!(header.num("max_groups"), 2);
    // No writer table: the group table follows the reader table at 640 + 3 * 128.
    assert_eq!(header.num("groups_offset"), 1024);
    assert_eq!(report.one("geometry").get("group_offsets"), "1024,1152");
    let groups = report.all("group");
    assert_eq!(groups.len(), 1, "{groups:?}");
    let g = groups[0];
    assert_eq!(g.get("name"), "workers");
    assert_eq!(g.get("state"), "active");
    assert_eq!(
        (
            g.num("index"),
            g.num("offset"),
            g.num("next"),
            g.num("first")
        ),
        (0, 1024, 3, 0)
    );
    assert_eq!(
        (
            g.num("handed_out"),
            g.num("orphans"),
            g.num("redelivered"),
            g.num("lag")
        ),
        (3, 0, 0, 0)
    );
    let readers = report.all("reader");
    assert_eq!(readers.len(), 3, "{readers:?}");
    let (holder_entry, idle_entry, plain_entry) = (readers[0], readers[1], readers[2]);
    assert_eq!(holder_entry.get("group"), "0");
    assert_eq!(
        (holder_entry.num("pos"), holder_entry.num("held_end")),
        (2, 3)
    );
    assert_eq!(holder_entry.num("lag"), 1);
    assert_eq!(
        holder_entry.num("frames_read"),
        2,
        "the lent frame counts once released"
    );
    assert_eq!(idle_entry.get("group"), "0");
    assert_eq!(idle_entry.get("pos"), "IDLE");
    assert_eq!(idle_entry.get("held_end"), "IDLE");
    assert_eq!(idle_entry.num("lag"), 0);
    assert_eq!(plain_entry.get("group"), "-");
    assert_eq!(plain_entry.num("pos"), 0);
    drop(held);
}

#[test]
fn layout_md_states_the_layout_version_of_the_code_everywhere_it_names_it() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/LAYOUT.md")).unwrap();
    let version = shmline::__private::layout::LAYOUT_VERSION;
    // The title, the conventions table, opening step 5, and the stream and event header tables
    // (the registry's own `REGISTRY_VERSION` rows are told apart by that name).
    let title = doc.lines().next().unwrap();
    assert_eq!(
        title,
        format!("# shmline shared-memory layout, version {version}"),
        "LAYOUT.md's title"
    );
    assert!(
        doc.contains(&format!("`LAYOUT_VERSION = {version}`")),
        "LAYOUT.md section 1 should say `LAYOUT_VERSION = {version}`"
    );
    assert!(
        doc.contains(&format!(
            "`layout_version` (offset 8, `u32`) must be {version}, else `VERSION_MISMATCH`"
        )),
        "LAYOUT.md section 2.3 step 5 should require version {version}"
    );
    let rows: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("| 8 | 4 | u32 | `layout_version` |"))
        .filter(|l| !l.contains("REGISTRY_VERSION"))
        .collect();
    assert_eq!(
        rows.len(),
        2,
        "the stream and event header tables: {rows:?}"
    );
    for row in rows {
        assert_eq!(
            row.trim_end(),
            format!("| 8 | 4 | u32 | `layout_version` | {version} |"),
            "a header table of LAYOUT.md"
        );
    }
}

#[test]
fn layout_md_states_the_registry_version_of_the_code_everywhere_it_names_it() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/LAYOUT.md")).unwrap();
    let version = shmline::__private::pipeline_layout::REGISTRY_VERSION;
    // Section 9's introduction, the registry header table and its opening check.
    assert!(
        doc.contains(&format!("`REGISTRY_VERSION = {version}`")),
        "LAYOUT.md section 9 should say `REGISTRY_VERSION = {version}`"
    );
    let rows: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("| 8 | 4 | u32 | `layout_version` |"))
        .filter(|l| l.contains("REGISTRY_VERSION"))
        .collect();
    assert_eq!(rows.len(), 1, "the registry header table: {rows:?}");
    assert!(
        rows[0].starts_with(&format!("| 8 | 4 | u32 | `layout_version` | {version} (")),
        "the registry header table of LAYOUT.md: {}",
        rows[0]
    );
    assert!(
        doc.contains(&format!(
            "| `layout_version` is {version} (`REGISTRY_VERSION`) |"
        )),
        "LAYOUT.md's registry opening checks should require version {version}"
    );
}
