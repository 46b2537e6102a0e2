//! The placement problem and its answer: plain data, serialisable, with small builders.

use std::cmp::{Ordering, Reverse};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One GPU of a worker, as the worker reported it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Gpu {
    /// Device index on the worker (unique per worker).
    pub index: u32,
    /// Model name as reported, matched exactly against [`Request::gpu_model`].
    pub model: String,
    /// Total device memory.
    pub memory_bytes: u64,
}

/// A worker's capacity and labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Worker {
    /// Unique worker id.
    pub id: String,
    /// Total CPU in thousandths of a core.
    pub cpu_millis: u64,
    /// Total memory.
    pub memory_bytes: u64,
    /// GPUs, in any order.
    pub gpus: Vec<Gpu>,
    /// Labels that job constraints match against.
    pub labels: BTreeMap<String, String>,
    /// `false` while cordoned or draining: such a worker receives nothing.
    pub schedulable: bool,
}

impl Worker {
    /// A schedulable worker without GPUs or labels.
    pub fn new(id: impl Into<String>, cpu_millis: u64, memory_bytes: u64) -> Self {
        Self {
            id: id.into(),
            cpu_millis,
            memory_bytes,
            gpus: Vec::new(),
            labels: BTreeMap::new(),
            schedulable: true,
        }
    }

    /// Adds a GPU with the next free index.
    pub fn with_gpu(mut self, model: impl Into<String>, memory_bytes: u64) -> Self {
        let index = self.gpus.iter().map(|g| g.index + 1).max().unwrap_or(0);
        self.gpus.push(Gpu {
            index,
            model: model.into(),
            memory_bytes,
        });
        self
    }

    /// Adds (or replaces) a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets [`Worker::schedulable`].
    pub fn schedulable(mut self, schedulable: bool) -> Self {
        self.schedulable = schedulable;
        self
    }
}

/// The part of one GPU's memory held by one job.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GpuShare {
    /// Device index on the worker.
    pub index: u32,
    /// GPU memory reserved on that device (the whole device for whole-GPU requests).
    pub memory_bytes: u64,
}

/// Resources held by a job on a worker: what is running, and what [`crate::place`] decides.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Allocation {
    /// The job holding the resources.
    pub job_id: String,
    /// The worker they are on.
    pub worker_id: String,
    /// CPU held, in thousandths of a core.
    pub cpu_millis: u64,
    /// Memory held.
    pub memory_bytes: u64,
    /// GPU memory held, per device.
    pub gpus: Vec<GpuShare>,
}

impl Allocation {
    /// The device indices this allocation uses, in the order chosen.
    pub fn gpu_indices(&self) -> Vec<u32> {
        self.gpus.iter().map(|g| g.index).collect()
    }
}

/// What a job needs from one worker.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Request {
    /// CPU in thousandths of a core.
    pub cpu_millis: u64,
    /// Memory.
    pub memory_bytes: u64,
    /// Number of distinct GPUs; 0 for a CPU-only job.
    pub gpu_count: u32,
    /// GPU memory per GPU; 0 (with `gpu_count > 0`) asks for whole, unshared GPUs.
    pub gpu_memory_bytes: u64,
    /// Exact GPU model required, if any (ignored when `gpu_count == 0`).
    pub gpu_model: Option<String>,
}

impl Request {
    /// A CPU-only request.
    pub fn cpu(cpu_millis: u64, memory_bytes: u64) -> Self {
        Self {
            cpu_millis,
            memory_bytes,
            ..Self::default()
        }
    }

    /// Adds `count` GPUs with `memory_bytes` each (0: whole GPUs).
    pub fn with_gpus(mut self, count: u32, memory_bytes: u64) -> Self {
        self.gpu_count = count;
        self.gpu_memory_bytes = memory_bytes;
        self
    }

    /// Requires a GPU model.
    pub fn with_gpu_model(mut self, model: impl Into<String>) -> Self {
        self.gpu_model = Some(model.into());
        self
    }

    /// Whether the request uses no GPU.
    pub fn is_cpu_only(&self) -> bool {
        self.gpu_count == 0
    }

    /// Whether the request asks for whole GPUs rather than a share of their memory.
    pub fn wants_whole_gpus(&self) -> bool {
        self.gpu_count > 0 && self.gpu_memory_bytes == 0
    }
}

/// A queued job.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Job {
    /// Unique job id.
    pub id: String,
    /// Higher runs first.
    pub priority: i32,
    /// Position in submission order; lower is older.
    pub queued_seq: u64,
    /// When the job (re-)entered the queue, in the caller's milliseconds.
    pub queued_at_ms: i64,
    /// Resources needed.
    pub request: Request,
    /// Worker labels that must be present with exactly these values.
    pub constraints: BTreeMap<String, String>,
}

impl Job {
    /// A job with priority 0, queued at time 0, without constraints.
    pub fn new(id: impl Into<String>, queued_seq: u64, request: Request) -> Self {
        Self {
            id: id.into(),
            priority: 0,
            queued_seq,
            queued_at_ms: 0,
            request,
            constraints: BTreeMap::new(),
        }
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets when the job was queued.
    pub fn queued_at(mut self, ms: i64) -> Self {
        self.queued_at_ms = ms;
        self
    }

    /// Adds a label constraint.
    pub fn with_constraint(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.constraints.insert(key.into(), value.into());
        self
    }

    /// Queue order: higher priority first, then lower `queued_seq`, then id.
    pub fn queue_cmp(&self, other: &Self) -> Ordering {
        (Reverse(self.priority), self.queued_seq, &self.id)
            .cmp(&(Reverse(other.priority), other.queued_seq, &other.id))
            // Only identical ids reach this; it keeps the order total for shuffled input.
            .then_with(|| self.cmp(other))
    }
}

/// Everything placement looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Registered workers (schedulable or not).
    pub workers: Vec<Worker>,
    /// Resources already held: running jobs and earlier placements.
    pub allocations: Vec<Allocation>,
    /// Jobs waiting for a worker.
    pub queue: Vec<Job>,
    /// The caller's current time, in the same unit as [`Job::queued_at_ms`].
    pub now_ms: i64,
    /// How long the head of the queue may wait before a worker is held back for it.
    pub starvation_ms: i64,
}

/// A job that no schedulable worker could run even with nothing else on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unplaceable {
    /// The job.
    pub job_id: String,
    /// Which resource or constraint no worker has, for the job's status.
    pub reason: String,
}

/// A worker held back this round for the starving head of the queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The starving job.
    pub job_id: String,
    /// The worker lower-ordered jobs were kept off.
    pub worker_id: String,
    /// Running jobs on that worker that must finish before the job fits, sorted.
    pub blocking: Vec<String>,
}

/// The result of one placement round.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// New allocations to record, in queue order.
    pub placements: Vec<Allocation>,
    /// Jobs no current worker can ever run, in queue order.
    pub unplaceable: Vec<Unplaceable>,
    /// The worker held for a starving job, if any.
    pub reservation: Option<Reservation>,
}

impl Decision {
    /// The placement of a job, if it was placed.
    pub fn placement(&self, job_id: &str) -> Option<&Allocation> {
        self.placements.iter().find(|a| a.job_id == job_id)
    }
}
