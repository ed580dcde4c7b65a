//! The Rust peer of the conformance matrix that `tests/conformance.rs` runs:
//! `tests/conformance/README.md` has its command line, its frames and its digest, which every
//! language's peer shares. Streams and events through the crate's own API.
//!
//! ```text
//! conformance_peer write|read --stream NAME --kind f32|bytes --path copy|zero --frames N
//! conformance_peer set-event|wait-event --event NAME --mode flag|counting --count K
//! ```

use shmline::{
    Error, Event, EventMode, EventOptions, FrameInfo, ReaderOptions, Schema, Stream, StreamOptions,
    WriterOptions,
};
use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);
const CAPACITY: u32 = 16;
const F32_ELEMENTS: usize = 256;
const F32_FRAME: usize = F32_ELEMENTS * 4;
const BYTES_MAX: usize = 1000;
/// The larger frame of the two kinds.
const FRAME_MAX: usize = F32_FRAME;
const DIGEST_START: u64 = 0xcbf2_9ce4_8422_2325;

// ---- The frames, the digest and the command line: the same in every peer. ----

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    F32,
    Bytes,
}

fn frame_flags(i: u64) -> u32 {
    i.wrapping_mul(2_654_435_761) as u32
}

/// Writes frame `i` of `kind` into `out` (at least `FRAME_MAX` bytes) and returns its length.
fn fill_frame(kind: Kind, i: u64, out: &mut [u8]) -> usize {
    match kind {
        Kind::F32 => {
            for (k, element) in out[..F32_FRAME].chunks_exact_mut(4).enumerate() {
                let n = (i.wrapping_mul(256).wrapping_add(k as u64) % (1 << 24)) as i64 - (1 << 23);
                element.copy_from_slice(&(n as f32 / 256.0).to_le_bytes());
            }
            F32_FRAME
        }
        Kind::Bytes => {
            let len = (i.wrapping_mul(7919) % (BYTES_MAX as u64 + 1)) as usize;
            for (j, byte) in out[..len].iter_mut().enumerate() {
                let j = j as u64;
                *byte = i
                    .wrapping_mul(131)
                    .wrapping_add(j * 7)
                    .wrapping_add((j >> 8) * 13) as u8;
            }
            len
        }
    }
}

