//! Whether one job fits on one worker now, which GPUs it would take, and why not.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{Allocation, Gpu, GpuShare, Job, Request, Worker};
use crate::units::{bytes, cpus, gpu_phrase};

/// Why a job does not fit on a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shortfall {
    /// The worker is cordoned or draining.
    Unschedulable,
    /// A constraint names a label the worker lacks or has with another value.
    Label {
        /// The label key.
        key: String,
        /// The value the job requires.
        wanted: String,
        /// The worker's value, if it has the key.
        found: Option<String>,
    },
    /// Not enough suitable GPUs (model, memory, or free).
    Gpus {
        /// GPUs requested.
        needed: u32,
        /// GPU memory per GPU requested (0: whole GPUs).
        memory_bytes: u64,
        /// GPU model requested.
        model: Option<String>,
        /// Suitable GPUs with room for the job now.
        free: u32,
        /// Suitable GPUs the worker has at all.
        capable: u32,
    },
    /// Not enough CPU.
    Cpu {
        /// CPU requested, in thousandths of a core.
        needed: u64,
        /// CPU not held by other jobs.
        free: u64,
        /// The worker's total CPU.
        capacity: u64,
    },
    /// Not enough memory.
    Memory {
        /// Memory requested.
        needed: u64,
        /// Memory not held by other jobs.
        free: u64,
        /// The worker's total memory.
        capacity: u64,
    },
}

impl Shortfall {
    /// Whether the job would fit on this worker once enough running work finishes.
    pub fn is_transient(&self) -> bool {
        match self {
            Shortfall::Unschedulable | Shortfall::Label { .. } => false,
            Shortfall::Gpus {
                needed, capable, ..
            } => capable >= needed,
            Shortfall::Cpu {
                needed, capacity, ..
            }
            | Shortfall::Memory {
                needed, capacity, ..
            } => needed <= capacity,
        }
    }
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transient = self.is_transient();
        match self {
            Shortfall::Unschedulable => write!(f, "worker is not schedulable"),
            Shortfall::Label { key, wanted, found } => match found {
                Some(found) => write!(f, "needs label {key}={wanted}; worker has {key}={found}"),
                None => write!(f, "needs label {key}={wanted}; worker has no {key} label"),
            },
            Shortfall::Gpus {
                needed,
                memory_bytes,
                model,
                free,
                capable,
            } => {
                let wanted = gpu_phrase(*needed, *memory_bytes, model.as_deref());
                if transient {
                    write!(
                        f,
                        "needs {wanted}; {free} of the worker's {capable} such GPUs have room now"
                    )
                } else {
                    write!(f, "needs {wanted}; the worker has {capable}")
                }
            }
            Shortfall::Cpu {
                needed,
                free,
                capacity,
            } => {
                if transient {
                    write!(
                        f,
                        "needs {}; {} free of {}",
                        cpus(*needed),
                        cpus(*free),
                        cpus(*capacity)
                    )
                } else {
                    write!(
                        f,
                        "needs {}; the worker has {}",
                        cpus(*needed),
                        cpus(*capacity)
                    )
                }
            }
            Shortfall::Memory {
                needed,
                free,
                capacity,
            } => {
                if transient {
                    write!(
                        f,
                        "needs {} memory; {} free of {}",
                        bytes(*needed),
                        bytes(*free),
                        bytes(*capacity)
                    )
                } else {
                    write!(
                        f,
                        "needs {} memory; the worker has {}",
                        bytes(*needed),
                        bytes(*capacity)
                    )
                }
            }
        }
    }
}

impl std::error::Error for Shortfall {}

/// Checks whether `job` fits on `worker` next to `allocations` and picks its GPUs by best fit.
///
/// Only allocations whose `worker_id` is the worker's count, so all allocations may be passed.
/// On success the GPU indices are the suitable GPUs that would be left with the least free memory
/// (ties by index); on failure the [`Shortfall`] names the resource, preferring one that waiting
/// cannot cure (see [`Shortfall::is_transient`]).
pub fn fits(worker: &Worker, allocations: &[Allocation], job: &Job) -> Result<Vec<u32>, Shortfall> {
    let load = Load::of(worker, allocations);
    check(worker, &load, job).map(|shares| shares.iter().map(|s| s.index).collect())
}

/// What the allocations on one worker hold.
#[derive(Clone, Debug, Default)]
pub(crate) struct Load {
    pub(crate) cpu_millis: u64,
    pub(crate) memory_bytes: u64,
    /// Per device index: bytes held and number of holders.
    pub(crate) gpus: BTreeMap<u32, (u64, u32)>,
}

