//! Contract 5 over time: a large job runs although small jobs keep arriving.
//!
//! Each round the simulation retires small jobs that have run for `duration` rounds, queues
//! `arrivals` new ones, calls `place` and starts what it placed.

use gloss_sched::{place, Allocation, GpuShare, Job, Problem, Request, Worker};
use proptest::prelude::*;

const GIB: u64 = 1 << 30;
const ROUND_MS: i64 = 1_000;

struct Sim {
    workers: Vec<Worker>,
    /// Running allocations with the round they finish in.
    running: Vec<(Allocation, u64)>,
    waiting: Vec<Job>,
    next_seq: u64,
    round: u64,
    small: Request,
    duration: u64,
    starvation_ms: i64,
}

impl Sim {
    fn new(workers: Vec<Worker>, small: Request, duration: u64, starvation_ms: i64) -> Self {
        Self {
            workers,
            running: Vec::new(),
            waiting: Vec::new(),
            next_seq: 0,
            round: 0,
            small,
            duration,
            starvation_ms,
        }
    }

    fn now_ms(&self) -> i64 {
        self.round as i64 * ROUND_MS
    }

    fn enqueue(&mut self, id: String, request: Request) {
        let job = Job::new(id, self.next_seq, request).queued_at(self.now_ms());
        self.next_seq += 1;
        self.waiting.push(job);
    }

    /// Starts a small job directly on a worker, finishing in round `finish`.
    fn preload(&mut self, worker: &str, finish: u64) {
        let id = format!("pre-{}", self.running.len());
        let (cpu, gpus) = (self.small.cpu_millis, self.small.gpu_count);
        let gpus = (0..gpus)
            .map(|i| GpuShare {
                index: i,
                memory_bytes: self.small.gpu_memory_bytes,
            })
            .collect();
        let a = Allocation {
            job_id: id,
            worker_id: worker.to_owned(),
            cpu_millis: cpu,
            memory_bytes: self.small.memory_bytes,
            gpus,
        };
        self.running.push((a, finish));
    }

    /// Runs one round; returns what it placed and the worker held back, if any.
    fn round(&mut self, arrivals: usize) -> (Vec<Allocation>, Option<String>) {
        self.round += 1;
        let round = self.round;
        self.running.retain(|(_, finish)| *finish > round);
        for _ in 0..arrivals {
            let id = format!("small-{}", self.next_seq);
            self.enqueue(id, self.small.clone());
        }
        let problem = Problem {
            workers: self.workers.clone(),
            allocations: self.running.iter().map(|(a, _)| a.clone()).collect(),
            queue: self.waiting.clone(),
            now_ms: self.now_ms(),
            starvation_ms: self.starvation_ms,
        };
        let decision = place(&problem);
        for a in &decision.placements {
            self.waiting.retain(|j| j.id != a.job_id);
            self.running.push((a.clone(), round + self.duration));
        }
        (
            decision.placements,
            decision.reservation.map(|r| r.worker_id),
        )
    }

    /// Rounds until `job` is placed, or `None` within `limit` rounds.
    fn rounds_until_placed(&mut self, job: &str, arrivals: usize, limit: u64) -> Option<u64> {
        let start = self.round;
        while self.round - start < limit {
            let (placed, _) = self.round(arrivals);
            if placed.iter().any(|a| a.job_id == job) {
                return Some(self.round - start);
            }
        }
        None
    }
}

/// Two 4-CPU workers, each running four 1-CPU jobs that finish one per round, and two new 1-CPU
/// jobs every round: a worker never empties unless one is held back.
fn busy_cluster(starvation_ms: i64) -> Sim {
    let workers = vec![
        Worker::new("w1", 4_000, 64 * GIB),
        Worker::new("w2", 4_000, 64 * GIB),
    ];
    let mut sim = Sim::new(workers, Request::cpu(1_000, GIB), 4, starvation_ms);
    for finish in 1..=4 {
        sim.preload("w1", finish);
        sim.preload("w2", finish);
    }
    sim.enqueue("large".to_owned(), Request::cpu(4_000, GIB));
    sim
}

