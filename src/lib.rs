//! shmline moves frames of data between processes on one machine through shared memory, whatever
//! language each process is written in.
//!
//! The four concepts, kept from PYTHUSA's factory line:
//! - a [`Stream`] is a conveyor belt: a ring of fixed-size slots in shared memory with one
//!   [`Writer`] and up to N [`Reader`]s, each of which sees every frame in order;
//! - an [`Event`] is a switch: a process-shared flag (or counter) tasks set, clear and wait on;
//! - tasks are the machines (processes in any language) and a [`pipeline::Pipeline`] the factory:
//!   a named set of streams, events and tasks that a runner starts, watches and stops, and that
//!   each task joins by name ([`pipeline::Task::join`]).
//!
//! Every shared-memory byte is described in `docs/LAYOUT.md`; the C ABI in `include/shmline.h`
//! is the contract every other language binding goes through.
//!
//! ```
//! use shmline::{Stream, StreamOptions, ReaderOptions};
//! # let name = format!("doc-lib-{}", std::process::id());
//! let stream = Stream::create(&name, &StreamOptions { max_frame_size: 64, unlink_on_close: true, ..Default::default() })?;
//! let mut reader = stream.reader(&ReaderOptions::default())?;
//! let mut writer = stream.writer()?;
//! writer.write(b"hello")?;
//! assert_eq!(reader.read()?.data, b"hello");
//! # Ok::<(), shmline::Error>(())
//! ```

pub mod error;
pub mod event;
pub mod ffi;
pub mod layout;
pub mod liveness;
pub mod pipeline;
pub mod ring;
pub mod schema;
pub mod shm;
pub mod stale;
pub mod sync;
pub mod wait;
pub mod waitset;

pub use error::{Error, Result, Status};
pub use event::{Event, EventMode, EventOptions};
pub use layout::LAYOUT_VERSION;
pub use ring::{
    Backpressure, FrameInfo, GroupStats, OwnedFrame, ReadSlot, Reader, ReaderOptions, ReaderStats,
    StartPosition, Stream, StreamInfo, StreamOptions, StreamStats, WriteSlot, Writer,
    WriterOptions, WriterState,
};
pub use schema::Schema;
pub use wait::WaitStrategy;
pub use waitset::WaitSet;

/// Version of this library (`major.minor.patch`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
