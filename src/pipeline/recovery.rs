//! Recovering what a dead runner left: which of its segments nobody alive uses any more, and
//! removing them. Each segment is judged by its own kind's stale rule (see [`crate::stale`]).

use super::registry::Registry;
use super::{segment_name, STOP_EVENT};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::liveness::ProcessId;
use crate::ring::Stream;
use crate::shm::{Segment, SegmentKind};
use crate::stale::Usage;

/// What [`Registry::remove_if_dead`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// The runner is alive: nothing was removed.
    Alive(ProcessId),
    /// The runner is dead: these segments (kind and name) are, or were, left behind.
    Dead(Vec<(SegmentKind, String)>),
}

impl Registry {
    /// What [`Registry::remove_if_dead`] would do, without doing it: whether the runner of
    /// pipeline `name` is alive, and if not, the segments it left: the registry, and the streams
    /// and events it lists (and its stop event) that are stale by their own rule
    /// ([`Stream::usage`], [`Event::usage`]): a stream that a live process still writes or reads
    /// is never stale, even when the runner that made it is dead. A stream or event the runner
    /// died making (not a finished segment, a regular file of this user) is stale, as is a
    /// registry whose runner died before finishing it; a segment that cannot be judged (another
    /// layout version, a damaged header) is left alone.
    ///
    /// Errors: [`Error::NotFound`] if there is no such registry; the open errors
    /// ([`Error::VersionMismatch`], [`Error::Corrupt`]) for a registry that cannot be read.
    pub fn check_dead(name: &str) -> Result<Cleanup> {
        let registry = match Registry::open(name) {
            Ok(registry) => registry,
            // A registry its runner died making: ours to remove only if it is a regular file of
            // our own user (anything else under the name was planted by someone: left alone).
            Err(Error::NotShmline(why)) => {
                return if crate::shm::is_own_regular_file(SegmentKind::Pipeline, name) {
                    Ok(Cleanup::Dead(vec![(
                        SegmentKind::Pipeline,
                        name.to_owned(),
                    )]))
                } else {
                    Err(Error::NotShmline(format!(
                        "{why}; not a shmline segment of this user: left alone (delete it by \
                         hand if it is yours)"
                    )))
                };
            }
            Err(e) => return Err(e),
        };
        if registry.runner_alive() {
            return Ok(Cleanup::Alive(registry.info().runner));
        }
        let info = registry.info();
        // One stale rule per kind, the one `Stream::remove_stale` and `shmline clean` use, plus
        // the runner's own half-made files (its registry lists them, so they are its).
        let is_stale = |kind: SegmentKind, segment: &str, usage: Result<Usage>| match usage {
            Ok(Usage::Stale(_)) => true,
            Err(Error::NotShmline(_)) => crate::shm::is_own_regular_file(kind, segment),
            // In use, gone, or impossible to judge.
            Ok(Usage::InUse { .. }) | Err(_) => false,
        };
        let mut stale = Vec::new();
        for s in &info.streams {
            if is_stale(SegmentKind::Stream, &s.segment, Stream::usage(&s.segment)) {
                stale.push((SegmentKind::Stream, s.segment.clone()));
            }
        }
        let stop = segment_name(&info.name, STOP_EVENT);
        for segment in info.events.iter().map(|e| &e.segment).chain([&stop]) {
            if is_stale(SegmentKind::Event, segment, Event::usage(segment)) {
                stale.push((SegmentKind::Event, segment.clone()));
            }
        }
        stale.push((SegmentKind::Pipeline, name.to_owned()));
        Ok(Cleanup::Dead(stale))
    }

    /// Removes the segments [`Registry::check_dead`] lists for pipeline `name` if its runner is
    /// dead, and returns the ones it removed; removes nothing if the runner is alive.
    pub fn remove_if_dead(name: &str) -> Result<Cleanup> {
        match Registry::check_dead(name)? {
            Cleanup::Dead(stale) => Ok(Cleanup::Dead(
                stale
                    .into_iter()
                    .filter(|(kind, segment)| Segment::unlink(*kind, segment).is_ok())
                    .collect(),
            )),
            alive => Ok(alive),
        }
    }
}
