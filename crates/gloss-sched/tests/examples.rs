//! Worked examples, one per rule, with the exact status messages users see.

use gloss_sched::{fits, place, Allocation, GpuShare, Job, Problem, Request, Shortfall, Worker};

const GIB: u64 = 1 << 30;

fn problem(workers: Vec<Worker>, allocations: Vec<Allocation>, queue: Vec<Job>) -> Problem {
    Problem {
        workers,
        allocations,
        queue,
        now_ms: 0,
        starvation_ms: 60_000,
    }
}

fn running(job: &str, worker: &str, cpu: u64, gpus: &[(u32, u64)]) -> Allocation {
    Allocation {
        job_id: job.into(),
        worker_id: worker.into(),
        cpu_millis: cpu,
        memory_bytes: GIB,
        gpus: gpus
            .iter()
            .map(|&(index, g)| GpuShare {
                index,
                memory_bytes: g * GIB,
            })
            .collect(),
    }
}

fn gpu_job(id: &str, seq: u64, count: u32, gib_each: u64) -> Job {
    Job::new(
        id,
        seq,
        Request::cpu(1_000, GIB).with_gpus(count, gib_each * GIB),
    )
}

fn worker_of<'a>(d: &'a gloss_sched::Decision, job: &str) -> Option<&'a str> {
    d.placement(job).map(|a| a.worker_id.as_str())
}

#[test]
fn gpu_jobs_share_a_gpu_only_within_its_memory() {
    let w = Worker::new("g", 16_000, 64 * GIB).with_gpu("A100", 80 * GIB);
    let queue = vec![
        gpu_job("a", 1, 1, 40),
        gpu_job("b", 2, 1, 30),
        gpu_job("c", 3, 1, 20),
    ];
    let d = place(&problem(vec![w.clone()], vec![], queue.clone()));
    assert_eq!(
        d.placement("a").unwrap().gpus,
        vec![GpuShare {
            index: 0,
            memory_bytes: 40 * GIB
        }]
    );
    assert_eq!(d.placement("b").unwrap().gpu_indices(), vec![0]);
    assert!(d.placement("c").is_none(), "70 + 20 GiB exceeds 80 GiB");
    let why = fits(&w, &d.placements, &queue[2]).unwrap_err();
    assert_eq!(
        why.to_string(),
        "needs 1 GPU with 20 GiB GPU memory; 0 of the worker's 1 such GPUs have room now"
    );
}

#[test]
fn whole_gpu_requests_take_only_unheld_gpus_and_keep_them() {
    let w = Worker::new("g", 16_000, 64 * GIB)
        .with_gpu("L4", 24 * GIB)
        .with_gpu("L4", 24 * GIB);
    let held = running("r", "g", 1_000, &[(0, 1)]);
    let queue = vec![gpu_job("whole", 1, 1, 0), gpu_job("small", 2, 1, 1)];
    let d = place(&problem(vec![w.clone()], vec![held.clone()], queue.clone()));
    assert_eq!(
        d.placement("whole").unwrap().gpus,
        vec![GpuShare {
            index: 1,
            memory_bytes: 24 * GIB
        }]
    );
    assert_eq!(
        d.placement("small").unwrap().gpu_indices(),
        vec![0],
        "the whole GPU is not shared"
    );
    let why = fits(
        &w,
        &[held, d.placements[0].clone(), d.placements[1].clone()],
        &gpu_job("w2", 3, 1, 0),
    );
    assert_eq!(
        why.unwrap_err().to_string(),
        "needs 1 whole GPU; 0 of the worker's 2 such GPUs have room now"
    );
}

#[test]
fn gpu_jobs_take_the_gpu_and_worker_left_fullest() {
    let big = Worker::new("big", 16_000, 64 * GIB).with_gpu("A100", 80 * GIB);
    let mixed = Worker::new("mixed", 16_000, 64 * GIB)
        .with_gpu("A100", 80 * GIB)
        .with_gpu("L4", 24 * GIB)
        .with_gpu("A100", 40 * GIB);
    // 20 GiB leaves 60 GiB on an A100, 4 GiB on the L4, and 10 GiB on GPU 2 (which holds 10 GiB).
    let held = running("r", "mixed", 1_000, &[(2, 10)]);
    let d = place(&problem(
        vec![big.clone(), mixed.clone()],
        vec![held.clone()],
        vec![gpu_job("a", 1, 1, 20)],
    ));
    assert_eq!(d.placement("a").unwrap().gpu_indices(), vec![1]);
    assert_eq!(worker_of(&d, "a"), Some("mixed"));
    // Two GPUs: the L4 (4 GiB left) and GPU 2 (10 GiB left), best first.
    assert_eq!(
        fits(&mixed, &[held], &gpu_job("b", 2, 2, 20)),
        Ok(vec![1, 2])
    );
    // With a model, only that model counts.
    let a100 = Job::new(
        "c",
        3,
        Request::cpu(0, 0)
            .with_gpus(1, 20 * GIB)
            .with_gpu_model("A100"),
    );
    assert_eq!(fits(&mixed, &[], &a100), Ok(vec![2]));
}

