//! Streams: a ring of fixed-size slots in shared memory with one writer and up to N readers.
//!
//! - [`Stream`] creates, opens and describes the segment;
//! - [`Writer`] publishes frames (copy or zero-copy), waiting when the slowest lossless reader is a
//!   full ring behind;
//! - [`Reader`] consumes frames in order (copy or zero-copy); a lossy reader never holds the writer
//!   back and is told how many frames it missed.
//!
//! The atomic protocol between them lives in [`protocol`] and is documented in `docs/LAYOUT.md`.

mod group;
mod lock;
mod multi;
mod peers;
mod policy;
pub mod protocol;
mod reader;
mod relay;
mod stale;
mod stats;
mod tables;
mod writer;

pub(crate) use group::validate_name as validate_group_name;
pub use policy::Backpressure;
pub use reader::{FrameInfo, OwnedFrame, ReadSlot, Reader, ReaderOptions, StartPosition};
pub use stats::{GroupStats, ReaderStats, StreamStats, WriterState, WriterStats};
pub use writer::{WriteSlot, Writer, WriterOptions};

use crate::error::{Error, Result};
use crate::layout::{
    FrameHeader, GroupRecord, ReaderEntry, StreamGeometry, StreamHeader, WriterEntry, DTYPE_LEN,
    LAYOUT_VERSION, MAX_NDIM, READERS_OFFSET, SEQ_EMPTY, STREAM_FLAGS_KNOWN, STREAM_FLAG_CHECKSUM,
    STREAM_FLAG_SCHEMA, STREAM_MAGIC,
};
use crate::liveness::ProcessId;
use crate::schema::Schema;
use crate::shm::{Segment, SegmentKind};
use crate::sync::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Wakes every reader asleep on the stream's data futex: bumps the futex word, then wakes all its
/// sleepers. Out of line and cold: publishing, reading and releasing call it only when a sleeper
/// announced itself, and keeping it out of their inlined fast paths keeps those short (see
/// `Writer::publish`).
#[cold]
#[inline(never)]
pub(crate) fn wake_all_readers(hdr: &StreamHeader) {
    protocol::wake_readers(hdr);
    crate::wait::futex_wake(&hdr.data_futex, i32::MAX);
}

/// How long `open` waits for a creator that is still initialising the segment.
const INIT_WAIT: Duration = Duration::from_secs(2);

/// Largest `head` (frames published) taken as real; a larger one in shared memory is corrupt.
/// 2^62 frames is over a century at a billion frames a second, and the margin keeps every
/// `position + capacity` sum far from overflowing.
pub(crate) const MAX_HEAD: u64 = u64::MAX / 4;

/// Parameters of a new stream.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Number of slots in the ring; a power of two (default 64).
    pub capacity: u32,
    /// Largest frame in bytes. 0 (the default) takes the frame size of `schema`.
    pub max_frame_size: u32,
    /// Most readers that may be attached at once (default 8).
    pub max_readers: u32,
    /// Most writers that may be attached at once (default 1). With more than one, any number of
    /// writer processes up to this limit attach and write concurrently; frames are published in
    /// the order writers claimed their sequence numbers, and every reader sees each frame once.
    pub max_writers: u32,
    /// Most reader groups at once (default 4; 0 allows none). A reader group is a set of readers
    /// that share the work: each frame goes to exactly one member (see
    /// [`ReaderOptions::group`]).
    pub max_groups: u32,
    /// Optional dtype and shape of every frame.
    pub schema: Option<Schema>,
    /// Store a CRC32C of every frame and check it on read (default off).
    pub checksum: bool,
    /// Permission bits of the segment (default 0o600: owner only).
    pub permissions: u32,
    /// Remove the segment's name when this handle and everything opened from it are closed.
    pub unlink_on_close: bool,
    /// What writers do when the ring is full (default [`Backpressure::Block`]).
    pub backpressure: Backpressure,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            capacity: 64,
            max_frame_size: 0,
            max_readers: 8,
            max_writers: 1,
            max_groups: 4,
            schema: None,
            checksum: false,
            permissions: 0o600,
            unlink_on_close: false,
            backpressure: Backpressure::Block,
        }
    }
}

