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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    project: String,
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GpuLabels {
    worker: String,
    gpu: String,
    model: String,
}

/// What the gauges read from the replicated state show, taken at scrape time.
#[derive(Debug, Default)]
pub struct StateView {
    /// (project, task, examples that still need answers), open tasks only.
    pub queue_depth: Vec<(String, String, u64)>,
    /// Jobs per state name (every state present, zeros included).
    pub jobs: Vec<(String, u64)>,
    /// Workers not lost and lost.
    pub workers: (u64, u64),
    /// (worker name, GPU index, model, memory, memory held by the jobs placed on it).
    pub gpus: Vec<(String, u32, String, u64, u64)>,
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
    lease_expiries: Counter<u64, AtomicU64>,
    queue_depth: Family<TaskLabels, Gauge>,
    jobs: Family<StateLabel, Gauge>,
    workers: Family<StateLabel, Gauge>,
    gpu_memory: Family<GpuLabels, Gauge>,
    gpu_memory_used: Family<GpuLabels, Gauge>,
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
            lease_expiries: Counter::default(),
            queue_depth: Family::default(),
            jobs: Family::default(),
            workers: Family::default(),
            gpu_memory: Family::default(),
            gpu_memory_used: Family::default(),
        };
        registry.register(
            "feed_lease_expiries",
            "Leased examples returned to the queue because their annotator went idle",
            m.lease_expiries.clone(),
        );
        registry.register(
            "feed_queue_depth",
            "Examples of an open task that still need answers",
            m.queue_depth.clone(),
        );
        registry.register("jobs", "Jobs by state", m.jobs.clone());
        registry.register(
            "workers",
            "Registered workers by state (live, lost)",
            m.workers.clone(),
        );
        registry.register(
            "worker_gpu_memory_bytes",
            "Memory of each GPU a worker offers",
            m.gpu_memory.clone(),
        );
        registry.register(
            "worker_gpu_memory_used_bytes",
            "GPU memory held by the jobs placed on each GPU",
            m.gpu_memory_used.clone(),
        );
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

    /// Counts leased examples returned to the queue.
    pub fn feed_lease_expiries(&self, n: u64) {
        if n > 0 {
            self.lease_expiries.inc_by(n);
        }
    }

    /// Sets the gauges read from the state. Series that disappeared (a closed task, a removed
    /// worker) are dropped.
    pub fn observe_state(&self, view: &StateView) {
        self.queue_depth.clear();
        for (project, task, depth) in &view.queue_depth {
            let labels = TaskLabels {
                project: project.clone(),
                task: task.clone(),
            };
            self.queue_depth.get_or_create(&labels).set(*depth as i64);
        }
        self.jobs.clear();
        for (state, n) in &view.jobs {
            let labels = StateLabel {
                state: state.clone(),
            };
            self.jobs.get_or_create(&labels).set(*n as i64);
        }
        for (state, n) in [("live", view.workers.0), ("lost", view.workers.1)] {
            let labels = StateLabel {
                state: state.into(),
            };
            self.workers.get_or_create(&labels).set(n as i64);
        }
        self.gpu_memory.clear();
        self.gpu_memory_used.clear();
        for (worker, index, model, memory, used) in &view.gpus {
            let labels = GpuLabels {
                worker: worker.clone(),
                gpu: index.to_string(),
                model: model.clone(),
            };
            self.gpu_memory.get_or_create(&labels).set(*memory as i64);
            self.gpu_memory_used
                .get_or_create(&labels)
                .set(*used as i64);
        }
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

/// Reads the gauges' figures from this node's copy of the state (each coordinator reports what
/// it has applied; dashboards take the maximum over coordinators).
pub fn state_view(db: &gloss_store::rocksdb::DB) -> Result<StateView, gloss_state::StateError> {
    use gloss_proto::v1::{JobState, TaskState};
    use std::collections::{BTreeMap, HashMap};

    let mut view = StateView::default();
    for project in gloss_state::read::projects(db)? {
        for task in gloss_state::tasks::tasks(db, &project.name)? {
            if task.state() != TaskState::Open {
                continue;
            }
            let Some(rec) = gloss_state::tasks::task(db, &project.name, &task.name)? else {
                continue;
            };
            let total = gloss_state::read::dataset(db, &project.name, &task.source_dataset)?
                .and_then(|d| d.dataset)
                .map_or(0, |d| d.example_count);
            view.queue_depth.push((
                project.name.clone(),
                task.name,
                total.saturating_sub(rec.done),
            ));
        }
    }
    let state_name = |s: JobState| {
        s.as_str_name()
            .trim_start_matches("JOB_STATE_")
            .to_ascii_lowercase()
    };
    let mut jobs: BTreeMap<String, u64> = [
        JobState::Queued,
        JobState::Placed,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ]
    .into_iter()
    .map(|s| (state_name(s), 0))
    .collect();
    // GPU memory held per (worker id, GPU index); `None` marks a whole GPU.
    let mut held: HashMap<(String, u32), Option<u64>> = HashMap::new();
    for job in gloss_state::jobs::jobs(db, &[], usize::MAX)? {
        *jobs.entry(state_name(job.state())).or_default() += 1;
        if !matches!(job.state(), JobState::Placed | JobState::Running) {
            continue;
        }
        let per_gpu = job.resources.as_ref().map_or(0, |r| r.gpu_memory_bytes);
        for gpu in &job.gpus {
            let entry = held.entry((job.worker_id.clone(), *gpu)).or_insert(Some(0));
            *entry = match (*entry, per_gpu) {
                (_, 0) | (None, _) => None,
                (Some(sum), n) => Some(sum.saturating_add(n)),
            };
        }
    }
    view.jobs = jobs.into_iter().collect();
    for worker in gloss_state::jobs::workers(db)? {
        if worker.lost {
            view.workers.1 += 1;
        } else {
            view.workers.0 += 1;
        }
        for gpu in &worker.gpus {
            let used = match held.get(&(worker.id.clone(), gpu.index)) {
                Some(Some(bytes)) => (*bytes).min(gpu.memory_bytes),
                Some(None) => gpu.memory_bytes,
                None => 0,
            };
            view.gpus.push((
                worker.name.clone(),
                gpu.index,
                gpu.model.clone(),
                gpu.memory_bytes,
                used,
            ));
        }
    }
    Ok(view)
}
