//! Reader groups (competing consumers): joining and leaving a group, and handing the frames of a
//! member that died to another member. The claim protocol itself is in
//! [`protocol::group`](super::protocol::group); everything here runs under the table lock.
//!
//! A group lives in a record of the stream's group table while it has members. Its first member
//! creates it at the member's start position; later members join it where it is; the last one to
//! leave frees it. A member that dies holding frames is *orphaned*: its reader entry keeps holding
//! the writer back until a live member of the group adopts the frames and delivers them again
//! (at-least-once delivery within the group). Whoever notices a dead member repairs the group: an
//! idle member of the same group, the writer waiting for space, or a joining reader finding the
//! reader table full.

use super::lock::TableLock;
use super::protocol::{self, entry::Owner, group::Claim};
use super::tables;
use super::Shared;
use crate::error::{Error, Result};
use crate::layout::{
    GroupRecord, ReaderEntry, GROUP_ACTIVE, GROUP_FREE, GROUP_NAME_LEN, POS_IDLE, READER_ACTIVE,
    READER_FREE, READER_ORPHANED,
};
use crate::sync::Ordering;
use crate::wait::futex_wake;

/// Checks a group name: 1 to 63 bytes of the characters stream names may use.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    if name.len() >= GROUP_NAME_LEN {
        return Err(Error::InvalidName(format!(
            "invalid reader group name {name:?}: {} bytes, the limit is {}",
            name.len(),
            GROUP_NAME_LEN - 1
        )));
    }
    crate::shm::validate_name(name).map_err(|e| match e {
        Error::InvalidName(why) => Error::InvalidName(format!("reader group: {why}")),
        other => other,
    })
}

/// The name stored in a group record (up to the first NUL; bytes that are not UTF-8 are replaced,
/// so a damaged name never matches a valid one).
pub(crate) fn record_name(record: &GroupRecord) -> String {
    let bytes: Vec<u8> = record
        .name
        .iter()
        // Relaxed: written before the record was activated (SeqCst), which our caller loaded.
        .map(|b| b.load(Ordering::Relaxed))
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Index + 1 of the group an entry in `state` belongs to, or 0: plain readers, and entries that
/// are neither active nor orphaned (whose `group` may be stale).
fn group_of(entry: &ReaderEntry, state: u32) -> u32 {
    if state == READER_ACTIVE || state == READER_ORPHANED {
        // Relaxed: stored before the entry became active, which the caller's load of the owner
        // word (Acquire or stronger) saw.
        entry.group.load(Ordering::Relaxed)
    } else {
        0
    }
}

/// Whether the owner of an active entry is dead.
fn owner_dead(entry: &ReaderEntry) -> bool {
    tables::dead_reader(entry).is_some()
}

fn lock(shared: &Shared) -> Result<TableLock<'_>> {
    TableLock::take(shared).ok_or_else(|| {
        Error::WrongState(format!(
            "stream {:?}: the table lock is held by live process {} and was not released within \
             5 s; try again",
            shared.name(),
            // Relaxed: only reported.
            shared.header().table_lock.load(Ordering::Relaxed)
        ))
    })
}