/// Fixed facts about a stream, read once when it was created or opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Stream name.
    pub name: String,
    /// Number of slots.
    pub capacity: u32,
    /// Largest frame in bytes.
    pub max_frame_size: u32,
    /// Bytes per slot (frame header + payload, rounded up).
    pub slot_size: u32,
    /// Most readers at once.
    pub max_readers: u32,
    /// Most writers at once (1: a single-writer stream).
    pub max_writers: u32,
    /// Most reader groups at once.
    pub max_groups: u32,
    /// Whether frames carry a CRC32C.
    pub checksum: bool,
    /// Frame schema, if any.
    pub schema: Option<Schema>,
    /// Total bytes of shared memory.
    pub segment_size: u64,
    /// The process that created the stream.
    pub creator: ProcessId,
    /// What writers do when the ring is full.
    pub backpressure: Backpressure,
}

/// A stream segment mapped into this process. Cheap to clone; the mapping lives until the last
/// [`Stream`], [`Writer`] and [`Reader`] made from it are dropped.
#[derive(Clone)]
pub struct Stream {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("info", &self.shared.info)
            .finish()
    }
}

/// What writers and readers of one mapping share: the segment and its validated geometry.
pub(crate) struct Shared {
    seg: Segment,
    pub(crate) geo: StreamGeometry,
    pub(crate) info: StreamInfo,
}

impl Shared {
    /// The stream header.
    #[inline]
    pub(crate) fn header(&self) -> &StreamHeader {
        // The header was checked to fit when the segment was created or opened.
        self.seg.at(0).expect("header validated at open")
    }

    /// Whether the stream accepts more than one writer.
    #[inline]
    pub(crate) fn multi_writer(&self) -> bool {
        self.geo.writer_entries > 0
    }

    /// Writer table entry `index` (multi-writer streams, `index < max_writers`).
    #[inline]
    pub(crate) fn writer_entry(&self, index: u32) -> &WriterEntry {
        self.seg
            .at(self.geo.writer_offset(index))
            .expect("writer table validated at open")
    }

    /// Group record `index` (`index < max_groups`).
    #[inline]
    pub(crate) fn group(&self, index: u32) -> &GroupRecord {
        self.seg
            .at(self.geo.group_offset(index))
            .expect("group table validated at open")
    }

    /// Reader table entry `index` (`index < max_readers`).
    #[inline]
    pub(crate) fn entry(&self, index: u32) -> &ReaderEntry {
        self.seg
            .at(self.geo.reader_offset(index))
            .expect("reader table validated at open")
    }

    /// The slot holding sequence number `seq`: its header and a pointer to its payload
    /// (`max_frame` bytes).
    #[inline]
    pub(crate) fn slot(&self, seq: u64) -> (&FrameHeader, *mut u8) {
        let offset = self.geo.slot_offset(seq);
        let header: &FrameHeader = self.seg.at(offset).expect("slots validated at open");
        debug_assert!(
            offset + crate::layout::FRAME_HEADER_SIZE + self.geo.max_frame as usize
                <= self.seg.len()
        );
        // SAFETY: the slot region [slots_offset, segment_size) was checked against the mapping
        // length at open, and every slot holds FRAME_HEADER_SIZE + max_frame bytes, so the payload
        // pointer and the max_frame bytes after it lie inside the mapping.
        let payload = unsafe {
            self.seg
                .base()
                .add(offset + crate::layout::FRAME_HEADER_SIZE)
        };
        (header, payload)
    }

    pub(crate) fn name(&self) -> &str {
        self.seg.name()
    }

    pub(crate) fn checksum(&self) -> bool {
        self.info.checksum
    }
}

