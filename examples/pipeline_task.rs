//! A task program for `examples/pipeline.toml`: PYTHUSA's quick start (source -> scale -> sink)
//! as three processes of one pipeline.
//!
//! ```text
//! cargo build --examples && cargo run --bin shmline -- run examples/pipeline.toml
//! ```
//!
//! The runner starts this program three times, with the role as its argument and the pipeline
//! and task names in `SHMLINE_PIPELINE` / `SHMLINE_TASK`. Each frame is 8 `f32`s.

use shmline::pipeline::Task;
use shmline::Error;

fn frame(i: u64) -> [f32; 8] {
    std::array::from_fn(|k| (i * 8 + k as u64) as f32)
}

fn to_bytes(values: &[f32; 8]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn from_bytes(bytes: &[u8]) -> [f32; 8] {
    std::array::from_fn(|k| f32::from_le_bytes(bytes[k * 4..k * 4 + 4].try_into().unwrap()))
}

fn main() -> Result<(), Error> {
    let role = std::env::args().nth(1).unwrap_or_default();
    let frames: u64 = std::env::var("FRAMES").map_or(100_000, |v| v.parse().unwrap());
    // Join: attaches this task's readers and writers by parameter name, then waits until every
    // task of the pipeline has joined, so nothing written is lost.
    let mut task = Task::join()?;
    match role.as_str() {
        "source" => {
            let mut samples = task.writer("samples")?;
            for i in 0..frames {
                samples.write(&to_bytes(&frame(i)))?;
            }
            // Dropping the writer ends the stream: the readers drain it, then see end of stream.
        }
        "scale" => {
            let mut samples = task.reader("samples")?;
            let mut doubled = task.writer("doubled")?;
            loop {
                match samples.read() {
                    Ok(f) => doubled.write(&to_bytes(&from_bytes(&f.data).map(|v| v * 2.0)))?,
                    Err(Error::EndOfStream) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        "sink" => {
            let mut doubled = task.reader("doubled")?;
            let mut count = 0u64;
            loop {
                match doubled.read() {
                    Ok(f) => {
                        let expected = frame(count).map(|v| v * 2.0);
                        if from_bytes(&f.data) != expected {
                            eprintln!("sink: frame {count} is wrong");
                            std::process::exit(1);
                        }
                        count += 1;
                    }
                    Err(Error::EndOfStream) => break,
                    Err(e) => return Err(e),
                }
            }
            println!("sink: {count} frames, all correct");
        }
        other => {
            eprintln!("pipeline_task: unknown role {other:?} (source, scale or sink)");
            std::process::exit(2);
        }
    }
    Ok(())
}
