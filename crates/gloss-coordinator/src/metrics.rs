//! Prometheus metrics of a coordinator, rendered on `/metrics`.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use gloss_proto::v1::ImportSummary;
use gloss_raft::Raft;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

/// Every metric a coordinator exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    term: Gauge,
    last_log_index: Gauge,
    applied_index: Gauge,
    is_leader: Gauge,
    leader_changes: Counter,
    last_leader: Mutex<Option<u64>>,
    imports: Family<Outcome, Counter>,
    records: Family<Outcome, Counter<u64, AtomicU64>>,
    leases: Counter<u64, AtomicU64>,
    answers: Counter<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gloss");
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            term: Gauge::default(),
            last_log_index: Gauge::default(),
            applied_index: Gauge::default(),
            is_leader: Gauge::default(),
            leader_changes: Counter::default(),
            last_leader: Mutex::new(None),
            imports: Family::default(),
            records: Family::default(),
            leases: Counter::default(),
            answers: Counter::default(),
        };
        registry.register(
            "feed_leased_examples",
            "Examples handed to annotators by NextExamples (held and new)",
            m.leases.clone(),
        );
        registry.register(
            "feed_answers",
            "Answers recorded (retries not counted)",
            m.answers.clone(),
        );
        registry.register("raft_term", "Current Raft term", m.term.clone());
        registry.register(
            "raft_last_log_index",
            "Last index in the local Raft log",
            m.last_log_index.clone(),
        );
        registry.register(
            "raft_applied_index",
            "Last index applied to the local state machine",
            m.applied_index.clone(),
        );
        registry.register(
            "raft_is_leader",
            "1 when this coordinator leads the group",
            m.is_leader.clone(),
        );
        registry.register(
            "raft_leader_changes",
            "Leader changes observed by this coordinator",
            m.leader_changes.clone(),
        );
        registry.register(
            "imports",
            "Finished imports by outcome (committed, rejected, failed)",
            m.imports.clone(),
        );
        registry.register(
            "import_records",
            "Imported records by outcome (imported, duplicate, invalid)",
            m.records.clone(),
        );
        *m.registry.lock().expect("metrics lock") = registry;
        m
    }
}

impl Metrics {
    /// Counts a finished import.
    pub fn imports(&self, s: &ImportSummary, outcome: &str) {
        let label = |o: &str| Outcome { outcome: o.into() };
        self.imports.get_or_create(&label(outcome)).inc();
        self.records
            .get_or_create(&label("imported"))
            .inc_by(s.imported);
        self.records
            .get_or_create(&label("duplicate"))
            .inc_by(s.duplicates);
        self.records
            .get_or_create(&label("invalid"))
            .inc_by(s.invalid);
    }

    /// Counts examples handed out by one NextExamples call.
    pub fn feed_leases(&self, n: u64) {
        self.leases.inc_by(n);
    }

    /// Counts one recorded answer.
    pub fn feed_answer(&self) {
        self.answers.inc();
    }

    /// Folds the latest Raft metrics in.
    pub fn observe_raft(&self, raft: &Raft) {
        let m = raft.metrics().borrow().clone();
        self.term.set(m.current_term as i64);
        self.last_log_index
            .set(m.last_log_index.unwrap_or(0) as i64);
        self.applied_index
            .set(m.last_applied.map(|l| l.index).unwrap_or(0) as i64);
        self.is_leader
            .set(i64::from(m.current_leader == Some(m.id)));
        let mut last = self.last_leader.lock().expect("metrics lock");
        if m.current_leader.is_some() && *last != m.current_leader {
            if last.is_some() {
                self.leader_changes.inc();
            }
            *last = m.current_leader;
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics lock");
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}
