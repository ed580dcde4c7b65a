//! `shmline-bridge export`: reads a local stream and publishes its frames on a Zenoh key.
//!
//! Lossless (the default): frames go out only as far as every importer's credits allow, so a
//! slow importer (or its slow readers) holds back the exporter's reader and through it the origin
//! writer, exactly as a slow local reader would. Every batch stays in a replay window until every
//! importer has acknowledged it, so an importer that lost batches (a link that dropped and came
//! back) asks for them again and gets them without a gap or a duplicate.
//!
//! Lossy (`--lossy`): the exporter reads as a lossy reader and publishes without waiting; frames
//! lost anywhere on the way become gaps that reach the importer's readers as `missed`.

use crate::session::{Keys, NetOptions, StreamDescription};
use crate::wire::{self, BatchBuilder, Data, Entry, Status};
use clap::Args;
use shmline::{Error, FrameInfo, ReaderOptions, StartPosition, Stream};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use zenoh::qos::CongestionControl;
use zenoh::sample::SampleKind;
use zenoh::Wait;

/// How often an idle exporter says it is alive, and how often it repeats an unacknowledged end.
pub const HEARTBEAT: Duration = Duration::from_millis(100);
/// Shortest interval between two resends to the same importer.
const RESEND_INTERVAL: Duration = Duration::from_millis(200);
/// How long a lossy exporter waits for importers to acknowledge the end.
const LOSSY_END_WAIT: Duration = Duration::from_secs(5);

/// Arguments of `shmline-bridge export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The local stream to publish.
    pub stream: String,
    /// The Zenoh key to publish it on (no wildcards), e.g. lab/camera1.
    #[arg(long)]
    pub key: String,
    #[command(flatten)]
    pub net: NetOptions,
    /// Largest Zenoh message in bytes: small frames are sent many per message up to this size.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub batch_bytes: usize,
    /// Lossless: send nothing until this many importers have joined (later ones join where the
    /// stream is then).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub wait_importers: usize,
}

/// What the exporter knows about one importer.
#[derive(Debug)]
struct Peer {
    status: Status,
    /// Its liveliness token is present.
    alive: bool,
    last_resend: Option<Instant>,
    resend_wanted: bool,
}

/// State shared between the Zenoh callbacks and the exporting loop.
#[derive(Default)]
struct Peers {
    map: Mutex<HashMap<u64, Peer>>,
    changed: Condvar,
}

/// One batch sent and not yet acknowledged by every importer.
struct Sent {
    end: u64,
    message: zenoh::bytes::ZBytes,
}

/// Why the export ended.
enum Ending {
    End,
    Dead,
}

/// Runs `export`; returns the process exit code.
pub fn run(args: &ExportArgs) -> Result<i32, String> {
    let keys = Keys::new(&args.key)?;
    // A pipeline task's reader joined with the task, before any frame was written.
    let (reader, _task) = if args.net.pipeline {
        let mut task = crate::session::join_task()?;
        let reader = task
            .reader(&args.stream)
            .map_err(|e| format!("cannot take the reader {:?}: {e}", args.stream))?;
        (reader, Some(task))
    } else {
        let stream = Stream::open(&args.stream)
            .map_err(|e| format!("cannot open stream {:?} to export it: {e}", args.stream))?;
        let options = ReaderOptions {
            start: StartPosition::Oldest,
            lossy: args.net.lossy,
            ..Default::default()
        };
        let reader = stream
            .reader(&options)
            .map_err(|e| format!("cannot attach a reader to stream {:?}: {e}", args.stream))?;
        (reader, None)
    };
    let description = StreamDescription::of(reader.stream().info());
    let session = args.net.open()?;
    let epoch = crate::epoch();
    let peers = Arc::new(Peers::default());

    let _schema = {
        let (reply_key, text) = (keys.schema.clone(), description.encode());
        session
            .declare_queryable(&keys.schema)
            .callback(move |query| {
                if let Err(e) = query.reply(&reply_key, text.clone()).wait() {
                    eprintln!("shmline-bridge export: cannot answer a schema query: {e}");
                }
            })
            .wait()
            .map_err(|e| format!("cannot declare the schema queryable: {e}"))?
    };
    let _control = {
        let peers = Arc::clone(&peers);
        session
            .declare_subscriber(format!("{}/*", keys.ctl_prefix))
            .callback(
                move |sample| match wire::decode_status(&sample.payload().to_bytes()) {
                    Ok(status) => peers.update(status),
                    Err(e) => eprintln!("shmline-bridge export: ignored a control message: {e}"),
                },
            )
            .wait()
            .map_err(|e| format!("cannot subscribe to importers: {e}"))?
    };
    let _liveliness = {
        let peers = Arc::clone(&peers);
        session
            .liveliness()
            .declare_subscriber(format!("{}/*", keys.alive_importer_prefix))
            .callback(move |sample| {
                let id = sample.key_expr().as_str().rsplit('/').next().unwrap_or("");
                if let Ok(id) = u64::from_str_radix(id, 16) {
                    peers.set_alive(id, sample.kind() == SampleKind::Put);
                }
            })
            .wait()
            .map_err(|e| format!("cannot watch importers' liveliness: {e}"))?
    };
    let _token = session
        .liveliness()
        .declare_token(&keys.alive_exporter)
        .wait()
        .map_err(|e| format!("cannot declare the exporter's liveliness token: {e}"))?;
    let congestion = if args.net.lossy {
        CongestionControl::Drop
    } else {
        CongestionControl::Block
    };
    let publisher = session
        .declare_publisher(keys.data.clone())
        .congestion_control(congestion)
        .wait()
        .map_err(|e| format!("cannot declare the publisher on {}: {e}", keys.data))?;
    // Marks (heartbeat, end, death) are never dropped, even in lossy mode.
    let marks = session
        .declare_publisher(keys.data.clone())
        .congestion_control(CongestionControl::Block)
        .wait()
        .map_err(|e| format!("cannot declare the publisher on {}: {e}", keys.data))?;
    eprintln!(
        "shmline-bridge export: stream {:?} on key {:?} ({})",
        args.stream,
        args.key,
        if args.net.lossy { "lossy" } else { "lossless" }
    );

    let mut exporter = Exporter {
        args,
        reader,
        peers,
        publisher,
        marks,
        epoch,
        window: VecDeque::new(),
        last_sent: Instant::now(),
        buf: vec![0; args.batch_bytes.max(description.max_frame_size as usize)],
        infos: vec![FrameInfo::default(); 8192],
    };
    let ending = exporter.pump()?;
    let code = exporter.finish(ending)?;
    drop(exporter);
    session
        .close()
        .wait()
        .map_err(|e| format!("cannot close the Zenoh session: {e}"))?;
    Ok(code)
}

