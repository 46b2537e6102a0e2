//! Where a coordinator's time goes: one latency histogram per stage of a request (authorization,
//! read barrier, forwarding to the leader, the Raft write, the log's fsync, applying an entry,
//! the whole request on the server). Each histogram is a fixed set of atomic counters, so
//! recording costs a few atomic adds and never allocates or locks.
//!
//! Buckets are logarithmic with four steps per power of two (neighbours at most 25% apart), over
//! microseconds, so a percentile read from them is within one step of the true value.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A stage of serving a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The whole request on the server, from the first byte of its headers to its reply.
    Request,
    /// Checking the bearer token and the caller's roles.
    Auth,
    /// Waiting until this node has applied every write acknowledged before a read.
    ReadBarrier,
    /// One command from its arrival at this node's proposer to its result: the wait for a
    /// proposal slot, then the forward or the leader's write that carries it.
    Commit,
    /// A follower handing a proposal (one command or a batch) to the leader and waiting for its
    /// result.
    Forward,
    /// A proposal on the leader (one command or a batch): queueing, log append, replication to
    /// a quorum and apply.
    RaftWrite,
    /// Appending entries to the Raft log, fsync included (per append call).
    LogAppend,
    /// Applying one command to the state machine (an entry's, or one of a batch's).
    Apply,
}

impl Stage {
    /// Every stage, in the order a request meets them.
    pub const ALL: [Stage; 8] = [
        Stage::Request,
        Stage::Auth,
        Stage::ReadBarrier,
        Stage::Commit,
        Stage::Forward,
        Stage::RaftWrite,
        Stage::LogAppend,
        Stage::Apply,
    ];

    /// The stage's name in tables and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Request => "request (server)",
            Stage::Auth => "auth",
            Stage::ReadBarrier => "read barrier",
            Stage::Commit => "commit (per command)",
            Stage::Forward => "forward to leader",
            Stage::RaftWrite => "raft write (leader)",
            Stage::LogAppend => "log append + fsync",
            Stage::Apply => "apply (per command)",
        }
    }
}

const BUCKETS: usize = 160;

/// The bucket of a duration of `us` microseconds.
fn bucket(us: u64) -> usize {
    if us < 4 {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros() as usize;
    let step = ((us >> (exp - 2)) & 3) as usize;
    (4 * (exp - 1) + step).min(BUCKETS - 1)
}

/// The largest duration in microseconds that falls in bucket `i`.
fn upper_bound(i: usize) -> u64 {
    if i < 4 {
        return i as u64;
    }
    let exp = i / 4 + 1;
    let step = (i % 4) as u64;
    ((4 + step + 1) << (exp - 2)) - 1
}

/// One stage's latency histogram.
struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }
}

/// What one stage's histogram holds, read at one moment (and summable across nodes).
#[derive(Clone, Debug)]
pub struct StageSummary {
    pub stage: Stage,
    counts: Vec<u64>,
    sum_us: u64,
}

impl StageSummary {
    /// How many times the stage ran.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Mean time in the stage.
    pub fn mean(&self) -> Duration {
        match self.count() {
            0 => Duration::ZERO,
            n => Duration::from_micros(self.sum_us / n),
        }
    }

    /// The `q` quantile (0..=1), as the upper edge of the bucket it falls in.
    pub fn quantile(&self, q: f64) -> Duration {
        let n = self.count();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_micros(upper_bound(i));
            }
        }
        Duration::from_micros(upper_bound(BUCKETS - 1))
    }

    /// Total time spent in the stage.
    pub fn total(&self) -> Duration {
        Duration::from_micros(self.sum_us)
    }

    /// Adds another summary of the same stage (another node's).
    pub fn add(&mut self, other: &StageSummary) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_us += other.sum_us;
    }
}

/// The histograms of every stage of one coordinator, and its count of replication timeouts.
#[derive(Default)]
pub struct Stages {
    histograms: [Histogram; Stage::ALL.len()],
    replication_timeouts: AtomicU64,
    proposals: AtomicU64,
    proposed_commands: AtomicU64,
}

impl std::fmt::Debug for Stages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stages").finish_non_exhaustive()
    }
}

fn index(stage: Stage) -> usize {
    Stage::ALL
        .iter()
        .position(|s| *s == stage)
        .expect("every stage is listed")
}

