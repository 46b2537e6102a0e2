//! One property test per contract in the crate docs, over small random clusters.

mod common;

use common::{gpu_of, gpu_used, problem, queue_in_order, shuffle};
use gloss_sched::{fits, place, Allocation, Decision, Job, Problem, Worker};
use proptest::prelude::*;

fn worker<'a>(problem: &'a Problem, id: &str) -> &'a Worker {
    problem
        .workers
        .iter()
        .find(|w| w.id == id)
        .expect("placed on a known worker")
}

/// Existing allocations plus the placements of jobs before position `upto` of the ordered queue.
fn state_before(
    problem: &Problem,
    decision: &Decision,
    order: &[Job],
    upto: usize,
) -> Vec<Allocation> {
    let mut state = problem.allocations.clone();
    for job in &order[..upto] {
        state.extend(decision.placement(&job.id).cloned());
    }
    state
}

/// Workers a job could have gone to: all of them, except the reserved one for jobs behind its holder.
fn open_workers<'a>(
    problem: &'a Problem,
    decision: &Decision,
    order: &[Job],
    at: usize,
) -> Vec<&'a Worker> {
    let holder = decision.reservation.as_ref().map(|r| {
        (
            order.iter().position(|j| j.id == r.job_id).unwrap(),
            r.worker_id.as_str(),
        )
    });
    problem
        .workers
        .iter()
        .filter(|w| !matches!(holder, Some((pos, id)) if at > pos && w.id == id))
        .collect()
}

/// GPU memory left free on the given GPUs if `job` took them next to `state`.
fn gpu_left(worker: &Worker, state: &[Allocation], job: &Job, gpus: &[u32]) -> u64 {
    gpus.iter()
        .map(|&i| {
            let g = gpu_of(worker, i).unwrap();
            let need = if job.request.wants_whole_gpus() {
                g.memory_bytes
            } else {
                job.request.gpu_memory_bytes
            };
            g.memory_bytes - gpu_used(state, &worker.id, i) - need
        })
        .sum()
}