impl Peers {
    fn update(&self, status: Status) {
        let mut map = self.map.lock().expect("peers lock");
        let peer = map.entry(status.id).or_insert_with(|| {
            eprintln!("shmline-bridge export: importer {:x} joined", status.id);
            Peer {
                status,
                alive: true,
                last_resend: None,
                resend_wanted: false,
            }
        });
        peer.status = status;
        peer.alive = true;
        if status.flags & wire::STATUS_RESEND != 0 {
            peer.resend_wanted = true;
        }
        self.changed.notify_all();
    }

    fn set_alive(&self, id: u64, alive: bool) {
        let mut map = self.map.lock().expect("peers lock");
        if let Some(peer) = map.get_mut(&id) {
            if peer.alive != alive {
                eprintln!(
                    "shmline-bridge export: importer {id:x} {}",
                    if alive {
                        "is back"
                    } else {
                        "left (its liveliness token is gone)"
                    }
                );
            }
            peer.alive = alive;
            self.changed.notify_all();
        }
    }
}

struct Exporter<'a> {
    args: &'a ExportArgs,
    reader: shmline::Reader,
    peers: Arc<Peers>,
    publisher: zenoh::pubsub::Publisher<'static>,
    marks: zenoh::pubsub::Publisher<'static>,
    epoch: u32,
    window: VecDeque<Sent>,
    last_sent: Instant,
    buf: Vec<u8>,
    infos: Vec<FrameInfo>,
}

