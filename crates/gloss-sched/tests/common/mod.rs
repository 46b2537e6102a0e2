//! Generators and reference helpers shared by the property tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use gloss_sched::{Allocation, Gpu, GpuShare, Job, Problem, Request, Worker};
use proptest::prelude::*;

pub const GIB: u64 = 1 << 30;

fn gpu() -> impl Strategy<Value = (&'static str, u64)> {
    (
        prop::sample::select(vec!["A100", "L4"]),
        prop::sample::select(vec![16, 24, 40, 80]),
    )
        .prop_map(|(m, g)| (m, g * GIB))
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    (
        prop::option::of(prop::sample::select(vec!["eu", "us"])),
        prop::bool::ANY,
    )
        .prop_map(|(zone, ssd)| {
            let mut labels = BTreeMap::new();
            if let Some(zone) = zone {
                labels.insert("zone".to_owned(), zone.to_owned());
            }
            if ssd {
                labels.insert("disk".to_owned(), "ssd".to_owned());
            }
            labels
        })
}

fn worker(i: usize) -> impl Strategy<Value = Worker> {
    (
        prop::sample::select(vec![0u64, 2_000, 4_000, 8_000, 8_000, 16_000]),
        prop::sample::select(vec![0u64, 8, 32, 64, 64, 128]),
        prop::collection::vec(gpu(), 0..4),
        labels(),
        prop::bool::weighted(0.85),
    )
        .prop_map(move |(cpu, mem, gpus, labels, schedulable)| {
            let mut w = Worker::new(format!("w{i}"), cpu, mem * GIB).schedulable(schedulable);
            for (model, memory) in gpus {
                w = w.with_gpu(model, memory);
            }
            w.labels = labels;
            w
        })
}

fn allocation(i: usize) -> impl Strategy<Value = Allocation> {
    (
        0..6usize,
        prop::sample::select(vec![0u64, 500, 1_000, 4_000]),
        prop::sample::select(vec![0u64, 1, 8, 32]),
        prop::collection::vec(
            (0..4u32, prop::sample::select(vec![0u64, 8, 16, 40, 80])),
            0..3,
        ),
    )
        .prop_map(move |(w, cpu, mem, gpus)| Allocation {
            job_id: format!("r{i}"),
            worker_id: format!("w{w}"),
            cpu_millis: cpu,
            memory_bytes: mem * GIB,
            gpus: gpus
                .into_iter()
                .map(|(index, g)| GpuShare {
                    index,
                    memory_bytes: g * GIB,
                })
                .collect(),
        })
}

pub fn request() -> impl Strategy<Value = Request> {
    (
        prop::sample::select(vec![0u64, 500, 1_000, 2_000, 4_000, 16_000]),
        prop::sample::select(vec![0u64, 1, 4, 8, 32]),
        prop::sample::select(vec![0u32, 0, 0, 1, 1, 1, 2, 2, 3]),
        prop::sample::select(vec![0u64, 8, 8, 16, 16, 24, 40, 80]),
        prop::option::weighted(0.2, prop::sample::select(vec!["A100", "L4"])),
    )
        .prop_map(|(cpu, mem, count, gmem, model)| {
            let mut r = Request::cpu(cpu, mem * GIB).with_gpus(count, gmem * GIB);
            r.gpu_model = model.map(str::to_owned);
            r
        })
}

fn job() -> impl Strategy<Value = Job> {
    (
        0..12usize,
        0..3i32,
        0..10u64,
        0..1_000i64,
        request(),
        prop::option::weighted(0.2, prop::sample::select(vec!["eu", "us"])),
    )
        .prop_map(|(id, priority, seq, at, request, zone)| {
            // Ids repeat now and then, and `r*` ids collide with running jobs.
            let id = if id == 11 {
                "r0".to_owned()
            } else {
                format!("j{id}")
            };
            let mut job = Job::new(id, seq, request)
                .with_priority(priority)
                .queued_at(at);
            if let Some(zone) = zone {
                job = job.with_constraint("zone", zone);
            }
            job
        })
}

/// Small random clusters: few enough resources that jobs compete, wait and starve.
pub fn problem() -> impl Strategy<Value = Problem> {
    let workers = (1..6usize).prop_flat_map(|n| (0..n).map(worker).collect::<Vec<_>>());
    let allocations = (0..10usize).prop_flat_map(|n| (0..n).map(allocation).collect::<Vec<_>>());
    (
        workers,
        allocations,
        prop::collection::vec(job(), 0..10),
        0..2_000i64,
        0..1_500i64,
    )
        .prop_map(
            |(workers, allocations, queue, now_ms, starvation_ms)| Problem {
                workers,
                allocations,
                queue,
                now_ms,
                starvation_ms,
            },
        )
}

/// The queue as placement considers it: sorted, first of each id, running jobs left out.
pub fn queue_in_order(problem: &Problem) -> Vec<Job> {
    let running: BTreeSet<&str> = problem
        .allocations
        .iter()
        .map(|a| a.job_id.as_str())
        .collect();
    let mut queue: Vec<Job> = problem
        .queue
        .iter()
        .filter(|j| !running.contains(j.id.as_str()))
        .cloned()
        .collect();
    queue.sort_by(|a, b| a.queue_cmp(b));
    let mut seen = BTreeSet::new();
    queue.retain(|j| seen.insert(j.id.clone()));
    queue
}

/// The GPU with this index on the worker (the generators never repeat an index).
pub fn gpu_of(worker: &Worker, index: u32) -> Option<&Gpu> {
    worker.gpus.iter().find(|g| g.index == index)
}

/// GPU memory held on one device by these allocations.
pub fn gpu_used(allocations: &[Allocation], worker: &str, index: u32) -> u64 {
    allocations
        .iter()
        .filter(|a| a.worker_id == worker)
        .flat_map(|a| &a.gpus)
        .filter(|s| s.index == index)
        .map(|s| s.memory_bytes)
        .sum()
}

/// Deterministic Fisher–Yates from a seed (xorshift), for shuffling inputs.
pub fn shuffle<T>(items: &mut [T], seed: &mut u64) {
    for i in (1..items.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let j = (*seed % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}