#[test]
fn cpu_jobs_prefer_plain_workers_and_best_fit() {
    let gpu = Worker::new("gpu", 4_000, 16 * GIB).with_gpu("L4", 24 * GIB);
    let small = Worker::new("small", 4_000, 16 * GIB);
    let large = Worker::new("large", 32_000, 128 * GIB);
    let workers = vec![gpu.clone(), small, large];
    let d = place(&problem(
        workers.clone(),
        vec![],
        vec![Job::new("a", 1, Request::cpu(2_000, 8 * GIB))],
    ));
    assert_eq!(worker_of(&d, "a"), Some("small"), "tightest plain worker");
    let d = place(&problem(
        workers,
        vec![],
        vec![Job::new("b", 1, Request::cpu(16_000, 8 * GIB))],
    ));
    assert_eq!(worker_of(&d, "b"), Some("large"));
    // Only the GPU worker has room: it is used rather than leaving the job waiting.
    let busy = vec![
        running("r1", "small", 4_000, &[]),
        running("r2", "large", 32_000, &[]),
    ];
    let d = place(&problem(
        vec![
            gpu,
            Worker::new("small", 4_000, 16 * GIB),
            Worker::new("large", 32_000, 128 * GIB),
        ],
        busy,
        vec![Job::new("c", 1, Request::cpu(1_000, GIB))],
    ));
    assert_eq!(worker_of(&d, "c"), Some("gpu"));
}

#[test]
fn constraints_models_and_cordons_are_respected() {
    let eu = Worker::new("eu", 8_000, 32 * GIB)
        .with_label("zone", "eu")
        .with_gpu("L4", 24 * GIB);
    let us = Worker::new("us", 8_000, 32 * GIB)
        .with_label("zone", "us")
        .with_gpu("A100", 80 * GIB);
    let cordoned = Worker::new("off", 64_000, 512 * GIB)
        .with_label("zone", "eu")
        .schedulable(false);
    let in_eu = Job::new("a", 1, Request::cpu(1_000, GIB)).with_constraint("zone", "eu");
    let a100_in_eu = Job::new(
        "b",
        2,
        Request::cpu(0, 0)
            .with_gpus(1, 8 * GIB)
            .with_gpu_model("A100"),
    )
    .with_constraint("zone", "eu");
    let in_mars = Job::new("c", 3, Request::cpu(0, 0)).with_constraint("zone", "mars");
    let d = place(&problem(
        vec![eu.clone(), us.clone(), cordoned.clone()],
        vec![],
        vec![in_eu.clone(), a100_in_eu.clone(), in_mars],
    ));
    assert_eq!(worker_of(&d, "a"), Some("eu"));
    assert_eq!(d.unplaceable.len(), 2);
    assert_eq!(
        d.unplaceable[0].reason,
        "needs 1 A100 GPU with 8 GiB GPU memory; the best-equipped worker has 0"
    );
    assert_eq!(
        d.unplaceable[1].reason,
        "no schedulable worker has labels zone=mars"
    );
    assert_eq!(fits(&cordoned, &[], &in_eu), Err(Shortfall::Unschedulable));
    assert_eq!(
        fits(&us, &[], &in_eu).unwrap_err().to_string(),
        "needs label zone=eu; worker has zone=us"
    );
    let no_workers = place(&problem(vec![cordoned], vec![], vec![in_eu]));
    assert_eq!(no_workers.unplaceable[0].reason, "no schedulable workers");
}

#[test]
fn unplaceable_reasons_name_the_missing_resource() {
    let w1 = Worker::new("w1", 32_000, 128 * GIB).with_gpu("A100", 80 * GIB);
    let w2 = Worker::new("w2", 8_000, 512 * GIB)
        .with_gpu("A100", 80 * GIB)
        .with_gpu("A100", 80 * GIB);
    let queue = vec![
        gpu_job("two", 1, 2, 80),
        gpu_job("three", 2, 3, 80),
        Job::new("cpu", 3, Request::cpu(64_000, GIB)),
        Job::new("mem", 4, Request::cpu(16_000, 256 * GIB)),
        Job::new(
            "gpu-cpu",
            5,
            Request::cpu(16_000, GIB).with_gpus(2, 40 * GIB),
        ),
    ];
    let d = place(&problem(vec![w1, w2], vec![], queue));
    let reasons: Vec<(&str, &str)> = d
        .unplaceable
        .iter()
        .map(|u| (u.job_id.as_str(), u.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (
                "three",
                "needs 3 GPUs with 80 GiB GPU memory each; the best-equipped worker has 2"
            ),
            ("cpu", "needs 64 CPUs; the largest worker has 32 CPUs"),
            (
                "mem",
                "needs 256 GiB memory; the largest worker with enough CPU has 128 GiB"
            ),
            (
                "gpu-cpu",
                "needs 16 CPUs; the largest worker with enough GPUs has 8 CPUs"
            ),
        ]
    );
    assert_eq!(worker_of(&d, "two"), Some("w2"));
}

