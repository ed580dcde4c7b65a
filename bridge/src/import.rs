//! `shmline-bridge import`: subscribes to a Zenoh key and writes the frames into a local stream.
//!
//! The network side never waits: a Zenoh callback only queues the messages it gets. Credits keep
//! that queue bounded in lossless mode (the exporter sends at most `window` frames beyond what
//! this importer has written locally), so a local reader that stalls for any length of time
//! stalls the exporter instead of Zenoh's link (which Zenoh would close, losing what it queued).

use crate::export::HEARTBEAT;
use crate::session::{Keys, NetOptions, StreamDescription};
use crate::wire::{self, Data, Status};
use clap::Args;
use shmline::__private::Deadline;
use shmline::{Error, Schema, Stream, StreamOptions, Writer};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zenoh::qos::CongestionControl;
use zenoh::Wait;

/// How long an importer waits after asking for a resend before asking again.
const RESEND_AFTER: Duration = Duration::from_millis(300);
/// How long an importer that acknowledged the end stays to acknowledge repeats of it.
const LINGER: Duration = Duration::from_millis(500);

/// Arguments of `shmline-bridge import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The Zenoh key the exporter publishes on.
    pub key: String,
    /// The local stream to feed (created with the origin's geometry and schema if absent).
    pub stream: String,
    #[command(flatten)]
    pub net: NetOptions,
    /// Bytes of frames this importer accepts beyond what it has written locally (its credit
    /// window; at least one ring's worth of frames).
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub window_bytes: u64,
    /// Ring slots of the local stream if it is created (default: the origin's).
    #[arg(long, value_name = "SLOTS")]
    pub capacity: Option<u32>,
    /// Permission bits (octal) of the local stream if it is created.
    #[arg(long, value_name = "MODE", default_value = "600")]
    pub mode: String,
}

/// What the status thread reports; written by the importing loop.
struct Progress {
    id: u64,
    received: AtomicU64,
    written: AtomicU64,
    window: AtomicU64,
    flags: AtomicU32,
    stop: AtomicBool,
}

impl Progress {
    fn status(&self, extra_flags: u32) -> Status {
        // Relaxed: independent numbers; the exporter only needs each to be recent.
        Status {
            id: self.id,
            received: self.received.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            window: self.window.load(Ordering::Relaxed),
            flags: self.flags.load(Ordering::Relaxed) | extra_flags,
        }
    }
}