/// The CRC-32 of zlib, bit by bit: fast enough for the test's few megabytes.
fn crc32(data: &[u8]) -> u32 {
    let mut c = u32::MAX;
    for &byte in data {
        c ^= u32::from(byte);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn digest_frame(h: u64, seq: u64, flags: u32, data: &[u8]) -> u64 {
    [seq, flags.into(), data.len() as u64, crc32(data).into()]
        .iter()
        .fold(h, |h, &word| (h ^ word).wrapping_mul(0x100_0000_01b3))
}

const USAGE: &str = "usage: conformance_peer write|read --stream NAME --kind f32|bytes \
                     --path copy|zero --frames N\n       \
                     conformance_peer set-event|wait-event --event NAME --mode flag|counting \
                     --count K";

struct Args {
    command: String,
    /// `--stream` or `--event`.
    name: String,
    kind: Kind,
    zero_copy: bool,
    counting: bool,
    /// `--frames` or `--count`.
    count: u64,
}

/// Parses the command line; `None` if it is not one of the four forms.
fn parse(argv: &[String]) -> Option<Args> {
    let (command, pairs) = argv.split_first()?;
    if pairs.len() % 2 != 0 {
        return None;
    }
    let mut options: HashMap<&str, &str> = pairs
        .chunks_exact(2)
        .map(|pair| (pair[0].as_str(), pair[1].as_str()))
        .collect();
    let mut take = |key: &str, allowed: &[&str]| {
        options
            .remove(key)
            .filter(|value| allowed.is_empty() || allowed.contains(value))
    };
    let streams = command == "write" || command == "read";
    let events = command == "set-event" || command == "wait-event";
    let mut args = Args {
        command: command.clone(),
        name: String::new(),
        kind: Kind::F32,
        zero_copy: false,
        counting: false,
        count: 0,
    };
    if streams {
        args.name = take("--stream", &[])?.to_owned();
        args.kind = match take("--kind", &["f32", "bytes"])? {
            "f32" => Kind::F32,
            _ => Kind::Bytes,
        };
        args.zero_copy = take("--path", &["copy", "zero"])? == "zero";
        args.count = take("--frames", &[])?.parse().ok()?;
    } else if events {
        args.name = take("--event", &[])?.to_owned();
        args.counting = take("--mode", &["flag", "counting"])? == "counting";
        args.count = take("--count", &[])?.parse().ok()?;
    } else {
        return None;
    }
    options.is_empty().then_some(args)
}

// ---- The roles. ----

/// What went wrong in a role: an error of the library, or a check that failed.
enum Failure {
    Shmline(&'static str, Error),
    Check(String),
}

impl Failure {
    fn at(what: &'static str) -> impl FnOnce(Error) -> Failure {
        move |e| Failure::Shmline(what, e)
    }
}

fn write_frames(args: &Args) -> Result<(), Failure> {
    let mut options = StreamOptions {
        capacity: CAPACITY,
        unlink_on_close: true,
        ..Default::default()
    };
    match args.kind {
        Kind::F32 => {
            options.schema = Some(Schema::new("<f4", &[F32_ELEMENTS as u64]).unwrap());
        }
        Kind::Bytes => {
            options.max_frame_size = BYTES_MAX as u32;
            options.checksum = true;
        }
    }
    let stream = Stream::create(&args.name, &options).map_err(Failure::at("create the stream"))?;
    let writer_options = WriterOptions {
        timeout: Some(PATIENCE),
        ..Default::default()
    };
    let mut writer = stream
        .writer_with(&writer_options)
        .map_err(Failure::at("open the writer"))?;
    drop(stream); // the writer keeps it mapped
    println!("ready");
    writer
        .wait_for_readers(1, PATIENCE)
        .map_err(Failure::at("wait for a reader"))?;
    let mut frame = [0u8; FRAME_MAX];
    let mut digest = DIGEST_START;
    for i in 0..args.count {
        if args.zero_copy {
            let mut slot = writer.reserve().map_err(Failure::at("reserve"))?;
            let len = fill_frame(args.kind, i, &mut slot);
            digest = digest_frame(digest, i, frame_flags(i), &slot[..len]);
            slot.commit_with_flags(len, frame_flags(i))
                .map_err(Failure::at("commit"))?;
        } else {
            let len = fill_frame(args.kind, i, &mut frame);
            digest = digest_frame(digest, i, frame_flags(i), &frame[..len]);
            writer
                .write_with_flags(&frame[..len], frame_flags(i))
                .map_err(Failure::at("write"))?;
        }
    }
    writer.close();
    println!("wrote {} frames digest {digest:016x}", args.count);
    Ok(())
}

/// Checks frame `i` against the formulas.
fn check_frame(kind: Kind, i: u64, info: &FrameInfo, data: &[u8]) -> Result<(), Failure> {
    let mut expected = [0u8; FRAME_MAX];
    let len = fill_frame(kind, i, &mut expected);
    let bytes_right = data == &expected[..len];
    if info.seq != i || info.flags != frame_flags(i) || info.missed != 0 || !bytes_right {
        return Err(Failure::Check(format!(
            "frame {i} is wrong: {info:?}, expected len {len} and flags {}, bytes {}",
            frame_flags(i),
            if bytes_right { "right" } else { "wrong" }
        )));
    }
    Ok(())
}

fn read_frames(args: &Args) -> Result<(), Failure> {
    let options = ReaderOptions {
        timeout: Some(PATIENCE),
        require_schema: (args.kind == Kind::F32)
            .then(|| Schema::new("<f4", &[F32_ELEMENTS as u64]).unwrap()),
        ..Default::default()
    };
    let mut reader = Stream::open(&args.name)
        .map_err(Failure::at("open the stream"))?
        .reader(&options)
        .map_err(Failure::at("open the reader"))?;
    let mut buffer = [0u8; FRAME_MAX];
    let mut digest = DIGEST_START;
    let mut i = 0;
    loop {
        if args.zero_copy {
            match reader.acquire() {
                Ok(frame) => {
                    check_frame(args.kind, i, frame.info(), &frame)?;
                    digest = digest_frame(digest, i, frame.info().flags, &frame);
                }
                Err(Error::EndOfStream) => break,
                Err(e) => return Err(Failure::Shmline("acquire", e)),
            }
        } else {
            match reader.read_into(&mut buffer) {
                Ok(info) => {
                    let data = &buffer[..info.len as usize];
                    check_frame(args.kind, i, &info, data)?;
                    digest = digest_frame(digest, i, info.flags, data);
                }
                Err(Error::EndOfStream) => break,
                Err(e) => return Err(Failure::Shmline("read", e)),
            }
        }
        i += 1;
    }
    if i != args.count {
        return Err(Failure::Check(format!(
            "read {i} frames, expected {}",
            args.count
        )));
    }
    println!("read {i} frames digest {digest:016x}");
    Ok(())
}

fn mode(args: &Args) -> EventMode {
    if args.counting {
        EventMode::Counting
    } else {
        EventMode::Flag
    }
}

fn wait_event(args: &Args) -> Result<(), Failure> {
    let options = EventOptions {
        mode: mode(args),
        unlink_on_close: true,
        ..Default::default()
    };
    let event = Event::create(&args.name, &options).map_err(Failure::at("create the event"))?;
    println!("ready");
    let waits = if args.counting { args.count } else { 1 };
    for _ in 0..waits {
        event.wait_timeout(PATIENCE).map_err(Failure::at("wait"))?;
    }
    if event.is_set() == args.counting {
        return Err(Failure::Check(format!(
            "after waiting the event is {}",
            if args.counting { "still set" } else { "clear" }
        )));
    }
    println!("waited");
    Ok(())
}

fn set_event(args: &Args) -> Result<(), Failure> {
    let event = Event::open(&args.name).map_err(Failure::at("open the event"))?;
    if event.mode() != mode(args) {
        return Err(Failure::Check(format!(
            "the event's mode is {:?}",
            event.mode()
        )));
    }
    for _ in 0..args.count {
        event.set();
    }
    println!("set {}", args.count);
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(args) = parse(&argv) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match args.command.as_str() {
        "write" => write_frames(&args),
        "read" => read_frames(&args),
        "wait-event" => wait_event(&args),
        _ => set_event(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Shmline(what, e)) => {
            eprintln!("rust peer: {what}: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Check(message)) => {
            eprintln!("rust peer: {message}");
            ExitCode::FAILURE
        }
    }
}