impl Stream {
    /// Creates a new stream segment, exclusively: if the name exists, fails with
    /// [`Error::AlreadyExists`] saying which live process uses it, or that nobody does and
    /// [`Stream::remove_stale`] recovers it (create never takes a name over by itself).
    ///
    /// ```
    /// use shmline::{Schema, Stream, StreamOptions};
    /// # let name = format!("doc-create-{}", std::process::id());
    /// let stream = Stream::create(&name, &StreamOptions {
    ///     schema: Some(Schema::new("<f4", &[1024])?),
    ///     unlink_on_close: true,
    ///     ..Default::default()
    /// })?;
    /// assert_eq!(stream.info().max_frame_size, 4096);
    /// # Ok::<(), shmline::Error>(())
    /// ```
    pub fn create(name: &str, options: &StreamOptions) -> Result<Stream> {
        crate::shm::validate_name(name)?;
        let max_frame = match (&options.schema, options.max_frame_size) {
            (None, 0) => {
                return Err(Error::InvalidArgument(
                    "give the stream a max_frame_size or a schema (dtype and shape)".into(),
                ))
            }
            (Some(schema), 0) => schema.frame_size() as u32,
            (Some(schema), n) if (n as u64) < schema.frame_size() => {
                return Err(Error::InvalidArgument(format!(
                    "max_frame_size {n} is smaller than a frame of schema {schema} ({} bytes)",
                    schema.frame_size()
                )))
            }
            (_, n) => n,
        };
        let geo = StreamGeometry::new(
            options.capacity,
            max_frame,
            options.max_readers,
            options.max_writers,
            options.max_groups,
        )
        .map_err(Error::InvalidArgument)?;
        let seg = Segment::create(
            SegmentKind::Stream,
            name,
            geo.segment_size,
            options.permissions,
        )
        .map_err(|e| crate::stale::explain_exists(SegmentKind::Stream, name, e, Stream::usage))?;
        let me = ProcessId::current();
        let hdr: &StreamHeader = seg
            .at(0)
            .ok_or_else(|| Error::InvalidArgument("segment too small for a header".into()))?;
        let mut flags = 0;
        if options.checksum {
            flags |= STREAM_FLAG_CHECKSUM;
        }
        // Relaxed stores: nobody may read these fields before `magic` is published with Release.
        let r = Ordering::Relaxed;
        hdr.layout_version.store(LAYOUT_VERSION, r);
        hdr.header_size.store(READERS_OFFSET as u32, r);
        hdr.segment_size.store(geo.segment_size, r);
        hdr.capacity.store(geo.capacity, r);
        hdr.slot_size.store(geo.slot_size, r);
        hdr.max_frame.store(geo.max_frame, r);
        hdr.max_readers.store(geo.max_readers, r);
        hdr.max_writers.store(geo.max_writers, r);
        hdr.writers_offset.store(geo.writers_offset, r);
        hdr.max_groups.store(geo.max_groups, r);
        hdr.groups_offset.store(geo.groups_offset, r);
        hdr.readers_offset.store(READERS_OFFSET, r);
        hdr.slots_offset.store(geo.slots_offset, r);
        hdr.creator_pid.store(me.pid, r);
        hdr.creator_start_time.store(me.start_time, r);
        hdr.created_unix_ns.store(crate::wait::realtime_ns(), r);
        hdr.policy.store(options.backpressure as u32, r);
        if let Some(schema) = &options.schema {
            flags |= STREAM_FLAG_SCHEMA;
            for (dst, src) in hdr.dtype.iter().zip(schema.dtype().bytes()) {
                dst.store(src, r);
            }
            hdr.ndim.store(schema.shape().len() as u32, r);
            for (dst, &src) in hdr.shape.iter().zip(schema.shape()) {
                dst.store(src, r);
            }
        }
        hdr.flags.store(flags, r);
        let shared = Shared {
            geo,
            info: StreamInfo {
                name: name.to_owned(),
                capacity: geo.capacity,
                max_frame_size: geo.max_frame,
                slot_size: geo.slot_size,
                max_readers: geo.max_readers,
                max_writers: geo.max_writers,
                max_groups: geo.max_groups,
                checksum: options.checksum,
                schema: options.schema.clone(),
                segment_size: geo.segment_size,
                creator: me,
                backpressure: options.backpressure,
            },
            seg,
        };
        for seq in 0..geo.capacity as u64 {
            shared.slot(seq).0.seq.store(SEQ_EMPTY, r);
        }
        // Release: publishes every field above to any process that loads `magic` with Acquire.
        shared.header().magic.store(STREAM_MAGIC, Ordering::Release);
        let mut shared = shared;
        shared.seg.set_unlink_on_drop(options.unlink_on_close);
        Ok(Stream {
            shared: Arc::new(shared),
        })
    }

