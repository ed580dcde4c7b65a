//! One look at the pipelines: what their registries, streams and task processes say now.

use crate::ls::look;
use crate::usage;
use shmline::pipeline::{Registry, TaskState};
use shmline::SegmentKind;
use shmline::{Stream, StreamStats};
use std::rc::Rc;
use std::time::Instant;

/// One look at every pipeline watched.
pub struct Sample {
    /// When the look was taken.
    pub at: Instant,
    /// The pipelines that could be read.
    pub pipelines: Vec<PipelineSample>,
    /// Registries that could not be read: (name, why).
    pub unreadable: Vec<(String, String)>,
}

/// One look at one pipeline.
pub struct PipelineSample {
    /// The registry, kept mapped so that a pipeline that ends can still be read (see
    /// [`Sample::again`]).
    pub registry: Rc<Registry>,
    /// Handles to its streams, in registry order (`None`: it could not be opened).
    pub handles: Rc<Vec<Option<Stream>>>,
    /// Counters of each stream.
    pub streams: Vec<Option<StreamStats>>,
    /// Per task: CPU ticks and resident bytes of its process.
    pub usage: Vec<(Option<u64>, Option<u64>)>,
}

impl Sample {
    /// Looks at pipeline `only`, or at every pipeline on this machine.
    pub fn take(only: Option<&str>) -> shmline::Result<Sample> {
        let names = match only {
            Some(name) => vec![name.to_string()],
            None => Registry::list()?,
        };
        let mut pipelines = Vec::new();
        let mut unreadable = Vec::new();
        for name in names {
            let registry = match look(SegmentKind::Pipeline, &name, Registry::open) {
                Ok(r) => r,
                Err(shmline::Error::NotFound(_)) => continue,
                Err(e) if only.is_some() => return Err(e),
                // Another pipeline's registry may be half-made, damaged or not a registry at
                // all: say so and show the others.
                Err(e) => {
                    unreadable.push((name, e.to_string()));
                    continue;
                }
            };
            let handles = registry
                .info()
                .streams
                .iter()
                .map(|s| look(SegmentKind::Stream, &s.segment, Stream::open).ok())
                .collect();
            pipelines.push(PipelineSample::read(Rc::new(registry), Rc::new(handles)));
        }
        Ok(Sample {
            at: Instant::now(),
            pipelines,
            unreadable,
        })
    }

    /// Looks again through the handles of this look, without opening anything by name: the
    /// final state of pipelines whose segments are gone.
    pub fn again(&self) -> Sample {
        Sample {
            at: Instant::now(),
            pipelines: self
                .pipelines
                .iter()
                .map(|p| PipelineSample::read(p.registry.clone(), p.handles.clone()))
                .collect(),
            unreadable: Vec::new(),
        }
    }
}

impl PipelineSample {
    /// Reads the counters of `handles` and the usage of the tasks' live processes.
    fn read(registry: Rc<Registry>, handles: Rc<Vec<Option<Stream>>>) -> PipelineSample {
        let streams = handles
            .iter()
            .map(|s| s.as_ref().map(Stream::stats))
            .collect();
        let usage = (0..registry.info().tasks.len())
            .map(|i| {
                let pid = registry
                    .task_status(i)
                    .ok()
                    .and_then(|s| (s.state != TaskState::Exited).then(|| s.pid()).flatten());
                (
                    pid.and_then(usage::cpu_ticks),
                    pid.and_then(usage::rss_bytes),
                )
            })
            .collect();
        PipelineSample {
            registry,
            handles,
            streams,
            usage,
        }
    }
}
