//! One placement round: order the queue, place greedily by best fit, hold a worker for a starving
//! head, and explain the jobs no worker can ever run.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::fit::{capable_gpu_count, check, gpu_table, Load};
use crate::model::{
    Allocation, Decision, GpuShare, Job, Problem, Reservation, Unplaceable, Worker,
};
use crate::units::{bytes, cpus, gpu_phrase};

/// Decides where queued jobs run this round. Pure and deterministic; see the crate docs for the
/// contracts it keeps.
pub fn place(problem: &Problem) -> Decision {
    let workers = sorted_workers(&problem.workers);
    let mut held: BTreeMap<&str, Vec<Allocation>> = workers
        .iter()
        .map(|w| (w.id.as_str(), Vec::new()))
        .collect();
    let mut sorted_allocations: Vec<&Allocation> = problem.allocations.iter().collect();
    sorted_allocations.sort();
    for a in sorted_allocations {
        if let Some(list) = held.get_mut(a.worker_id.as_str()) {
            list.push(a.clone());
        }
    }
    let mut loads: BTreeMap<&str, Load> = workers
        .iter()
        .map(|w| (w.id.as_str(), Load::of(w, &held[w.id.as_str()])))
        .collect();

    let mut decision = Decision::default();
    let mut head_seen = false;
    for job in ordered_queue(problem) {
        if !workers
            .iter()
            .any(|w| check(w, &Load::default(), job).is_ok())
        {
            decision.unplaceable.push(Unplaceable {
                job_id: job.id.clone(),
                reason: unplaceable_reason(&workers, job),
            });
            continue;
        }
        let reserved = decision.reservation.as_ref().map(|r| r.worker_id.as_str());
        let best = workers
            .iter()
            .filter(|w| Some(w.id.as_str()) != reserved)
            .filter_map(|w| {
                let load = &loads[w.id.as_str()];
                check(w, load, job)
                    .ok()
                    .map(|shares| (fit_key(w, load, job, &shares), w, shares))
            })
            .min_by(|a, b| a.0.cmp(&b.0));
        if let Some((_, worker, gpus)) = best {
            let allocation = Allocation {
                job_id: job.id.clone(),
                worker_id: worker.id.clone(),
                cpu_millis: job.request.cpu_millis,
                memory_bytes: job.request.memory_bytes,
                gpus,
            };
            loads
                .get_mut(worker.id.as_str())
                .expect("every worker has a load")
                .add(&allocation);
            held.get_mut(worker.id.as_str())
                .expect("every worker has a list")
                .push(allocation.clone());
            decision.placements.push(allocation);
        } else if !head_seen {
            head_seen = true;
            let waited = problem.now_ms.saturating_sub(job.queued_at_ms);
            if waited > problem.starvation_ms {
                decision.reservation = reserve(&workers, &held, job);
            }
        }
    }
    decision
}

/// Workers by id; of several with one id, the smallest entry wins, so input order never matters.
fn sorted_workers(workers: &[Worker]) -> Vec<&Worker> {
    let mut sorted: Vec<&Worker> = workers.iter().collect();
    sorted.sort();
    sorted.dedup_by(|later, first| later.id == first.id);
    sorted
}

/// The queue in [`Job::queue_cmp`] order, without repeated ids and without running jobs.
fn ordered_queue(problem: &Problem) -> Vec<&Job> {
    let running: BTreeSet<&str> = problem
        .allocations
        .iter()
        .map(|a| a.job_id.as_str())
        .collect();
    let mut queue: Vec<&Job> = problem
        .queue
        .iter()
        .filter(|j| !running.contains(j.id.as_str()))
        .collect();
    queue.sort_by(|a, b| a.queue_cmp(b));
    let mut seen = BTreeSet::new();
    queue.retain(|j| seen.insert(j.id.as_str()));
    queue
}

/// How well a job fits a worker; smaller is better.
#[derive(Debug)]
struct FitKey<'a> {
    /// CPU-only job on a GPU worker: kept off GPU capacity when a plain worker will do.
    uses_gpu_worker: bool,
    /// GPU memory left free on the chosen GPUs.
    gpu_left: u128,
    /// Fraction of CPU plus fraction of memory left free.
    cpu_memory_left: f64,
    worker_id: &'a str,
}

impl Ord for FitKey<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.uses_gpu_worker, self.gpu_left)
            .cmp(&(other.uses_gpu_worker, other.gpu_left))
            .then_with(|| self.cpu_memory_left.total_cmp(&other.cpu_memory_left))
            .then_with(|| self.worker_id.cmp(other.worker_id))
    }
}

impl PartialOrd for FitKey<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for FitKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for FitKey<'_> {}

fn fit_key<'a>(worker: &'a Worker, load: &Load, job: &Job, shares: &[GpuShare]) -> FitKey<'a> {
    let table = gpu_table(worker);
    let gpu_left = shares
        .iter()
        .map(|s| {
            let total = table.get(&s.index).map_or(0, |g| g.memory_bytes);
            let used = load.gpus.get(&s.index).map_or(0, |u| u.0);
            u128::from(total.saturating_sub(used).saturating_sub(s.memory_bytes))
        })
        .sum();
    let left = |capacity: u64, used: u64, needed: u64| {
        if capacity == 0 {
            0.0
        } else {
            capacity.saturating_sub(used).saturating_sub(needed) as f64 / capacity as f64
        }
    };
    let r = &job.request;
    FitKey {
        uses_gpu_worker: r.is_cpu_only() && !worker.gpus.is_empty(),
        gpu_left,
        cpu_memory_left: left(worker.cpu_millis, load.cpu_millis, r.cpu_millis)
            + left(worker.memory_bytes, load.memory_bytes, r.memory_bytes),
        worker_id: &worker.id,
    }
}

