//! Cross-language test peer for the Python tests (`bindings/python/tests/test_xlang.py`): writes
//! or reads NumPy frames of the schema `<u4` shape (4, 6) through the Rust API, checking every
//! element, sequence number and flag.
//!
//! Frame `i`: element `k` (flat, C order) is `i * 1000003 + k * 7` (mod 2^32); its flags are
//! `i / 100` (its chunk of 100 frames, so that a batch of frames can share them). The Python
//! tests and `bindings/python/tests/peers/xlang_peer.c` compute the same.
//!
//! Usage: `xlang_peer writer|reader STREAM_NAME FRAME_COUNT`. The stream exists already; the
//! writer waits for one reader, writes the frames and closes the stream; the reader reads to the
//! end of the stream and checks it saw exactly FRAME_COUNT frames.

use shmline::{Error, ReaderOptions, Schema, Stream};
use std::process::ExitCode;
use std::time::Duration;

const ELEMENTS: usize = 24;
const PATIENCE: Duration = Duration::from_secs(60);

fn element(i: u64, k: usize) -> u32 {
    (i as u32)
        .wrapping_mul(1_000_003)
        .wrapping_add(k as u32 * 7)
}

fn write(stream: &Stream, count: u64) -> Result<(), Error> {
    let mut writer = stream.writer_with(&shmline::WriterOptions {
        timeout: Some(PATIENCE),
        ..Default::default()
    })?;
    writer.wait_for_readers(1, PATIENCE)?;
    let mut frame = [0u8; ELEMENTS * 4];
    for i in 0..count {
        for (k, bytes) in frame.chunks_exact_mut(4).enumerate() {
            bytes.copy_from_slice(&element(i, k).to_le_bytes());
        }
        writer.write_with_flags(&frame, (i / 100) as u32)?;
    }
    writer.close();
    println!("xlang_peer: wrote {count} frames");
    Ok(())
}

fn read(stream: &Stream, count: u64) -> Result<bool, Error> {
    let options = ReaderOptions {
        require_schema: Some(Schema::new("<u4", &[4, 6])?),
        ..Default::default()
    };
    let mut reader = stream.reader(&options)?;
    println!("xlang_peer: reader ready");
    let mut i = 0;
    loop {
        let frame = match reader.read_timeout(PATIENCE) {
            Ok(frame) => frame,
            Err(Error::EndOfStream) => break,
            Err(e) => return Err(e),
        };
        let expected: Vec<u8> = (0..ELEMENTS)
            .flat_map(|k| element(i, k).to_le_bytes())
            .collect();
        if frame.info.seq != i || frame.info.flags != (i / 100) as u32 || frame.data != expected {
            eprintln!("xlang_peer: frame {i} is wrong: {:?}", frame.info);
            return Ok(false);
        }
        i += 1;
    }
    if i != count {
        eprintln!("xlang_peer: read {i} frames, expected {count}");
        return Ok(false);
    }
    println!("xlang_peer: read {count} frames");
    Ok(true)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(role), Some(name), Some(count)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: xlang_peer writer|reader STREAM_NAME FRAME_COUNT");
        return ExitCode::from(2);
    };
    let Ok(count) = count.parse::<u64>() else {
        eprintln!("xlang_peer: FRAME_COUNT {count:?} is not a number");
        return ExitCode::from(2);
    };
    let result = Stream::open(name).and_then(|stream| match role.as_str() {
        "writer" => write(&stream, count).map(|()| true),
        "reader" => read(&stream, count),
        _ => Ok(false),
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xlang_peer {role}: {e}");
            ExitCode::FAILURE
        }
    }
}