#[test]
fn without_a_reservation_small_jobs_starve_a_large_one() {
    let mut sim = busy_cluster(i64::MAX);
    assert_eq!(sim.rounds_until_placed("large", 2, 200), None);
}

#[test]
fn a_large_job_runs_while_small_jobs_keep_arriving() {
    let mut sim = busy_cluster(3 * ROUND_MS);
    let mut held_rounds = 0;
    let mut backfilled = 0;
    let ran_after = loop {
        let (placed, held) = sim.round(2);
        if placed.iter().any(|a| a.job_id == "large") {
            break sim.round;
        }
        if let Some(held) = held {
            held_rounds += 1;
            assert!(
                placed.iter().all(|a| a.worker_id != held),
                "nothing new on the held worker"
            );
            backfilled += placed.len();
        }
        assert!(sim.round < 50, "the large job never ran");
    };
    // Starving after round 3; the held worker's last small job finishes 4 rounds later.
    assert!(ran_after <= 3 + 1 + 4, "ran in round {ran_after}");
    assert!(
        held_rounds > 0 && backfilled > 0,
        "small jobs kept running on the other worker"
    );
}

#[derive(Debug, Clone)]
struct Scenario {
    slots: Vec<u64>,
    gpu: bool,
    duration: u64,
    arrivals: usize,
    large_round: u64,
    starvation_rounds: i64,
    preload: Vec<Vec<u64>>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(1..5u64, 1..4),
        prop::bool::ANY,
        1..5u64,
        0..4usize,
        0..4u64,
        0..4i64,
    )
        .prop_flat_map(
            |(slots, gpu, duration, arrivals, large_round, starvation_rounds)| {
                let preload = slots
                    .iter()
                    .map(|&s| prop::collection::vec(1..=duration, 0..=s as usize))
                    .collect::<Vec<_>>();
                (
                    Just((
                        slots,
                        gpu,
                        duration,
                        arrivals,
                        large_round,
                        starvation_rounds,
                    )),
                    preload,
                )
            },
        )
        .prop_map(
            |((slots, gpu, duration, arrivals, large_round, starvation_rounds), preload)| {
                Scenario {
                    slots,
                    gpu,
                    duration,
                    arrivals,
                    large_round,
                    starvation_rounds,
                    preload,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Small jobs take one slot (a CPU, or a quarter of the GPU) and run `duration` rounds; the
    /// large job needs the largest worker empty (all its CPUs, or its whole GPU).
    #[test]
    fn a_large_job_always_runs_eventually(s in scenario()) {
        let workers: Vec<Worker> = s.slots.iter().enumerate().map(|(i, &n)| {
            let w = Worker::new(format!("w{i}"), n * 1_000, 64 * GIB);
            if s.gpu { w.with_gpu("A100", n * 20 * GIB) } else { w }
        }).collect();
        let widest = *s.slots.iter().max().unwrap();
        let (small, large) = if s.gpu {
            (Request::cpu(0, GIB).with_gpus(1, 20 * GIB), Request::cpu(0, GIB).with_gpus(1, 0).with_gpu_model("A100"))
        } else {
            (Request::cpu(1_000, GIB), Request::cpu(widest * 1_000, GIB))
        };
        let mut sim = Sim::new(workers, small, s.duration, s.starvation_rounds * ROUND_MS);
        for (i, finishes) in s.preload.iter().enumerate() {
            for &f in finishes {
                sim.preload(&format!("w{i}"), f);
            }
        }
        for _ in 0..s.large_round {
            sim.round(s.arrivals);
        }
        let backlog = sim.waiting.len() as u64;
        sim.enqueue("large".to_owned(), large);
        // Older jobs first, then starvation, then at most `duration` rounds per held worker and
        // running-job count (a held worker only changes for one with fewer jobs, or a smaller id).
        let total_slots: u64 = s.slots.iter().sum();
        let limit = (backlog / total_slots + 2) * s.duration
            + s.starvation_rounds as u64
            + 2
            + s.duration * s.slots.len() as u64 * (widest + 2);
        let took = sim.rounds_until_placed("large", s.arrivals, limit);
        prop_assert!(took.is_some(), "not placed within {} rounds", limit);
    }
}