    /// Opens an existing stream, checking its magic, layout version and every size against the
    /// real size of the shared-memory object.
    pub fn open(name: &str) -> Result<Stream> {
        let seg = Segment::open(SegmentKind::Stream, name, READERS_OFFSET, INIT_WAIT)?;
        let shared = validate(seg)?;
        Ok(Stream {
            shared: Arc::new(shared),
        })
    }

    /// Removes a stream's name from the system. Processes that have it open keep using it.
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink(SegmentKind::Stream, name)
    }

    /// Names of the streams that exist on this machine.
    pub fn list() -> Result<Vec<String>> {
        crate::shm::list(SegmentKind::Stream)
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    /// Fixed facts about the stream.
    pub fn info(&self) -> &StreamInfo {
        &self.shared.info
    }

    /// The frame schema, if the stream has one.
    pub fn schema(&self) -> Option<&Schema> {
        self.shared.info.schema.as_ref()
    }

    /// A snapshot of the counters in shared memory. Reads only; never disturbs writer or readers.
    pub fn stats(&self) -> StreamStats {
        stats::snapshot(&self.shared)
    }

    /// Attaches a writer with default options (see [`Stream::writer_with`]).
    pub fn writer(&self) -> Result<Writer> {
        Writer::attach(self.shared.clone(), &WriterOptions::default())
    }

    /// Attaches a writer: the stream's single writer, or one of up to `max_writers` of a
    /// multi-writer stream.
    ///
    /// Errors: [`Error::WriterExists`] for a second writer of a single-writer stream (also when
    /// the first died); [`Error::TooManyWriters`] beyond `max_writers`; [`Error::WrongState`] once
    /// the stream has ended: its writer (or last writer) closed it, or every writer of a
    /// multi-writer stream died. An ended stream stays ended: readers told
    /// [`Error::EndOfStream`] or [`Error::WriterDead`] are never handed frames again.
    pub fn writer_with(&self, options: &WriterOptions) -> Result<Writer> {
        Writer::attach(self.shared.clone(), options)
    }

    /// Ends the stream for a writer that never attached or died without closing (see
    /// `writer::close_abandoned`); used by the pipeline runner when a writer task has exited.
    /// Returns true if it closed the stream.
    pub(crate) fn close_abandoned_writer(&self, exited: Option<u32>) -> bool {
        peers::close_abandoned(&self.shared, exited)
    }

    /// Attaches a reader.
    pub fn reader(&self, options: &ReaderOptions) -> Result<Reader> {
        Reader::attach(self.shared.clone(), options)
    }
}