/// Joins reader entry `index` (claimed as `claimed`, identity recorded, not active) to the group
/// `name`, creating the group at `start` if it has no members. Returns the group's record index.
/// `scan_in_flight` is as for [`protocol::join`].
pub(crate) fn join(
    shared: &Shared,
    index: u32,
    claimed: Owner,
    name: &str,
    start: impl FnOnce(u64) -> u64,
    scan_in_flight: impl FnMut() -> bool,
) -> Result<u32> {
    let _lock = lock(shared)?;
    let hdr = shared.header();
    let entry = shared.entry(index);
    let found = (0..shared.geo.max_groups).find(|&g| {
        let record = shared.group(g);
        // Acquire: see the name stored before the record was activated.
        record.state.load(Ordering::Acquire) == GROUP_ACTIVE && record_name(record) == name
    });
    let g = match found {
        Some(g) => g,
        None => {
            let free = |shared: &Shared| {
                (0..shared.geo.max_groups)
                    // Acquire: the previous group in the record is gone.
                    .find(|&g| shared.group(g).state.load(Ordering::Acquire) == GROUP_FREE)
            };
            let g = match free(shared) {
                Some(g) => g,
                None => {
                    // Groups whose members all died may be holding records.
                    repair_locked(shared);
                    free(shared).ok_or_else(|| too_many_groups(shared, name))?
                }
            };
            let record = shared.group(g);
            // Relaxed: published by the SeqCst activation in `protocol::group::join`.
            for (i, byte) in record.name.iter().enumerate() {
                byte.store(*name.as_bytes().get(i).unwrap_or(&0), Ordering::Relaxed);
            }
            record.orphans.store(0, Ordering::Relaxed);
            record.redelivered.store(0, Ordering::Relaxed);
            // SeqCst: chosen from the published frames, as a plain reader chooses its start.
            let first = start(hdr.head.load(Ordering::SeqCst));
            record.first.store(first, Ordering::Relaxed);
            let first = protocol::group::join(
                hdr,
                record,
                first,
                shared.geo.capacity as u64,
                scan_in_flight,
            );
            // Relaxed: a statistic.
            record.first.store(first, Ordering::Relaxed);
            g
        }
    };
    // Relaxed: published by the SeqCst activation below.
    entry.group.store(g + 1, Ordering::Relaxed);
    entry.held_end.store(POS_IDLE, Ordering::Relaxed);
    // SeqCst: a member holds no frame until it claims some; the group's `next` holds the writer
    // back for it. As in `protocol::join`, activation comes after the position.
    entry.pos.store(POS_IDLE, Ordering::SeqCst);
    protocol::entry::activate(entry, claimed);
    Ok(g)
}

fn too_many_groups(shared: &Shared, name: &str) -> Error {
    Error::TooManyReaders(format!(
        "cannot create reader group {name:?}: stream {:?} already has its maximum of {} reader \
         groups (max_groups); create the stream with a larger max_groups",
        shared.name(),
        shared.geo.max_groups
    ))
}

/// A member leaves its group `g`: it releases what it delivered; frames it claimed but never
/// delivered (`undelivered` is the first of them, if any) go to another member if the group has
/// one. The last member to leave frees the group.
pub(crate) fn leave(shared: &Shared, index: u32, g: u32, undelivered: Option<u64>) {
    let hdr = shared.header();
    let entry = shared.entry(index);
    // Without the lock (a live process kept it for seconds) freeing the group is left to the next
    // repair, and we cannot count the other members: our undelivered frames are orphaned anyway
    // (freeing the entry would lose them), and that repair frees the orphan if nobody is left to
    // adopt it.
    let lock = TableLock::take(shared);
    let others = lock.is_none()
        || members(shared, g)
            .iter()
            .any(|&(i, state)| i != index && state == READER_ACTIVE);
    let orphaned = match undelivered {
        Some(pos) if others => {
            // SeqCst: releases the frames we delivered; the rest stay held.
            entry.pos.store(pos, Ordering::SeqCst);
            let ok =
                protocol::entry::transition_from_state(hdr, entry, READER_ACTIVE, READER_ORPHANED);
            if ok {
                // SeqCst: the hint members check before claiming; see `orphaned`.
                shared.group(g).orphans.fetch_add(1, Ordering::SeqCst);
            }
            ok
        }
        _ => false,
    };
    if !orphaned {
        tables::free_reader(shared, index, READER_ACTIVE);
    }
    if lock.is_some() && members(shared, g).is_empty() {
        free_group(shared, g);
    }
    drop(lock);
    if orphaned {
        wake_members(shared);
    }
    // SeqCst: the load half of the writer-sleep handshake, as a leaving plain reader does.
    if hdr.writer_waiting.load(Ordering::SeqCst) != 0 {
        protocol::wake_writer(hdr);
        futex_wake(&hdr.space_futex, i32::MAX);
    }
}

/// The entries of group `g` (index + 1 in their `group`) that are active or orphaned.
fn members(shared: &Shared, g: u32) -> Vec<(u32, u32)> {
    (0..shared.geo.max_readers)
        .filter_map(|i| {
            let entry = shared.entry(i);
            // Acquire: see the fields stored before the entry was activated.
            let state = protocol::entry::owner(entry, Ordering::Acquire).state();
            (group_of(entry, state) == g + 1).then_some((i, state))
        })
        .collect()
}