fn check_reservation(p: &Problem) -> Result<(), TestCaseError> {
    let d = place(p);
    let order = queue_in_order(p);
    let never: Vec<&str> = d.unplaceable.iter().map(|u| u.job_id.as_str()).collect();
    let head = order
        .iter()
        .position(|j| d.placement(&j.id).is_none() && !never.contains(&j.id.as_str()));
    let starving =
        head.filter(|&h| p.now_ms.saturating_sub(order[h].queued_at_ms) > p.starvation_ms);
    prop_assert_eq!(d.reservation.is_some(), starving.is_some());
    let (Some(r), Some(h)) = (&d.reservation, starving) else {
        return Ok(());
    };
    prop_assert_eq!(&r.job_id, &order[h].id);
    let held = worker(p, &r.worker_id);
    for behind in &order[h + 1..] {
        if let Some(placed) = d.placement(&behind.id) {
            prop_assert_ne!(
                &placed.worker_id,
                &held.id,
                "{} was placed on the held worker",
                behind.id
            );
        }
    }
    // Once the blocking jobs finish, the head fits there.
    let state = state_before(p, &d, &order, h);
    let mut freed = state.clone();
    freed.retain(|a| !(a.worker_id == held.id && r.blocking.contains(&a.job_id)));
    prop_assert_eq!(
        state.len() - freed.len(),
        r.blocking.len(),
        "blocking jobs run on the held worker"
    );
    prop_assert!(fits(held, &freed, &order[h]).is_ok());
    // No worker that could ever run the head has fewer running jobs than must finish.
    for w in p.workers.iter().filter(|w| fits(w, &[], &order[h]).is_ok()) {
        let running = state.iter().filter(|a| a.worker_id == w.id).count();
        prop_assert!(
            running >= r.blocking.len(),
            "{} runs only {} jobs; {:?} held",
            w.id,
            running,
            r
        );
    }
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn placements_never_over_commit_a_worker_or_gpu(p in problem()) {
        let d = place(&p);
        let order = queue_in_order(&p);
        let mut all = p.allocations.clone();
        all.extend(d.placements.iter().cloned());
        for placed in &d.placements {
            let w = worker(&p, &placed.worker_id);
            let on_w = all.iter().filter(|a| a.worker_id == w.id);
            prop_assert!(on_w.clone().map(|a| u128::from(a.cpu_millis)).sum::<u128>() <= u128::from(w.cpu_millis));
            prop_assert!(on_w.map(|a| u128::from(a.memory_bytes)).sum::<u128>() <= u128::from(w.memory_bytes));
            let job = order.iter().find(|j| j.id == placed.job_id).unwrap();
            let mut indices = placed.gpu_indices();
            indices.sort_unstable();
            indices.dedup();
            prop_assert_eq!(indices.len(), job.request.gpu_count as usize, "distinct GPUs, as many as asked");
            for share in &placed.gpus {
                let g = gpu_of(w, share.index);
                prop_assert!(g.is_some(), "GPU {} exists on {}", share.index, w.id);
                let g = g.unwrap();
                prop_assert!(gpu_used(&all, &w.id, share.index) <= g.memory_bytes, "GPU {} over-committed", share.index);
                if job.request.wants_whole_gpus() {
                    let holders = all.iter().filter(|a| a.worker_id == w.id && a.gpus.iter().any(|s| s.index == share.index)).count();
                    prop_assert_eq!(holders, 1, "a whole GPU is not shared");
                    prop_assert_eq!(share.memory_bytes, g.memory_bytes);
                } else {
                    prop_assert_eq!(share.memory_bytes, job.request.gpu_memory_bytes);
                }
            }
        }
    }

    #[test]
    fn placements_respect_labels_gpu_models_and_cordons(p in problem()) {
        let d = place(&p);
        let order = queue_in_order(&p);
        for placed in &d.placements {
            let w = worker(&p, &placed.worker_id);
            let job = order.iter().find(|j| j.id == placed.job_id).unwrap();
            prop_assert!(w.schedulable);
            for (k, v) in &job.constraints {
                prop_assert_eq!(w.labels.get(k), Some(v));
            }
            if let (Some(model), false) = (&job.request.gpu_model, job.request.is_cpu_only()) {
                for i in placed.gpu_indices() {
                    prop_assert_eq!(&gpu_of(w, i).unwrap().model, model);
                }
            }
        }
        if let Some(r) = &d.reservation {
            prop_assert!(worker(&p, &r.worker_id).schedulable);
        }
    }

    #[test]
    fn placements_are_best_fit(p in problem()) {
        let d = place(&p);
        let order = queue_in_order(&p);
        for (at, job) in order.iter().enumerate() {
            let Some(placed) = d.placement(&job.id) else { continue };
            let state = state_before(&p, &d, &order, at);
            let chosen = worker(&p, &placed.worker_id);
            let alternatives: Vec<(&Worker, Vec<u32>)> = open_workers(&p, &d, &order, at)
                .into_iter()
                .filter_map(|w| fits(w, &state, job).ok().map(|g| (w, g)))
                .collect();
            if job.request.is_cpu_only() {
                if !chosen.gpus.is_empty() {
                    prop_assert!(alternatives.iter().all(|(w, _)| !w.gpus.is_empty()), "a plain worker was free");
                }
                continue;
            }
            let mine = gpu_left(chosen, &state, job, &placed.gpu_indices());
            for (w, gpus) in &alternatives {
                prop_assert!(mine <= gpu_left(w, &state, job, gpus), "{} leaves less GPU memory free than {}", w.id, chosen.id);
            }
            // Within the worker: no unchosen suitable GPU would have been left fuller.
            let worst_chosen = placed.gpu_indices().iter().map(|&i| gpu_left(chosen, &state, job, &[i])).max().unwrap();
            for g in &chosen.gpus {
                if placed.gpu_indices().contains(&g.index) {
                    continue;
                }
                let mut one = job.clone();
                one.request.gpu_count = 1;
                let alone = Worker { gpus: vec![g.clone()], cpu_millis: u64::MAX, memory_bytes: u64::MAX, ..chosen.clone() };
                if fits(&alone, &state, &one).is_ok() {
                    prop_assert!(gpu_left(chosen, &state, job, &[g.index]) >= worst_chosen);
                }
            }
        }
    }

    #[test]
    fn a_job_waits_only_when_nothing_ahead_of_it_left_room(p in problem()) {
        let d = place(&p);
        let order = queue_in_order(&p);
        let placed_order: Vec<&str> = order.iter().filter(|j| d.placement(&j.id).is_some()).map(|j| j.id.as_str()).collect();
        let listed: Vec<&str> = d.placements.iter().map(|a| a.job_id.as_str()).collect();
        prop_assert_eq!(listed, placed_order, "placements are listed in queue order");
        for (at, job) in order.iter().enumerate() {
            let state = state_before(&p, &d, &order, at);
            if let Some(placed) = d.placement(&job.id) {
                prop_assert!(fits(worker(&p, &placed.worker_id), &state, job).is_ok());
                continue;
            }
            for w in open_workers(&p, &d, &order, at) {
                prop_assert!(fits(w, &state, job).is_err(), "{} waits although {} had room", job.id, w.id);
            }
        }
    }

    #[test]
    fn the_starving_head_holds_the_worker_where_it_fits_soonest(p in problem()) {
        check_reservation(&p)?;
        // Again with every waiting job starving, so that most cases hold a worker.
        check_reservation(&Problem { starvation_ms: i64::MIN, ..p })?;
    }

    #[test]
    fn unplaceable_means_no_worker_could_ever_run_it(p in problem()) {
        let d = place(&p);
        for job in queue_in_order(&p) {
            let ever = p.workers.iter().any(|w| fits(w, &[], &job).is_ok());
            let listed = d.unplaceable.iter().find(|u| u.job_id == job.id);
            prop_assert_eq!(listed.is_some(), !ever, "{}", job.id);
            if let Some(u) = listed {
                prop_assert!(u.reason.starts_with("needs ") || u.reason.starts_with("no schedulable"), "{}", u.reason);
                prop_assert!(d.placement(&job.id).is_none());
            }
        }
    }

    #[test]
    fn shuffled_input_gives_the_same_decision(p in problem(), seed in 1..u64::MAX) {
        let d = place(&p);
        let mut q = p.clone();
        let mut seed = seed;
        shuffle(&mut q.workers, &mut seed);
        for w in &mut q.workers {
            shuffle(&mut w.gpus, &mut seed);
        }
        shuffle(&mut q.allocations, &mut seed);
        shuffle(&mut q.queue, &mut seed);
        prop_assert_eq!(place(&q), d.clone());
        prop_assert_eq!(place(&p), d, "same input, same output");
    }
}
