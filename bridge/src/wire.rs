//! The bridge's messages on Zenoh: little-endian, fixed headers, written down in docs/BRIDGE.md.
//!
//! Exporter to importers (key `KEY/data`): [`Data`] batches of frames, heartbeats, end of stream
//! and the origin writer's death. Importer to exporter (key `KEY/ctl/ID`): [`Status`], which
//! carries the importer's credits, what it has received, a request to resend and acknowledgements.

/// First two bytes of every message, then the wire version.
const MAGIC: [u8; 2] = *b"SB";
/// Version of this format; a message of another version is refused.
const VERSION: u8 = 1;
/// Bytes before a message's body: magic, version, kind, and the exporter's epoch.
pub const HEADER: usize = 8;
/// Bytes of one frame's entry before its payload: seq, timestamp, flags, length.
pub const ENTRY: usize = 24;
/// "Nothing yet" in a sequence-number field.
pub const NONE: u64 = u64::MAX;

const KIND_BATCH: u8 = 1;
const KIND_END: u8 = 2;
const KIND_DEAD: u8 = 3;
const KIND_HEARTBEAT: u8 = 4;
const KIND_STATUS: u8 = 10;

/// Status flag: the importer found a hole and asks for everything from `received` again.
pub const STATUS_RESEND: u32 = 1;
/// Status flag: the importer has every frame before the end (or death) announced, and has ended
/// (or abandoned) its local stream.
pub const STATUS_END_ACK: u32 = 2;

/// One frame inside a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Origin sequence number.
    pub seq: u64,
    /// Origin commit time (nanoseconds of the origin's CLOCK_MONOTONIC).
    pub timestamp_ns: u64,
    /// Origin application flags.
    pub flags: u32,
    /// Payload.
    pub payload: &'a [u8],
}

/// A message from the exporter.
#[derive(Debug, PartialEq, Eq)]
pub enum Data<'a> {
    /// Frames covering origin sequence numbers `first..end` (numbers without an entry are origin
    /// gaps); `entries` decodes them.
    Batch {
        /// First sequence number the batch covers (the end of the batch sent before it).
        first: u64,
        /// One past the last sequence number it covers.
        end: u64,
        /// The encoded entries.
        body: &'a [u8],
    },
    /// The origin stream ended: every number below `end` was sent.
    End {
        /// One past the last sequence number of the stream.
        end: u64,
    },
    /// The origin writer died: every number below `end` was sent; nothing more will come.
    Dead {
        /// One past the last sequence number sent.
        end: u64,
    },
    /// The exporter is alive and has sent every number below `cursor`.
    Heartbeat {
        /// One past the last sequence number sent.
        cursor: u64,
    },
}

/// A message from an importer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The importer's id (also in its key).
    pub id: u64,
    /// Next origin sequence number it expects from the network ([`NONE`] before the first batch).
    pub received: u64,
    /// Next origin sequence number it will write locally ([`NONE`] before the first batch).
    pub written: u64,
    /// Frames it accepts beyond `written` (its credit window).
    pub window: u64,
    /// [`STATUS_RESEND`], [`STATUS_END_ACK`].
    pub flags: u32,
}

fn header(out: &mut Vec<u8>, kind: u8, epoch: u32) {
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&epoch.to_le_bytes());
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Checks a message's header; returns its kind and epoch.
fn parse_header(bytes: &[u8]) -> Result<(u8, u32), String> {
    if bytes.len() < HEADER || bytes[..2] != MAGIC {
        return Err("not a shmline-bridge message (bad magic or too short)".into());
    }
    if bytes[2] != VERSION {
        return Err(format!(
            "bridge wire version {} (this bridge speaks {VERSION}): run the same shmline-bridge \
             version on both hosts",
            bytes[2]
        ));
    }
    Ok((bytes[3], u32_at(bytes, 4).unwrap_or(0)))
}

/// Builds batches of frames into one buffer.
#[derive(Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    first: u64,
    end: u64,
    frames: usize,
}

impl BatchBuilder {
    /// An empty batch of `epoch` starting at sequence number `first`.
    pub fn new(epoch: u32, first: u64, capacity: usize) -> BatchBuilder {
        let mut buf = Vec::with_capacity(capacity + HEADER + 16);
        header(&mut buf, KIND_BATCH, epoch);
        buf.extend_from_slice(&first.to_le_bytes());
        buf.extend_from_slice(&first.to_le_bytes());
        BatchBuilder {
            buf,
            first,
            end: first,
            frames: 0,
        }
    }