fn free_group(shared: &Shared, g: u32) {
    // SeqCst: the writer's scans stop counting the group (its frames are no one's now), like a
    // leaving reader's `state = FREE`.
    shared.group(g).state.store(GROUP_FREE, Ordering::SeqCst);
}

/// Wakes sleeping readers, so idle members of a group see an orphan to adopt.
fn wake_members(shared: &Shared) {
    super::wake_all_readers(shared.header());
}

/// What [`bury`] did with a dead member's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Burial {
    /// Orphaned: it holds frames for another member to adopt.
    Orphaned,
    /// Freed: it held no frame, or nobody would adopt them.
    Freed,
    /// Someone else changed the entry first.
    Lost,
}

/// Orphans the active entry `i` of a dead member of group `g` (it keeps holding the writer back),
/// or frees it if it holds no frame or `keep` is false (nobody would adopt it). Under the table
/// lock. `Lost` unless the member is dead.
fn bury(shared: &Shared, i: u32, g: u32, keep: bool) -> Burial {
    let entry = shared.entry(i);
    let hdr = shared.header();
    // Only the incarnation judged dead is moved (see `protocol::entry::transition`).
    let Some(dead) = tables::dead_reader(entry).filter(|o| o.state() == READER_ACTIVE) else {
        return Burial::Lost;
    };
    // SeqCst: as in the writer's scan.
    let holds = entry.pos.load(Ordering::SeqCst) != POS_IDLE;
    let burial = if keep && holds {
        if !protocol::entry::transition(hdr, entry, dead, READER_ORPHANED) {
            return Burial::Lost;
        }
        // SeqCst: see `leave`.
        shared.group(g).orphans.fetch_add(1, Ordering::SeqCst);
        Burial::Orphaned
    } else if protocol::entry::transition(hdr, entry, dead, READER_FREE) {
        Burial::Freed
    } else {
        return Burial::Lost;
    };
    // Relaxed: a statistic.
    hdr.readers_reclaimed.fetch_add(1, Ordering::Relaxed);
    burial
}

/// An idle member of group `g` (reader entry `index`) looks for frames of dead members: orphans
/// the dead members of its group and adopts the frames of one orphan. Returns the frames it now
/// holds, if any. Cheap when there is nothing to do (no lock; one look at `/proc` per member).
pub(crate) fn rescue(
    shared: &Shared,
    index: u32,
    g: u32,
    scan_in_flight: impl FnMut() -> bool,
) -> Option<(u64, u64)> {
    let work = members(shared, g).iter().any(|&(i, state)| {
        state == READER_ORPHANED
            || i != index && state == READER_ACTIVE && owner_dead(shared.entry(i))
    });
    if !work {
        // Relaxed: a hint that was stale (its orphans already adopted); keep it from sending
        // every claim here.
        shared.group(g).orphans.store(0, Ordering::Relaxed);
        return None;
    }
    let _lock = TableLock::take(shared)?;
    let record = shared.group(g);
    let me = shared.entry(index);
    let mut orphans = Vec::new();
    for (i, state) in members(shared, g) {
        if state == READER_ACTIVE && i != index {
            if bury(shared, i, g, true) == Burial::Orphaned {
                orphans.push(i);
            }
        } else if state == READER_ORPHANED {
            orphans.push(i);
        }
    }
    let mut scan_in_flight = scan_in_flight;
    let mut adopted = None;
    let mut left = orphans.len() as u32;
    for i in orphans {
        let orphan = shared.entry(i);
        let (start, end) = protocol::group::adopt(
            shared.header(),
            record,
            me,
            orphan,
            shared.geo.capacity as u64,
            &mut scan_in_flight,
        );
        // We hold the orphan's frames now (or it held none we may take): let it go.
        if tables::free_reader(shared, i, READER_ORPHANED) {
            left -= 1;
        }
        if start < end {
            // Relaxed: a statistic.
            record.redelivered.fetch_add(end - start, Ordering::Relaxed);
            adopted = Some((start, end));
            break;
        }
    }
    // SeqCst: as in `leave`; recounted under the lock, so a stale hint heals.
    record.orphans.store(left, Ordering::SeqCst);
    adopted
}