#[test]
fn fits_prefers_reporting_what_waiting_cannot_cure() {
    let w = Worker::new("w", 4_000, 16 * GIB);
    let busy = [running("r", "w", 3_500, &[])];
    let cpu = Job::new("a", 1, Request::cpu(1_000, GIB));
    let why = fits(&w, &busy, &cpu).unwrap_err();
    assert!(why.is_transient());
    assert_eq!(why.to_string(), "needs 1 CPU; 0.5 CPUs free of 4 CPUs");
    let both = Job::new("b", 2, Request::cpu(1_000, 32 * GIB));
    let why = fits(&w, &busy, &both).unwrap_err();
    assert!(!why.is_transient());
    assert_eq!(
        why.to_string(),
        "needs 32 GiB memory; the worker has 16 GiB"
    );
    // Allocations on other workers do not count.
    assert_eq!(
        fits(&w, &[running("r", "elsewhere", 4_000, &[])], &cpu),
        Ok(vec![])
    );
}

#[test]
fn higher_priority_first_then_fifo() {
    let w = Worker::new("w", 2_000, 16 * GIB);
    let one_cpu = |id: &str, seq: u64, prio: i32| {
        Job::new(id, seq, Request::cpu(1_000, GIB)).with_priority(prio)
    };
    let queue = vec![
        one_cpu("late", 9, 0),
        one_cpu("urgent", 10, 5),
        one_cpu("early", 1, 0),
    ];
    let d = place(&problem(vec![w], vec![], queue));
    let placed: Vec<&str> = d.placements.iter().map(|a| a.job_id.as_str()).collect();
    assert_eq!(placed, vec!["urgent", "early"]);
}

#[test]
fn running_jobs_and_repeated_ids_are_placed_once() {
    let w = Worker::new("w", 8_000, 16 * GIB);
    let r = running("a", "w", 1_000, &[]);
    let queue = vec![
        Job::new("a", 1, Request::cpu(1_000, GIB)),
        Job::new("b", 2, Request::cpu(1_000, GIB)),
        Job::new("b", 3, Request::cpu(1_000, GIB)),
    ];
    let d = place(&problem(vec![w], vec![r], queue));
    let placed: Vec<&str> = d.placements.iter().map(|a| a.job_id.as_str()).collect();
    assert_eq!(placed, vec!["b"]);
}

#[test]
fn an_over_committed_worker_receives_nothing() {
    // A worker that re-registered smaller than what runs on it takes not even an empty job.
    let w = Worker::new("w", 1_000, GIB);
    let d = place(&problem(
        vec![w],
        vec![running("r", "w", 2_000, &[])],
        vec![Job::new("z", 1, Request::cpu(0, 0))],
    ));
    assert!(d.placements.is_empty());
}

#[test]
fn a_starving_head_holds_the_worker_that_frees_soonest_and_others_backfill() {
    let w1 = Worker::new("w1", 4_000, 16 * GIB);
    let w2 = Worker::new("w2", 4_000, 16 * GIB);
    let allocations = vec![
        running("r1", "w1", 1_000, &[]),
        running("r2", "w1", 1_000, &[]),
        running("r3", "w2", 3_000, &[]),
    ];
    let big = Job::new("big", 1, Request::cpu(4_000, GIB)).queued_at(0);
    let small = Job::new("small", 2, Request::cpu(1_000, GIB)).queued_at(0);
    let mut p = problem(vec![w1, w2], allocations, vec![big, small]);

    // Not starving yet: the small job takes the best fit, w2 (no CPU left).
    p.now_ms = 60_000;
    let d = place(&p);
    assert_eq!(d.reservation, None);
    assert_eq!(worker_of(&d, "small"), Some("w2"));

    // Starving: w2 needs one job to finish (w1 two), so w2 is held and the small job backfills w1.
    p.now_ms = 60_001;
    let d = place(&p);
    let r = d.reservation.as_ref().unwrap();
    assert_eq!((r.job_id.as_str(), r.worker_id.as_str()), ("big", "w2"));
    assert_eq!(r.blocking, vec!["r3".to_owned()]);
    assert_eq!(worker_of(&d, "small"), Some("w1"));
}