impl Exporter<'_> {
    /// Moves frames from the stream to Zenoh until the stream ends or its writer dies.
    fn pump(&mut self) -> Result<Ending, String> {
        loop {
            let credit = self.service()?;
            if credit == 0 {
                let map = self.peers.map.lock().expect("peers lock");
                drop(self.peers.changed.wait_timeout(map, HEARTBEAT / 2));
                self.heartbeat_if_idle()?;
                continue;
            }
            let want = credit.min(self.infos.len() as u64) as usize;
            let first = self.reader.position();
            match self.reader.read_batch_timeout(
                &mut self.buf,
                &mut self.infos[..want],
                HEARTBEAT / 2,
            ) {
                Ok(n) => self.send_batch(first, n)?,
                Err(Error::Timeout | Error::Empty) => self.heartbeat_if_idle()?,
                Err(Error::EndOfStream) => return Ok(Ending::End),
                Err(Error::WriterDead) => return Ok(Ending::Dead),
                Err(e) => return Err(format!("reading stream {:?}: {e}", self.args.stream)),
            }
        }
    }

    /// Publishes the `n` frames just read (the first of them at or after `first`).
    fn send_batch(&mut self, first: u64, n: usize) -> Result<(), String> {
        let mut batch = BatchBuilder::new(self.epoch, first, self.args.batch_bytes);
        let mut offset = 0;
        for i in 0..n {
            let info = self.infos[i];
            let len = info.len as usize;
            if batch.frames() > 0 && batch.len() + wire::ENTRY + len > self.args.batch_bytes {
                let (_, end) = batch.range();
                self.publish(batch)?;
                batch = BatchBuilder::new(self.epoch, end, self.args.batch_bytes);
            }
            batch.push(&Entry {
                seq: info.seq,
                timestamp_ns: info.timestamp_ns,
                flags: info.flags,
                payload: &self.buf[offset..offset + len],
            });
            offset += len;
        }
        self.publish(batch)
    }

    fn publish(&mut self, batch: BatchBuilder) -> Result<(), String> {
        let (_, end) = batch.range();
        let message = zenoh::bytes::ZBytes::from(batch.finish());
        self.publisher
            .put(message.clone())
            .wait()
            .map_err(|e| format!("cannot publish on {}: {e}", self.args.key))?;
        if !self.args.net.lossy {
            self.window.push_back(Sent { end, message });
        }
        self.last_sent = Instant::now();
        Ok(())
    }

    fn mark(&mut self, data: &Data<'_>) -> Result<(), String> {
        self.marks
            .put(wire::encode_mark(self.epoch, data))
            .wait()
            .map_err(|e| format!("cannot publish on {}: {e}", self.args.key))?;
        self.last_sent = Instant::now();
        Ok(())
    }

    fn heartbeat_if_idle(&mut self) -> Result<(), String> {
        if self.last_sent.elapsed() >= HEARTBEAT {
            let cursor = self.reader.position();
            self.mark(&Data::Heartbeat { cursor })?;
        }
        Ok(())
    }

    /// Resends what importers asked for, trims the replay window, and returns how many more
    /// frames may be sent now.
    fn service(&mut self) -> Result<u64, String> {
        let cursor = self.reader.position();
        let window_start = self.window.front().map_or(cursor, |s| s.end.min(cursor));
        let mut resend_from = None;
        let credit = {
            let mut map = self.peers.map.lock().expect("peers lock");
            for peer in map.values_mut() {
                if !peer.resend_wanted {
                    continue;
                }
                peer.resend_wanted = false;
                if peer
                    .last_resend
                    .is_some_and(|t| t.elapsed() < RESEND_INTERVAL)
                {
                    continue;
                }
                peer.last_resend = Some(Instant::now());
                let from = peer.status.received;
                resend_from = Some(resend_from.map_or(from, |r: u64| r.min(from)));
            }
            if self.args.net.lossy {
                u64::MAX
            } else if map.len() < self.args.wait_importers {
                0
            } else {
                // Acknowledged by every importer: no longer needed for a resend.
                let acked = map
                    .values()
                    .map(|p| p.status.received)
                    .filter(|&r| r != wire::NONE)
                    .min();
                if let Some(acked) = acked {
                    while self.window.front().is_some_and(|s| s.end <= acked) {
                        self.window.pop_front();
                    }
                }
                map.values()
                    .map(|p| {
                        let base = if p.status.written == wire::NONE {
                            window_start
                        } else {
                            p.status.written
                        };
                        (base + p.status.window).saturating_sub(cursor)
                    })
                    .min()
                    .unwrap_or(0)
            }
        };
        if let Some(from) = resend_from {
            eprintln!("shmline-bridge export: an importer lacks frames from {from}: resending");
            // A batch that ends after `from` holds frames the importer lacks (it drops the ones
            // it already has); `NONE` (nothing received yet) takes the whole window.
            for sent in self
                .window
                .iter()
                .filter(|s| from == wire::NONE || s.end > from)
            {
                self.publisher
                    .put(sent.message.clone())
                    .wait()
                    .map_err(|e| format!("cannot publish on {}: {e}", self.args.key))?;
            }
            self.last_sent = Instant::now();
        }
        Ok(credit)
    }

    /// Announces the end (or the origin writer's death) until every importer acknowledged it;
    /// returns the exit code (0, or [`crate::EXIT_WRITER_DEAD`] after the origin writer died).
    fn finish(&mut self, ending: Ending) -> Result<i32, String> {
        let end = self.reader.position();
        let (mark, what, code) = match ending {
            Ending::End => (Data::End { end }, "end of stream", 0),
            Ending::Dead => (
                Data::Dead { end },
                "the origin writer's death",
                crate::EXIT_WRITER_DEAD,
            ),
        };
        eprintln!("shmline-bridge export: {what} after frame {end}; waiting for acknowledgements");
        let started = Instant::now();
        loop {
            self.service()?;
            self.mark(&mark)?;
            let done = {
                let map = self.peers.map.lock().expect("peers lock");
                let acked = |p: &Peer| p.status.flags & wire::STATUS_END_ACK != 0;
                if self.args.net.lossy {
                    map.values().all(|p| acked(p) || !p.alive) || started.elapsed() > LOSSY_END_WAIT
                } else {
                    map.len() >= self.args.wait_importers && map.values().all(acked)
                }
            };
            if done {
                eprintln!("shmline-bridge export: {what} acknowledged");
                return Ok(code);
            }
            let map = self.peers.map.lock().expect("peers lock");
            drop(self.peers.changed.wait_timeout(map, HEARTBEAT));
        }
    }
}
