//! Job placement for Gloss: which queued job runs on which worker, decided as a pure function.
//!
//! [`place`] takes a [`Problem`] (workers with their capacity and labels, the [`Allocation`]s
//! already holding resources, the queue, the time as a number) and returns a [`Decision`]: new
//! allocations to record, jobs no current worker can ever run (with a reason naming the
//! resource), and the worker held back for a starving job. [`fits`] answers the single question
//! "does this job fit on that worker now, and if not, why", for job status messages.
//!
//! This crate depends on nothing but `serde`. It must never do I/O, read a clock, use randomness
//! or iterate a hash map: the coordinator's leader calls it, and any replica must reach the same
//! answer from the same state.
//!
//! # Contracts
//!
//! Each has a property test in `tests/contracts.rs` (the starvation contract also over many
//! rounds in `tests/starvation.rs`) and worked examples in `tests/examples.rs`.
//!
//! 1. **Never over-commit.** On every worker that receives a placement, existing allocations plus
//!    new ones fit its CPU and memory, and on every GPU the GPU memory held sums within that GPU's
//!    memory. GPUs are *shared by memory*: several jobs may use one GPU when their GPU memory fits
//!    in it. A request with `gpu_memory_bytes == 0` asks for *whole* GPUs: it only takes GPUs
//!    nobody holds, and reserves their full memory, so nothing else lands there. A job asking for
//!    `n` GPUs gets `n` distinct GPUs on one worker.
//! 2. **Constraints hold.** A job only lands on a worker whose labels include every constraint
//!    with the same value, on GPUs of its `gpu_model` (exact match) if given; a worker with
//!    `schedulable == false` receives nothing.
//! 3. **Best fit.** A GPU job takes the suitable GPUs that leave the least GPU memory free, and
//!    the worker where that total is smallest. A CPU-only job prefers workers without GPUs, so it
//!    does not block GPU capacity. Remaining ties go to the worker left with the smallest
//!    fraction of free CPU plus free memory, then to the smaller worker id (GPUs: smaller index).
//! 4. **Order.** Jobs are considered by higher `priority`, then lower `queued_seq`, then id; a
//!    job waits only when it fits on no (unreserved) worker after every job ahead of it was placed.
//! 5. **No starvation.** The first job that waits (the head; unplaceable jobs do not count) and
//!    has waited more than `starvation_ms` (`now_ms - queued_at_ms`) gets a [`Reservation`]: the
//!    worker where the fewest running jobs must finish before it fits (ties by id). Jobs after it
//!    are not placed there this round; they may backfill elsewhere. Nothing new lands on a held
//!    worker, so its count only falls, and the hold moves only to a worker needing fewer jobs to
//!    finish (or as many, with a smaller id): as long as running jobs end and no higher-priority
//!    work keeps arriving, the head runs however many lower-ordered jobs arrive.
//! 6. **Pure.** The decision depends only on the problem's contents, not on the order of its
//!    vectors: everything is sorted first, and floating-point scores use a total order.
//!
//! A job whose id already holds an allocation is not placed again; of repeated queue entries or
//! workers with one id, the first in sorted order counts. Unplaceable jobs are a status, not a
//! verdict: they stay queued in case a larger worker joins, and never block the queue.
//!
//! # Example
//!
//! ```
//! use gloss_sched::{fits, place, Job, Problem, Request, Worker};
//!
//! const GIB: u64 = 1 << 30;
//! let workers = vec![
//!     Worker::new("cpu-1", 8_000, 32 * GIB),
//!     Worker::new("gpu-1", 16_000, 128 * GIB).with_gpu("A100", 80 * GIB),
//! ];
//! let queue = vec![
//!     Job::new("train", 1, Request::cpu(4_000, 16 * GIB).with_gpus(1, 40 * GIB)),
//!     Job::new("tokenise", 2, Request::cpu(2_000, 4 * GIB)),
//!     Job::new("huge", 3, Request::cpu(1_000, GIB).with_gpus(2, 80 * GIB)),
//! ];
//! let problem = Problem { workers, queue, starvation_ms: 60_000, ..Problem::default() };
//!
//! let decision = place(&problem);
//! assert_eq!(decision.placement("train").unwrap().worker_id, "gpu-1");
//! assert_eq!(decision.placement("tokenise").unwrap().worker_id, "cpu-1");
//! assert_eq!(
//!     decision.unplaceable[0].reason,
//!     "needs 2 GPUs with 80 GiB GPU memory each; the best-equipped worker has 1"
//! );
//!
//! // Why a second 60 GiB job cannot join `train` on the A100 now:
//! let more = Job::new("more", 4, Request::cpu(1_000, GIB).with_gpus(1, 60 * GIB));
//! let why = fits(&problem.workers[1], &decision.placements, &more).unwrap_err();
//! assert!(why.is_transient());
//! assert_eq!(
//!     why.to_string(),
//!     "needs 1 GPU with 60 GiB GPU memory; 0 of the worker's 1 such GPUs have room now"
//! );
//! ```

mod fit;
mod model;
mod place;
mod units;

pub use fit::{fits, Shortfall};
pub use model::{
    Allocation, Decision, Gpu, GpuShare, Job, Problem, Request, Reservation, Unplaceable, Worker,
};
pub use place::place;