    /// Appends a frame (its `seq` at or after the batch's end; numbers skipped are gaps).
    pub fn push(&mut self, entry: &Entry<'_>) {
        debug_assert!(entry.seq >= self.end, "frames in order");
        self.buf.extend_from_slice(&entry.seq.to_le_bytes());
        self.buf
            .extend_from_slice(&entry.timestamp_ns.to_le_bytes());
        self.buf.extend_from_slice(&entry.flags.to_le_bytes());
        self.buf
            .extend_from_slice(&(entry.payload.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(entry.payload);
        self.end = entry.seq + 1;
        self.frames += 1;
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Frames so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// First and one-past-last sequence numbers covered.
    pub fn range(&self) -> (u64, u64) {
        (self.first, self.end)
    }

    /// The encoded message.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf[HEADER + 8..HEADER + 16].copy_from_slice(&self.end.to_le_bytes());
        self.buf
    }
}

/// Encodes an end-of-stream, death or heartbeat message.
pub fn encode_mark(epoch: u32, data: &Data<'_>) -> Vec<u8> {
    let (kind, value) = match *data {
        Data::End { end } => (KIND_END, end),
        Data::Dead { end } => (KIND_DEAD, end),
        Data::Heartbeat { cursor } => (KIND_HEARTBEAT, cursor),
        Data::Batch { .. } => unreachable!("batches are built with BatchBuilder"),
    };
    let mut out = Vec::with_capacity(HEADER + 8);
    header(&mut out, kind, epoch);
    out.extend_from_slice(&value.to_le_bytes());
    out
}

/// Decodes a message from the exporter; returns it and the exporter's epoch.
pub fn decode_data(bytes: &[u8]) -> Result<(Data<'_>, u32), String> {
    let (kind, epoch) = parse_header(bytes)?;
    let short = || format!("truncated bridge message of kind {kind}");
    let value = u64_at(bytes, HEADER).ok_or_else(short)?;
    let data = match kind {
        KIND_BATCH => {
            let end = u64_at(bytes, HEADER + 8).ok_or_else(short)?;
            if end < value {
                return Err(format!("batch ends ({end}) before it starts ({value})"));
            }
            Data::Batch {
                first: value,
                end,
                body: &bytes[HEADER + 16..],
            }
        }
        KIND_END => Data::End { end: value },
        KIND_DEAD => Data::Dead { end: value },
        KIND_HEARTBEAT => Data::Heartbeat { cursor: value },
        _ => return Err(format!("unknown bridge message kind {kind}")),
    };
    Ok((data, epoch))
}

/// Iterates over a batch body's entries; yields an error for a malformed entry and stops.
pub fn entries(body: &[u8]) -> impl Iterator<Item = Result<Entry<'_>, String>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= body.len() {
            return None;
        }
        let entry = (|| {
            let seq = u64_at(body, at)?;
            let timestamp_ns = u64_at(body, at + 8)?;
            let flags = u32_at(body, at + 16)?;
            let len = u32_at(body, at + 20)? as usize;
            let payload = body.get(at + ENTRY..(at + ENTRY).checked_add(len)?)?;
            Some((
                Entry {
                    seq,
                    timestamp_ns,
                    flags,
                    payload,
                },
                ENTRY + len,
            ))
        })();
        match entry {
            Some((entry, size)) => {
                at += size;
                Some(Ok(entry))
            }
            None => {
                at = body.len();
                Some(Err("truncated frame entry in a bridge batch".into()))
            }
        }
    })
}

/// Encodes an importer's status.
pub fn encode_status(epoch: u32, status: &Status) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 36);
    header(&mut out, KIND_STATUS, epoch);
    out.extend_from_slice(&status.id.to_le_bytes());
    out.extend_from_slice(&status.received.to_le_bytes());
    out.extend_from_slice(&status.written.to_le_bytes());
    out.extend_from_slice(&status.window.to_le_bytes());
    out.extend_from_slice(&status.flags.to_le_bytes());
    out
}

/// Decodes an importer's status.
pub fn decode_status(bytes: &[u8]) -> Result<Status, String> {
    let (kind, _) = parse_header(bytes)?;
    if kind != KIND_STATUS {
        return Err(format!(
            "expected an importer status, got message kind {kind}"
        ));
    }
    let short = || "truncated importer status".to_string();
    Ok(Status {
        id: u64_at(bytes, HEADER).ok_or_else(short)?,
        received: u64_at(bytes, HEADER + 8).ok_or_else(short)?,
        written: u64_at(bytes, HEADER + 16).ok_or_else(short)?,
        window: u64_at(bytes, HEADER + 24).ok_or_else(short)?,
        flags: u32_at(bytes, HEADER + 32).ok_or_else(short)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_round_trips_with_its_gaps_and_range() {
        let mut b = BatchBuilder::new(7, 10, 64);
        b.push(&Entry {
            seq: 10,
            timestamp_ns: 1,
            flags: 2,
            payload: b"ab",
        });
        b.push(&Entry {
            seq: 12,
            timestamp_ns: 3,
            flags: 4,
            payload: b"",
        });
        let bytes = b.finish();
        let (data, epoch) = decode_data(&bytes).unwrap();
        assert_eq!(epoch, 7);
        let Data::Batch { first, end, body } = data else {
            panic!("{data:?}")
        };
        assert_eq!((first, end), (10, 13));
        let got: Vec<_> = entries(body).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            got[0],
            Entry {
                seq: 10,
                timestamp_ns: 1,
                flags: 2,
                payload: b"ab"
            }
        );
        assert_eq!(got[1].seq, 12);
    }

    #[test]
    fn a_truncated_entry_is_an_error_not_a_panic() {
        let mut b = BatchBuilder::new(1, 0, 64);
        b.push(&Entry {
            seq: 0,
            timestamp_ns: 1,
            flags: 0,
            payload: b"abcd",
        });
        let mut bytes = b.finish();
        bytes.truncate(bytes.len() - 1);
        let (Data::Batch { body, .. }, _) = decode_data(&bytes).unwrap() else {
            panic!()
        };
        assert!(entries(body).any(|e| e.is_err()));
    }

    #[test]
    fn a_status_round_trips_and_another_version_is_refused() {
        let s = Status {
            id: 9,
            received: 5,
            written: 4,
            window: 100,
            flags: STATUS_RESEND,
        };
        let mut bytes = encode_status(3, &s);
        assert_eq!(decode_status(&bytes).unwrap(), s);
        bytes[2] = 99;
        assert!(decode_status(&bytes).unwrap_err().contains("version"));
    }
}