/// Runs `import`; returns the process exit code.
pub fn run(args: &ImportArgs) -> Result<i32, String> {
    let keys = Keys::new(&args.key)?;
    let mode = u32::from_str_radix(&args.mode, 8)
        .map_err(|_| format!("--mode {:?}: octal permission bits, e.g. 600", args.mode))?;
    let session = args.net.open()?;
    let id = u64::from(crate::epoch()) << 32 | u64::from(std::process::id());
    let _token = session
        .liveliness()
        .declare_token(format!("{}/{id:x}", keys.alive_importer_prefix))
        .wait()
        .map_err(|e| format!("cannot declare the importer's liveliness token: {e}"))?;

    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let queued = Arc::new(AtomicUsize::new(0));
    let limit_queued = Arc::new(AtomicUsize::new(usize::MAX));
    let _subscriber = {
        let (queued, limit_queued) = (Arc::clone(&queued), Arc::clone(&limit_queued));
        session
            .declare_subscriber(&keys.data)
            .callback(move |sample| {
                let bytes = sample.payload().to_bytes().into_owned();
                // Relaxed: a bound on memory, not a synchronisation; only lossy mode sets it.
                let total = queued.fetch_add(bytes.len(), Ordering::Relaxed) + bytes.len();
                if total > limit_queued.load(Ordering::Relaxed) {
                    // Lossy and too far behind: this batch becomes a gap.
                    queued.fetch_sub(bytes.len(), Ordering::Relaxed);
                    return;
                }
                // The receiver lives as long as the importer; a send error means it is exiting.
                let _ = tx.send(bytes);
            })
            .wait()
            .map_err(|e| format!("cannot subscribe to {}: {e}", keys.data))?
    };

    // A pipeline task joins at once (the runner waits for every task to join), then waits for
    // the exporter.
    let mut task = args
        .net
        .pipeline
        .then(crate::session::join_task)
        .transpose()?;
    let description = describe(&session, &keys)?;
    let (writer, _task) = if let Some(mut task) = task.take() {
        // The pipeline created the stream from its manifest: check it can hold the origin's.
        let writer = task
            .writer(&args.stream)
            .map_err(|e| format!("cannot take the writer {:?}: {e}", args.stream))?;
        check_room(args, &writer.stream(), &description)?;
        (writer, Some(task))
    } else {
        (local_writer(args, &description, mode)?, None)
    };
    let capacity = writer.stream().info().capacity as u64;
    let window = capacity.max(args.window_bytes / u64::from(description.max_frame_size).max(1));
    if args.net.lossy {
        // Relaxed: see the callback.
        limit_queued.store(
            (window * u64::from(description.max_frame_size)) as usize,
            Ordering::Relaxed,
        );
    }
    eprintln!(
        "shmline-bridge import: key {:?} into stream {:?} ({}, window {window} frames)",
        args.key,
        args.stream,
        if args.net.lossy { "lossy" } else { "lossless" }
    );
    let progress = Arc::new(Progress {
        id,
        received: AtomicU64::new(wire::NONE),
        written: AtomicU64::new(wire::NONE),
        window: AtomicU64::new(window),
        flags: AtomicU32::new(0),
        stop: AtomicBool::new(false),
    });
    let ctl_key = format!("{}/{id:x}", keys.ctl_prefix);
    let epoch = crate::epoch();
    let send_status = {
        let session = session.clone();
        let ctl_key = ctl_key.clone();
        move |status: Status| {
            let put = session
                .put(&ctl_key, wire::encode_status(epoch, &status))
                .congestion_control(CongestionControl::Block)
                .wait();
            if let Err(e) = put {
                eprintln!("shmline-bridge import: cannot send status: {e}");
            }
        }
    };
    let status_thread = {
        let progress = Arc::clone(&progress);
        let send_status = send_status.clone();
        std::thread::spawn(move || {
            // Relaxed: a stop request; a late view costs one more status.
            while !progress.stop.load(Ordering::Relaxed) {
                send_status(progress.status(0));
                std::thread::sleep(HEARTBEAT);
            }
        })
    };

    let mut importer = Importer {
        args,
        writer: Some(writer),
        progress: Arc::clone(&progress),
        send_status: &send_status,
        expected: wire::NONE,
        offset: 0,
        last_status_written: 0,
        window,
        last_heard: Instant::now(),
        last_batch: Instant::now(),
        last_resend: None,
    };
    let result = importer.pump(&rx, &queued);
    // Relaxed: see the status thread.
    progress.stop.store(true, Ordering::Relaxed);
    let _ = status_thread.join();
    let outcome = result?;
    let code = match outcome {
        Outcome::Ended => 0,
        Outcome::Dead(why) => {
            eprintln!(
                "shmline-bridge import: {why}; abandoning the writer of stream {:?}, whose \
                 readers drain what arrived and then get WRITER_DEAD",
                args.stream
            );
            // Leave without closing the writer: its process ending is what readers judge.
            std::mem::forget(importer.writer.take());
            crate::EXIT_WRITER_DEAD
        }
    };
    drop(session);
    Ok(code)
}

