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

// A dependency the library does not use fails the build. Set here rather than in Cargo.toml's
// [lints], which would apply it to every test binary too (each sees every dev-dependency, and
// most use few); not for the unit tests, for the same reason.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

// The public API is what this file re-exports, the `pipeline` module, and the C ABI (`ffi`, whose
// exports the cdylib and the static archive carry); every other module is internal.
mod error;
mod event;
// The C boundary (owned by its own files): its handle types are opaque to C and hold the Rust
// handles, and each export dereferences its C arguments in the one unsafe step that the caller's
// contract covers.
#[allow(missing_debug_implementations, clippy::multiple_unsafe_ops_per_block)]
pub mod ffi;
mod layout;
mod liveness;
pub mod pipeline;
mod ring;
mod schema;
mod shm;
mod stale;
mod sync;
mod wait;
mod waitset;

pub use error::{Error, Result, Status};
pub use event::{Event, EventMode, EventOptions};
pub use layout::LAYOUT_VERSION;
pub use liveness::ProcessId;
pub use ring::{
    Backpressure, FrameInfo, GroupStats, OwnedFrame, ReadSlot, Reader, ReaderOptions, ReaderStats,
    StartPosition, Stream, StreamInfo, StreamOptions, StreamStats, WriteSlot, Writer,
    WriterOptions, WriterState, WriterStats,
};
pub use schema::Schema;
pub use shm::SegmentKind;
pub use stale::Usage;
pub use wait::{monotonic_ns, WaitStrategy};
pub use waitset::WaitSet;

/// Internals that the `shmline` command (`cli/`), the tests and the benchmarks use: the byte
/// layout, the ring protocol, segment handling. **Not part of the public API and not covered by
/// semantic versioning**: anything here may change or go in any release.
#[doc(hidden)]
pub mod __private {
    /// The byte layout of streams and events (`docs/LAYOUT.md`).
    pub mod layout {
        pub use crate::layout::*;
    }
    /// The byte layout of a pipeline registry (`docs/LAYOUT.md` section 9).
    pub mod pipeline_layout {
        pub use crate::pipeline::layout::*;
    }
    /// Segment names, files and mappings under `/dev/shm`.
    pub mod shm {
        pub use crate::shm::*;
    }
    /// The atomics of the protocol (loom's under `--cfg loom`).
    pub mod sync {
        pub use crate::sync::*;
    }
    pub use crate::ring::protocol;
    pub use crate::wait::{futex_wait, futex_wake, Deadline};
}

/// Version of this library (`major.minor.patch`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