impl Load {
    /// The load of the allocations on `worker`.
    pub(crate) fn of<'a>(
        worker: &Worker,
        allocations: impl IntoIterator<Item = &'a Allocation>,
    ) -> Self {
        let mut load = Self::default();
        for a in allocations.into_iter().filter(|a| a.worker_id == worker.id) {
            load.add(a);
        }
        load
    }

    /// Adds one allocation. Sums saturate, so an absurd load fits nothing rather than wrapping.
    pub(crate) fn add(&mut self, a: &Allocation) {
        self.cpu_millis = self.cpu_millis.saturating_add(a.cpu_millis);
        self.memory_bytes = self.memory_bytes.saturating_add(a.memory_bytes);
        for share in &a.gpus {
            let entry = self.gpus.entry(share.index).or_default();
            entry.0 = entry.0.saturating_add(share.memory_bytes);
            entry.1 = entry.1.saturating_add(1);
        }
    }

    fn gpu(&self, index: u32) -> (u64, u32) {
        self.gpus.get(&index).copied().unwrap_or((0, 0))
    }
}

/// The worker's GPUs by index; a duplicated index keeps its smallest entry.
pub(crate) fn gpu_table(worker: &Worker) -> BTreeMap<u32, &Gpu> {
    let mut table: BTreeMap<u32, &Gpu> = BTreeMap::new();
    for gpu in &worker.gpus {
        table
            .entry(gpu.index)
            .and_modify(|kept| *kept = (*kept).min(gpu))
            .or_insert(gpu);
    }
    table
}

/// Whether `used + needed` stays within `capacity`.
fn within(used: u64, needed: u64, capacity: u64) -> bool {
    used.checked_add(needed)
        .is_some_and(|total| total <= capacity)
}

/// Whether a GPU is of the requested model and large enough for the request on its own.
fn gpu_capable(gpu: &Gpu, request: &Request) -> bool {
    let model_ok = request.gpu_model.as_deref().is_none_or(|m| m == gpu.model);
    model_ok && (request.wants_whole_gpus() || gpu.memory_bytes >= request.gpu_memory_bytes)
}

/// How many of the worker's GPUs could hold one GPU's worth of the request when idle.
pub(crate) fn capable_gpu_count(worker: &Worker, request: &Request) -> u32 {
    count(
        gpu_table(worker)
            .into_values()
            .filter(|g| gpu_capable(g, request))
            .count(),
    )
}

/// The core check shared by [`fits`] and [`crate::place`].
pub(crate) fn check(worker: &Worker, load: &Load, job: &Job) -> Result<Vec<GpuShare>, Shortfall> {
    if !worker.schedulable {
        return Err(Shortfall::Unschedulable);
    }
    for (key, wanted) in &job.constraints {
        let found = worker.labels.get(key);
        if found != Some(wanted) {
            return Err(Shortfall::Label {
                key: key.clone(),
                wanted: wanted.clone(),
                found: found.cloned(),
            });
        }
    }
    let request = &job.request;
    let (shares, gpu_short) = pick_gpus(worker, load, request);
    let mut shortfalls = Vec::new();
    shortfalls.extend(gpu_short);
    if !within(load.cpu_millis, request.cpu_millis, worker.cpu_millis) {
        shortfalls.push(Shortfall::Cpu {
            needed: request.cpu_millis,
            free: worker.cpu_millis.saturating_sub(load.cpu_millis),
            capacity: worker.cpu_millis,
        });
    }
    if !within(load.memory_bytes, request.memory_bytes, worker.memory_bytes) {
        shortfalls.push(Shortfall::Memory {
            needed: request.memory_bytes,
            free: worker.memory_bytes.saturating_sub(load.memory_bytes),
            capacity: worker.memory_bytes,
        });
    }
    if shortfalls.is_empty() {
        return Ok(shares);
    }
    let pick = shortfalls
        .iter()
        .position(|s| !s.is_transient())
        .unwrap_or(0);
    Err(shortfalls.swap_remove(pick))
}

/// Best-fit GPU choice: the suitable GPUs with room, least free memory left after, then index.
fn pick_gpus(
    worker: &Worker,
    load: &Load,
    request: &Request,
) -> (Vec<GpuShare>, Option<Shortfall>) {
    if request.is_cpu_only() {
        return (Vec::new(), None);
    }
    let capable: Vec<&Gpu> = gpu_table(worker)
        .into_values()
        .filter(|g| gpu_capable(g, request))
        .collect();
    // (free memory left after, index, bytes to reserve)
    let mut room: Vec<(u64, u32, u64)> = capable
        .iter()
        .filter_map(|g| {
            let (used, holders) = load.gpu(g.index);
            if request.wants_whole_gpus() {
                (holders == 0).then_some((0, g.index, g.memory_bytes))
            } else if within(used, request.gpu_memory_bytes, g.memory_bytes) {
                let left = g.memory_bytes - used - request.gpu_memory_bytes;
                Some((left, g.index, request.gpu_memory_bytes))
            } else {
                None
            }
        })
        .collect();
    let needed = request.gpu_count as usize;
    if room.len() < needed {
        let short = Shortfall::Gpus {
            needed: request.gpu_count,
            memory_bytes: request.gpu_memory_bytes,
            model: request.gpu_model.clone(),
            free: count(room.len()),
            capable: count(capable.len()),
        };
        return (Vec::new(), Some(short));
    }
    room.sort_unstable();
    let shares = room[..needed]
        .iter()
        .map(|&(_, index, memory_bytes)| GpuShare {
            index,
            memory_bytes,
        })
        .collect();
    (shares, None)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