/// Asks the exporter's queryable for the stream's geometry and schema, waiting for the exporter.
fn describe(session: &zenoh::Session, keys: &Keys) -> Result<StreamDescription, String> {
    let mut told = false;
    loop {
        let replies = session
            .get(&keys.schema)
            .timeout(Duration::from_secs(1))
            .wait()
            .map_err(|e| format!("cannot query {}: {e}", keys.schema))?;
        while let Ok(reply) = replies.recv() {
            if let Ok(sample) = reply.result() {
                let text = String::from_utf8_lossy(&sample.payload().to_bytes()).into_owned();
                return StreamDescription::decode(&text);
            }
        }
        if !told {
            eprintln!(
                "shmline-bridge import: waiting for the exporter of {}",
                keys.schema
            );
            told = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Opens the local stream (checking it can hold the origin's frames) or creates it like the
/// origin, with a writer table so that gaps can be published.
fn local_writer(
    args: &ImportArgs,
    description: &StreamDescription,
    mode: u32,
) -> Result<Writer, String> {
    let stream = match Stream::open(&args.stream) {
        Ok(stream) => {
            check_room(args, &stream, description)?;
            stream
        }
        Err(Error::NotFound(_)) => {
            let schema = match &description.schema {
                Some((dtype, shape)) => Some(
                    Schema::new(dtype, shape)
                        .map_err(|e| format!("the origin's schema is refused here: {e}"))?,
                ),
                None => None,
            };
            let options = StreamOptions {
                capacity: args.capacity.unwrap_or(description.capacity),
                max_frame_size: description.max_frame_size,
                schema,
                checksum: description.checksum,
                max_writers: 2,
                permissions: mode,
                ..Default::default()
            };
            match Stream::create(&args.stream, &options) {
                Ok(stream) => stream,
                // Created by someone else meanwhile (e.g. a reader that got there first).
                Err(Error::AlreadyExists(_)) => Stream::open(&args.stream)
                    .map_err(|e| format!("cannot open stream {:?}: {e}", args.stream))?,
                Err(e) => return Err(format!("cannot create stream {:?}: {e}", args.stream)),
            }
        }
        Err(e) => return Err(format!("cannot open stream {:?}: {e}", args.stream)),
    };
    stream
        .writer()
        .map_err(|e| format!("cannot attach the writer of stream {:?}: {e}", args.stream))
}

/// Refuses a local stream whose frames are smaller than the origin's.
fn check_room(
    args: &ImportArgs,
    stream: &Stream,
    description: &StreamDescription,
) -> Result<(), String> {
    if stream.info().max_frame_size < description.max_frame_size {
        return Err(format!(
            "local stream {:?} holds frames of at most {} bytes, the origin's are up to {}: \
             declare it as large (or let the importer create it)",
            args.stream,
            stream.info().max_frame_size,
            description.max_frame_size
        ));
    }
    Ok(())
}

/// How the import ended.
enum Outcome {
    /// End of stream reached the local stream.
    Ended,
    /// The exporter's side is gone (why): abandon the local writer.
    Dead(String),
}

struct Importer<'a, F: Fn(Status)> {
    args: &'a ImportArgs,
    writer: Option<Writer>,
    progress: Arc<Progress>,
    send_status: &'a F,
    /// Next origin sequence number wanted ([`wire::NONE`] before the first batch).
    expected: u64,
    /// Local sequence number minus origin sequence number (0 unless the local stream had frames).
    offset: u64,
    last_status_written: u64,
    window: u64,
    last_heard: Instant,
    last_batch: Instant,
    last_resend: Option<Instant>,
}

impl<F: Fn(Status)> Importer<'_, F> {
    fn pump(
        &mut self,
        rx: &mpsc::Receiver<Vec<u8>>,
        queued: &AtomicUsize,
    ) -> Result<Outcome, String> {
        let lease = self.args.net.lease();
        loop {
            let message = match rx.recv_timeout(HEARTBEAT / 2) {
                Ok(message) => message,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.last_heard.elapsed() > lease {
                        return Ok(Outcome::Dead(format!(
                            "no word from the exporter for {:.1} s (the lease)",
                            lease.as_secs_f64()
                        )));
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("the Zenoh subscriber stopped".into())
                }
            };
            // Relaxed: see the subscriber callback.
            queued.fetch_sub(message.len(), Ordering::Relaxed);
            self.last_heard = Instant::now();
            let data = match wire::decode_data(&message) {
                Ok((data, _epoch)) => data,
                Err(e) => {
                    eprintln!("shmline-bridge import: ignored a message: {e}");
                    continue;
                }
            };
            match data {
                Data::Batch { first, end, body } => self.batch(first, end, body)?,
                Data::Heartbeat { cursor } => {
                    if self.expected != wire::NONE
                        && self.expected < cursor
                        && self.last_batch.elapsed() > RESEND_AFTER
                    {
                        // The last batches were lost and nothing followed them.
                        self.ask_resend();
                    }
                }
                Data::End { end } => {
                    if self.complete(end)? {
                        drop(self.writer.take());
                        self.acknowledge_end(rx);
                        return Ok(Outcome::Ended);
                    }
                }
                Data::Dead { end } => {
                    if self.complete(end)? {
                        self.acknowledge_end(rx);
                        return Ok(Outcome::Dead("the origin writer died".into()));
                    }
                }
            }
        }
    }

    /// Whether every number below `end` is written (lossy: counting the rest as a gap).
    fn complete(&mut self, end: u64) -> Result<bool, String> {
        if self.expected == wire::NONE {
            if end == 0 {
                return Ok(true);
            }
            self.start(0)?;
        }
        if self.expected >= end {
            return Ok(true);
        }
        if self.args.net.lossy {
            self.gap(end - self.expected)?;
            self.advance(end);
            return Ok(true);
        }
        self.ask_resend();
        Ok(false)
    }

    fn acknowledge_end(&mut self, rx: &mpsc::Receiver<Vec<u8>>) {
        // Relaxed: reported by the status thread too.
        self.progress
            .flags
            .fetch_or(wire::STATUS_END_ACK, Ordering::Relaxed);
        (self.send_status)(self.progress.status(0));
        // Stay while the exporter repeats the end (it has not seen our acknowledgement yet).
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            match rx.recv_timeout(LINGER) {
                Ok(_) => (self.send_status)(self.progress.status(0)),
                Err(_) => return,
            }
        }
    }

    /// The first batch seen starts at `first`: line up the local sequence numbers with it.
    fn start(&mut self, first: u64) -> Result<(), String> {
        let writer = self
            .writer
            .as_mut()
            .expect("writer present while importing");
        let pos = writer.position();
        if pos < first {
            // Frames before the exporter joined: publish them as missed so numbers match.
            writer
                .skip(first - pos, Deadline::Never)
                .map_err(|e| format!("cannot line up stream {:?}: {e}", self.args.stream))?;
        } else if pos > first {
            self.offset = pos - first;
            eprintln!(
                "shmline-bridge import: stream {:?} already holds {pos} frames; local sequence \
                 numbers are the origin's plus {}",
                self.args.stream, self.offset
            );
        }
        self.expected = first;
        self.advance(first);
        Ok(())
    }

    fn batch(&mut self, first: u64, end: u64, body: &[u8]) -> Result<(), String> {
        if self.expected == wire::NONE {
            self.start(first)?;
        }
        if first > self.expected {
            if !self.args.net.lossy {
                self.ask_resend();
                return Ok(());
            }
            self.gap(first - self.expected)?;
            self.advance(first);
        }
        if end <= self.expected {
            return Ok(()); // A resent batch we already have.
        }
        self.last_batch = Instant::now();
        for entry in wire::entries(body) {
            let entry = entry.map_err(|e| format!("from {}: {e}", self.args.key))?;
            if entry.seq < self.expected {
                continue;
            }
            if entry.seq > self.expected {
                // A gap at the origin (a lossy exporter, or numbers its writers skipped).
                self.gap(entry.seq - self.expected)?;
            }
            let writer = self
                .writer
                .as_mut()
                .expect("writer present while importing");
            writer
                .write_at(
                    entry.payload,
                    entry.flags,
                    entry.timestamp_ns,
                    Deadline::Never,
                )
                .map_err(|e| format!("writing stream {:?}: {e}", self.args.stream))?;
            self.advance(entry.seq + 1);
        }
        if end > self.expected {
            self.gap(end - self.expected)?;
            self.advance(end);
        }
        Ok(())
    }

    fn gap(&mut self, count: u64) -> Result<(), String> {
        let writer = self
            .writer
            .as_mut()
            .expect("writer present while importing");
        writer
            .skip(count, Deadline::Never)
            .map(|_| ())
            .map_err(|e| format!("cannot publish a gap in stream {:?}: {e}", self.args.stream))
    }

    /// Everything below origin number `next` is written locally.
    fn advance(&mut self, next: u64) {
        self.expected = next;
        // Relaxed: reported numbers (see Progress::status).
        self.progress.received.store(next, Ordering::Relaxed);
        self.progress.written.store(next, Ordering::Relaxed);
        if next >= self.last_status_written + self.window / 4 {
            // Grant credits as soon as a quarter of the window is free again.
            self.last_status_written = next;
            (self.send_status)(self.progress.status(0));
        }
    }

    fn ask_resend(&mut self) {
        if self.last_resend.is_some_and(|t| t.elapsed() < RESEND_AFTER) {
            return;
        }
        self.last_resend = Some(Instant::now());
        (self.send_status)(self.progress.status(wire::STATUS_RESEND));
    }
}