impl Stages {
    /// Records that `stage` took `elapsed`.
    pub fn record(&self, stage: Stage, elapsed: Duration) {
        let us = elapsed.as_micros().min(u64::MAX as u128) as u64;
        let h = &self.histograms[index(stage)];
        h.buckets[bucket(us)].fetch_add(1, Ordering::Relaxed);
        h.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Starts timing `stage`; the time is recorded when the returned guard is dropped.
    pub fn time(&self, stage: Stage) -> StageTimer<'_> {
        StageTimer {
            stages: self,
            stage,
            started: Instant::now(),
        }
    }

    /// Every stage's histogram as it is now.
    pub fn summary(&self) -> Vec<StageSummary> {
        Stage::ALL
            .iter()
            .zip(&self.histograms)
            .map(|(stage, h)| StageSummary {
                stage: *stage,
                counts: h
                    .buckets
                    .iter()
                    .map(|b| b.load(Ordering::Relaxed))
                    .collect(),
                sum_us: h.sum_us.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Counts an AppendEntries given up before its reply.
    pub fn count_replication_timeout(&self) {
        self.replication_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// AppendEntries given up before their reply since the start (or the last reset).
    pub fn replication_timeouts(&self) -> u64 {
        self.replication_timeouts.load(Ordering::Relaxed)
    }

    /// Counts a proposal to Raft carrying `commands` commands (more than one: a batch).
    pub fn count_proposal(&self, commands: usize) {
        self.proposals.fetch_add(1, Ordering::Relaxed);
        self.proposed_commands
            .fetch_add(commands as u64, Ordering::Relaxed);
    }

    /// (proposals, commands in them) since the start (or the last reset).
    pub fn proposals(&self) -> (u64, u64) {
        (
            self.proposals.load(Ordering::Relaxed),
            self.proposed_commands.load(Ordering::Relaxed),
        )
    }

    /// Empties every histogram and the timeout count (a benchmark calls this when its measured
    /// part starts).
    pub fn reset(&self) {
        self.replication_timeouts.store(0, Ordering::Relaxed);
        self.proposals.store(0, Ordering::Relaxed);
        self.proposed_commands.store(0, Ordering::Relaxed);
        for h in &self.histograms {
            for b in &h.buckets {
                b.store(0, Ordering::Relaxed);
            }
            h.sum_us.store(0, Ordering::Relaxed);
        }
    }
}

/// Records the time since it was made into its stage when dropped.
pub struct StageTimer<'a> {
    stages: &'a Stages,
    stage: Stage,
    started: Instant,
}

impl Drop for StageTimer<'_> {
    fn drop(&mut self) {
        self.stages.record(self.stage, self.started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_hold_their_values() {
        for us in [
            0u64,
            1,
            3,
            4,
            5,
            7,
            8,
            9,
            15,
            16,
            100,
            1_000,
            12_345,
            1 << 30,
        ] {
            let i = bucket(us);
            assert!(us <= upper_bound(i), "{us} above bucket {i}");
            if i > 0 {
                assert!(us > upper_bound(i - 1), "{us} belongs below bucket {i}");
            }
        }
        for i in 1..BUCKETS - 1 {
            assert_eq!(bucket(upper_bound(i)), i);
            assert_eq!(bucket(upper_bound(i) + 1), i + 1);
        }
    }

    #[test]
    fn quantiles_and_means_follow_what_was_recorded() {
        let stages = Stages::default();
        for ms in 1..=100u64 {
            stages.record(Stage::Auth, Duration::from_millis(ms));
        }
        stages.record(Stage::Apply, Duration::from_micros(10));
        let all = stages.summary();
        let auth = &all[index(Stage::Auth)];
        assert_eq!(auth.count(), 100);
        assert_eq!(auth.mean(), Duration::from_micros(50_500));
        // Within one bucket step (< 25%) above the true value.
        let p50 = auth.quantile(0.5).as_micros() as f64;
        assert!((50_000.0..=62_500.0).contains(&p50), "p50 {p50}");
        let p99 = auth.quantile(0.99).as_micros() as f64;
        assert!((99_000.0..=123_750.0).contains(&p99), "p99 {p99}");
        let mut merged = all[index(Stage::Apply)].clone();
        merged.add(&all[index(Stage::Apply)]);
        assert_eq!(merged.count(), 2);
        assert_eq!(
            merged.quantile(1.0),
            Duration::from_micros(upper_bound(bucket(10)))
        );
        stages.reset();
        assert!(stages.summary().iter().all(|s| s.count() == 0));
    }
}