/// Claims frames for member `me` of group record `record` (see [`protocol::group::try_claim`]),
/// reporting damage as [`Error::Corrupt`].
pub(crate) fn claim(
    shared: &Shared,
    record: &GroupRecord,
    me: &ReaderEntry,
    want: u64,
) -> Result<Option<(u64, u64)>> {
    let hdr = shared.header();
    let (claim, wake) =
        protocol::group::try_claim(hdr, record, me, want, shared.geo.capacity as u64);
    if wake {
        protocol::wake_writer(hdr);
        futex_wake(&hdr.space_futex, i32::MAX);
    }
    match claim {
        Claim::Got { start, end } => Ok(Some((start, end))),
        Claim::Empty => Ok(None),
        Claim::Corrupt { next, head } => Err(Error::corrupt(format!(
            "stream {:?}: reader group {:?} is to hand out frame {next} next, which is not within \
             a ring (capacity {}) below head {head}",
            shared.name(),
            record_name(record),
            shared.geo.capacity
        ))),
    }
}

/// Frees the entries of readers that died (only lossless ones if `lossless_only`) and hands the
/// frames of dead group members to live ones: what a writer held back, or a reader finding the
/// table full, does about dead readers.
pub(crate) fn reclaim_dead_readers(shared: &Shared, lossless_only: bool) {
    tables::reclaim_dead_readers(shared, lossless_only);
    repair(shared);
}

/// Repairs every group (the writer waiting for space, a joining reader finding no free entry):
/// orphans dead members holding frames while their group has a live member, frees the other dead
/// members and the orphans of groups with no live member, and frees groups with no member left.
/// Cheap when there is nothing to do (no lock; one look at `/proc` per active member).
pub(crate) fn repair(shared: &Shared) {
    if shared.geo.max_groups == 0 || !needs_repair(shared) {
        return;
    }
    if let Some(_lock) = TableLock::take(shared) {
        repair_locked(shared);
    }
}

fn needs_repair(shared: &Shared) -> bool {
    let mut live = vec![false; shared.geo.max_groups as usize];
    let mut suspect = false;
    for i in 0..shared.geo.max_readers {
        let entry = shared.entry(i);
        // Acquire: as in `members`.
        let state = protocol::entry::owner(entry, Ordering::Acquire).state();
        let g = group_of(entry, state);
        let Some(slot) = (g as usize).checked_sub(1).filter(|&s| s < live.len()) else {
            continue;
        };
        if state == READER_ACTIVE {
            if owner_dead(entry) {
                suspect = true;
            } else {
                live[slot] = true;
            }
        }
    }
    // A group without a live member: its orphans (if any) to free, or the group itself.
    suspect
        || (0..shared.geo.max_groups as usize).any(|s| {
            // Relaxed: a first look; the repair looks again under the lock.
            shared.group(s as u32).state.load(Ordering::Relaxed) == GROUP_ACTIVE && !live[s]
        })
}

/// [`repair`] with the table lock held.
fn repair_locked(shared: &Shared) {
    let mut orphaned = false;
    for g in 0..shared.geo.max_groups {
        // Acquire: as in `join`.
        let active = shared.group(g).state.load(Ordering::Acquire) == GROUP_ACTIVE;
        let members = members(shared, g);
        let live = active
            && members
                .iter()
                .any(|&(i, state)| state == READER_ACTIVE && !owner_dead(shared.entry(i)));
        for &(i, state) in &members {
            if state == READER_ACTIVE {
                orphaned |= bury(shared, i, g, live) == Burial::Orphaned;
            } else if state == READER_ORPHANED && !live {
                // Nobody is left to adopt it (or its group record is gone).
                tables::free_reader(shared, i, READER_ORPHANED);
            }
        }
        if active && self::members(shared, g).is_empty() {
            free_group(shared, g);
        }
    }
    if orphaned {
        wake_members(shared);
    }
    let hdr = shared.header();
    // The writer may be waiting for frames the freed entries held.
    // SeqCst: as in `leave`.
    if hdr.writer_waiting.load(Ordering::SeqCst) != 0 {
        protocol::wake_writer(hdr);
        futex_wake(&hdr.space_futex, i32::MAX);
    }
}