/// The worker where the fewest running jobs must finish before `job` fits, ties by id.
///
/// On each capable worker, running jobs are released largest first (by their largest share of any
/// one resource, ties by job id) until the job fits. That order depends only on the allocation, so
/// a job finishing never raises a worker's count: while a worker is held, its count only falls.
fn reserve(
    workers: &[&Worker],
    held: &BTreeMap<&str, Vec<Allocation>>,
    job: &Job,
) -> Option<Reservation> {
    let mut best: Option<(usize, Reservation)> = None;
    for worker in workers {
        if check(worker, &Load::default(), job).is_err() {
            continue;
        }
        let mut running: Vec<&Allocation> = held[worker.id.as_str()].iter().collect();
        running.sort_by(|a, b| {
            dominant_share(worker, b)
                .total_cmp(&dominant_share(worker, a))
                .then_with(|| a.cmp(b))
        });
        let blocking = (0..=running.len())
            .find(|&k| check(worker, &Load::of(worker, running[k..].iter().copied()), job).is_ok())
            .unwrap_or(running.len());
        if best.as_ref().is_none_or(|(n, _)| blocking < *n) {
            let mut ids: Vec<String> = running[..blocking]
                .iter()
                .map(|a| a.job_id.clone())
                .collect();
            ids.sort();
            let reservation = Reservation {
                job_id: job.id.clone(),
                worker_id: worker.id.clone(),
                blocking: ids,
            };
            best = Some((blocking, reservation));
        }
    }
    best.map(|(_, r)| r)
}

/// The largest fraction of any one of the worker's resources the allocation holds.
fn dominant_share(worker: &Worker, a: &Allocation) -> f64 {
    let frac = |held: u64, total: u64| {
        if total == 0 {
            0.0
        } else {
            held as f64 / total as f64
        }
    };
    let table = gpu_table(worker);
    a.gpus
        .iter()
        .map(|s| {
            frac(
                s.memory_bytes,
                table.get(&s.index).map_or(0, |g| g.memory_bytes),
            )
        })
        .fold(
            frac(a.cpu_millis, worker.cpu_millis).max(frac(a.memory_bytes, worker.memory_bytes)),
            f64::max,
        )
}

/// Names the first requirement no schedulable worker meets, narrowing worker by worker.
fn unplaceable_reason(workers: &[&Worker], job: &Job) -> String {
    let r = &job.request;
    let mut pool: Vec<&Worker> = workers.iter().copied().filter(|w| w.schedulable).collect();
    if pool.is_empty() {
        return "no schedulable workers".to_owned();
    }
    pool.retain(|w| {
        job.constraints
            .iter()
            .all(|(k, v)| w.labels.get(k) == Some(v))
    });
    if pool.is_empty() {
        let labels: Vec<String> = job
            .constraints
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        return format!("no schedulable worker has labels {}", labels.join(", "));
    }
    let mut narrowed_by: Vec<&str> = Vec::new();
    if !r.is_cpu_only() {
        let most = pool
            .iter()
            .map(|w| capable_gpu_count(w, r))
            .max()
            .unwrap_or(0);
        if most < r.gpu_count {
            let wanted = gpu_phrase(r.gpu_count, r.gpu_memory_bytes, r.gpu_model.as_deref());
            return format!("needs {wanted}; the best-equipped worker has {most}");
        }
        narrow(&mut pool, &mut narrowed_by, "GPUs", |w| {
            capable_gpu_count(w, r) >= r.gpu_count
        });
    }
    let qualifier = |narrowed_by: &[&str]| match narrowed_by {
        [] => "the largest worker".to_owned(),
        _ => format!(
            "the largest worker with enough {}",
            narrowed_by.join(" and ")
        ),
    };
    let most_cpu = pool.iter().map(|w| w.cpu_millis).max().unwrap_or(0);
    if most_cpu < r.cpu_millis {
        return format!(
            "needs {}; {} has {}",
            cpus(r.cpu_millis),
            qualifier(&narrowed_by),
            cpus(most_cpu)
        );
    }
    narrow(&mut pool, &mut narrowed_by, "CPU", |w| {
        w.cpu_millis >= r.cpu_millis
    });
    let most_memory = pool.iter().map(|w| w.memory_bytes).max().unwrap_or(0);
    format!(
        "needs {} memory; {} has {}",
        bytes(r.memory_bytes),
        qualifier(&narrowed_by),
        bytes(most_memory)
    )
}

/// Keeps the workers passing `keep`, noting `what` when that removed any.
fn narrow<'a>(
    pool: &mut Vec<&Worker>,
    narrowed_by: &mut Vec<&'a str>,
    what: &'a str,
    keep: impl Fn(&Worker) -> bool,
) {
    let before = pool.len();
    pool.retain(|w| keep(w));
    if pool.len() < before {
        narrowed_by.push(what);
    }
}