/// Checks an opened segment's header against the contract and the mapping's real size.
fn validate(seg: Segment) -> Result<Shared> {
    let name = seg.name().to_owned();
    let hdr: &StreamHeader = seg
        .at(0)
        .ok_or_else(|| Error::NotShmline(format!("stream {name:?} is too small")))?;
    let started = Instant::now();
    // Acquire: pairs with the creator's Release store of `magic`.
    let magic = loop {
        let magic = hdr.magic.load(Ordering::Acquire);
        if magic != 0 || started.elapsed() >= INIT_WAIT {
            break magic;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if magic != STREAM_MAGIC {
        let shown = String::from_utf8_lossy(&magic.to_le_bytes()).into_owned();
        return Err(Error::NotShmline(format!(
            "stream {name:?} is not a shmline stream (magic {shown:?}, expected \"SHMLSTRM\")"
        )));
    }
    let version = hdr.layout_version.load(Ordering::Relaxed);
    if version != LAYOUT_VERSION {
        return Err(Error::VersionMismatch {
            name: format!("stream {name:?}"),
            found: version,
            expected: LAYOUT_VERSION,
        });
    }
    let bad = |field: &str, value: u64, expected: String| {
        Error::corrupt(format!(
            "stream {name:?}: header field {field} is {value}, expected {expected}"
        ))
    };
    let r = Ordering::Relaxed;
    let header_size = hdr.header_size.load(r) as u64;
    if header_size != READERS_OFFSET {
        return Err(bad("header_size", header_size, READERS_OFFSET.to_string()));
    }
    let readers_offset = hdr.readers_offset.load(r);
    if readers_offset != READERS_OFFSET {
        return Err(bad(
            "readers_offset",
            readers_offset,
            READERS_OFFSET.to_string(),
        ));
    }
    let geo = StreamGeometry::new(
        hdr.capacity.load(r),
        hdr.max_frame.load(r),
        hdr.max_readers.load(r),
        hdr.max_writers.load(r),
        hdr.max_groups.load(r),
    )
    .map_err(|why| Error::corrupt(format!("stream {name:?}: {why}")))?;
    let slot_size = hdr.slot_size.load(r);
    if slot_size != geo.slot_size {
        return Err(bad(
            "slot_size",
            slot_size as u64,
            geo.slot_size.to_string(),
        ));
    }
    let writers_offset = hdr.writers_offset.load(r);
    if writers_offset != geo.writers_offset {
        return Err(bad(
            "writers_offset",
            writers_offset,
            geo.writers_offset.to_string(),
        ));
    }
    let groups_offset = hdr.groups_offset.load(r);
    if groups_offset != geo.groups_offset {
        return Err(bad(
            "groups_offset",
            groups_offset,
            geo.groups_offset.to_string(),
        ));
    }
    let slots_offset = hdr.slots_offset.load(r);
    if slots_offset != geo.slots_offset {
        return Err(bad(
            "slots_offset",
            slots_offset,
            geo.slots_offset.to_string(),
        ));
    }
    let segment_size = hdr.segment_size.load(r);
    if segment_size != geo.segment_size {
        return Err(bad(
            "segment_size",
            segment_size,
            geo.segment_size.to_string(),
        ));
    }
    if seg.len() as u64 != segment_size {
        return Err(bad(
            "segment_size",
            segment_size,
            format!("the object's real size, {} bytes", seg.len()),
        ));
    }
    let flags = hdr.flags.load(r);
    if flags & !STREAM_FLAGS_KNOWN != 0 {
        return Err(bad(
            "flags",
            flags as u64,
            format!("only bits {STREAM_FLAGS_KNOWN:#x}"),
        ));
    }
    let policy = hdr.policy.load(r);
    let backpressure = Backpressure::from_u32(policy).ok_or_else(|| {
        bad(
            "policy",
            policy as u64,
            "0 (block), 1 (fail), 2 (drop_newest) or 3 (drop_oldest)".into(),
        )
    })?;
    let schema = if flags & STREAM_FLAG_SCHEMA != 0 {
        let schema = read_schema(hdr)
            .map_err(|why| Error::corrupt(format!("stream {name:?}: schema block: {why}")))?;
        if schema.frame_size() > geo.max_frame as u64 {
            return Err(Error::corrupt(format!(
                "stream {name:?}: schema {schema} is larger than max_frame {}",
                geo.max_frame
            )));
        }
        Some(schema)
    } else {
        None
    };
    let creator = ProcessId::load(&hdr.creator_pid, &hdr.creator_start_time, r);
    Ok(Shared {
        geo,
        info: StreamInfo {
            name,
            capacity: geo.capacity,
            max_frame_size: geo.max_frame,
            slot_size: geo.slot_size,
            max_readers: geo.max_readers,
            max_writers: geo.max_writers,
            max_groups: geo.max_groups,
            checksum: flags & STREAM_FLAG_CHECKSUM != 0,
            schema,
            segment_size,
            creator,
            backpressure,
        },
        seg,
    })
}

fn read_schema(hdr: &StreamHeader) -> std::result::Result<Schema, String> {
    let bytes: Vec<u8> = hdr
        .dtype
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .take_while(|&b| b != 0)
        .collect();
    if bytes.len() >= DTYPE_LEN {
        return Err("dtype is not NUL-terminated".into());
    }
    let dtype = String::from_utf8(bytes).map_err(|_| "dtype is not ASCII".to_string())?;
    let ndim = hdr.ndim.load(Ordering::Relaxed) as usize;
    if ndim > MAX_NDIM {
        return Err(format!("ndim {ndim} is more than {MAX_NDIM}"));
    }
    let shape: Vec<u64> = hdr.shape[..ndim]
        .iter()
        .map(|d| d.load(Ordering::Relaxed))
        .collect();
    Schema::new(&dtype, &shape).map_err(|e| e.to_string())
}
