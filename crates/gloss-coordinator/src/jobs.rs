//! Jobs and workers in the service layer: validating submissions, the worker protocol
//! (register with the join token, heartbeat, report) and the leader's scheduler tick, which
//! declares silent workers lost, ends lapsed leases and places queued jobs with `gloss-sched`.

use std::collections::BTreeMap;
use std::time::Duration;

use gloss_proto::v1::{
    command, command_result, CancelJob, ExpireJobs, Job, JobFinishReport, JobKind,
    JobProgressReport, JobReportReply, JobState, LogLine, PlaceJobs, Placement, RegisterWorker,
    ReportJob, Resources, RunningJob, SubmitJob, SubmitJobRequest, Worker, WorkerBeat,
    WorkerHeartbeatResponse,
};
use gloss_state::jobs as read;
use sha2::{Digest, Sha256};

use crate::access::Actor;
use crate::error::ServiceError;
use crate::service::{now_ms, unexpected, Service};

/// How often workers send heartbeats.
pub const HEARTBEAT_INTERVAL_MS: u64 = 1_000;
/// A placement lapses this long after the worker's last heartbeat or report for it.
pub const JOB_LEASE_MS: u64 = 6_000;
/// A worker silent this long is declared lost and its jobs are re-placed.
pub const WORKER_TIMEOUT_MS: u64 = 5_000;
/// Default resources of a job that asks for none.
const DEFAULT_CPU_MILLIS: u64 = 1_000;
const DEFAULT_MEMORY: u64 = 512 << 20;
const MAX_ATTEMPTS: u32 = 10;

fn invalid(msg: impl Into<String>) -> ServiceError {
    ServiceError::InvalidArgument(msg.into())
}

impl Service {
    /// Queues a job after checking every field, naming the one at fault.
    pub async fn submit_job(
        &self,
        actor: &Actor,
        req: SubmitJobRequest,
    ) -> Result<Job, ServiceError> {
        let spec = req.spec.ok_or_else(|| invalid("spec: is required"))?;
        if spec.kind() == JobKind::Unspecified {
            return Err(invalid(
                "spec.kind: choose predict, train, evaluate or curve",
            ));
        }
        self.task_record(&spec.project, &spec.task).await?;
        if matches!(spec.kind(), JobKind::Predict | JobKind::Evaluate) && spec.model.is_empty() {
            return Err(invalid(
                "spec.model: name a registry model (name[@version]), `assisting`, or a teacher: \
                 similarity:<base model>, llm:<gguf model> or openai:<endpoint>",
            ));
        }
        const STUDENTS: [&str; 5] = ["tiny", "encoder", "tiny-tagger", "encoder-tagger", "auto"];
        if matches!(spec.kind(), JobKind::Train | JobKind::Curve)
            && !spec.model.is_empty()
            && !STUDENTS.contains(&spec.model.as_str())
        {
            return Err(invalid(format!(
                "spec.model: a train or curve job names its student, one of {}; {:?} is none of them",
                STUDENTS.join(", "),
                spec.model
            )));
        }
        if !spec.config_json.is_empty() {
            let v: serde_json::Value = serde_json::from_str(&spec.config_json)
                .map_err(|e| invalid(format!("spec.config_json: not JSON: {e}")))?;
            if !v.is_object() {
                return Err(invalid("spec.config_json: must be a JSON object"));
            }
        }
        let mut r = req.resources.unwrap_or_default();
        if r.cpu_millis == 0 {
            r.cpu_millis = DEFAULT_CPU_MILLIS;
        }
        if r.memory_bytes == 0 {
            r.memory_bytes = DEFAULT_MEMORY;
        }
        if r.gpu_count == 0 && (r.gpu_memory_bytes > 0 || !r.gpu_model.is_empty()) {
            return Err(invalid(
                "resources.gpu_count: GPU memory or a GPU model needs at least one GPU",
            ));
        }
        if req.max_attempts > MAX_ATTEMPTS {
            return Err(invalid(format!(
                "max_attempts: at most {MAX_ATTEMPTS}, got {}",
                req.max_attempts
            )));
        }
        let job = Job {
            spec: Some(spec),
            resources: Some(r),
            constraints: req.constraints,
            priority: req.priority,
            max_attempts: req.max_attempts,
            trace_context: gloss_core::telemetry::current_context(),
            ..Job::default()
        };
        let body = command::Body::SubmitJob(SubmitJob { job: Some(job) });
        match self.propose(actor, body, String::new()).await? {
            command_result::Result::Job(j) => {
                tracing::info!(job_id = %j.id, "job queued");
                Ok(j)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Jobs, newest first.
    pub async fn list_jobs(
        &self,
        states: &[JobState],
        limit: u32,
    ) -> Result<Vec<Job>, ServiceError> {
        self.read_barrier().await?;
        let limit = if limit == 0 { 100 } else { limit as usize };
        Ok(read::jobs(&self.state.db(), states, limit)?)
    }

    /// One job, from a linearizable read.
    pub async fn get_job(&self, id: &str) -> Result<Job, ServiceError> {
        self.read_barrier().await?;
        read::job(&self.state.db(), id)?
            .ok_or_else(|| ServiceError::NotFound(format!("job {id:?} not found")))
    }

    /// Cancels a job (a running one stops when its worker next hears about it).
    pub async fn cancel_job(&self, actor: &Actor, id: &str) -> Result<Job, ServiceError> {
        let body = command::Body::CancelJob(CancelJob { job_id: id.into() });
        match self.propose(actor, body, String::new()).await? {
            command_result::Result::Job(j) => Ok(j),
            other => Err(unexpected(other)),
        }
    }

    /// A job's log lines after line `after`.
    pub async fn job_logs(&self, id: &str, after: u64) -> Result<Vec<LogLine>, ServiceError> {
        self.get_job(id).await?;
        Ok(read::job_logs(&self.state.db(), id, after)?)
    }

    /// Every registered worker.
    pub async fn list_workers(&self) -> Result<Vec<Worker>, ServiceError> {
        self.read_barrier().await?;
        Ok(read::workers(&self.state.db())?)
    }

    /// Registers a worker presenting the cluster's join token.
    pub async fn register_worker(
        &self,
        token: &str,
        mut w: Worker,
    ) -> Result<Worker, ServiceError> {
        let expected = self.settings.join_token.as_ref().ok_or_else(|| {
            ServiceError::PermissionDenied(
                "this cluster has no join token configured (--join-token-file): workers cannot join"
                    .into(),
            )
        })?;
        // Compare hashes: equal-length digests, no early exit on the secret's bytes.
        if Sha256::digest(token.as_bytes()) != Sha256::digest(expected.expose().as_bytes()) {
            return Err(ServiceError::Unauthenticated("wrong join token".into()));
        }
        if w.name.is_empty() {
            return Err(invalid("worker.name: is required"));
        }
        if w.cpu_millis == 0 || w.memory_bytes == 0 {
            return Err(invalid("worker: report cpu_millis and memory_bytes"));
        }
        for (i, g) in w.gpus.iter().enumerate() {
            if g.memory_bytes == 0 {
                return Err(invalid(format!("worker.gpus[{i}]: memory_bytes is 0")));
            }
        }
        w.gpus.sort_by_key(|g| g.index);
        let body = command::Body::RegisterWorker(RegisterWorker { worker: Some(w) });
        match self.propose(&Actor::SYSTEM, body, String::new()).await? {
            command_result::Result::Worker(w) => {
                tracing::info!(worker_id = %w.id, name = %w.name, gpus = w.gpus.len(), "worker registered");
                Ok(w)
            }
            other => Err(unexpected(other)),
        }
    }

    /// A worker's heartbeat: liveness, lease renewals, new assignments, jobs to stop.
    pub async fn worker_heartbeat(
        &self,
        worker_id: &str,
        running: Vec<RunningJob>,
    ) -> Result<WorkerHeartbeatResponse, ServiceError> {
        let body = command::Body::WorkerBeat(WorkerBeat {
            worker_id: worker_id.into(),
            running,
            lease_ms: JOB_LEASE_MS,
        });
        match self
            .propose_with(&Actor::SYSTEM, body, String::new(), true)
            .await?
        {
            command_result::Result::Beat(b) => Ok(b),
            other => Err(unexpected(other)),
        }
    }

    /// Records a worker's progress or finish report (refused with a reason on a stale epoch).
    pub async fn report_job(
        &self,
        progress: Option<JobProgressReport>,
        finish: Option<JobFinishReport>,
    ) -> Result<JobReportReply, ServiceError> {
        let body = command::Body::ReportJob(ReportJob {
            progress,
            finish,
            lease_ms: JOB_LEASE_MS,
        });
        match self.propose(&Actor::SYSTEM, body, String::new()).await? {
            command_result::Result::Report(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// One scheduling round on the leader: expire, then place. Returns how many jobs it placed.
    pub async fn schedule_once(&self) -> Result<u64, ServiceError> {
        let body = command::Body::ExpireJobs(ExpireJobs {
            worker_timeout_ms: WORKER_TIMEOUT_MS,
        });
        if let command_result::Result::Count(n) = self
            .propose_with(&Actor::SYSTEM, body, String::new(), true)
            .await?
        {
            if n > 0 {
                tracing::info!(
                    ended = n,
                    "job attempts ended (lost workers, lapsed leases)"
                );
            }
        }
        let db = self.state.db();
        let now = now_ms();
        let workers = read::workers(&db)?;
        let active = read::jobs(
            &db,
            &[JobState::Queued, JobState::Placed, JobState::Running],
            usize::MAX,
        )?;
        drop(db);
        let problem = problem(&workers, &active, now);
        if problem.queue.is_empty() {
            return Ok(0);
        }
        let decision = gloss_sched::place(&problem);
        if decision.placements.is_empty() {
            return Ok(0);
        }
        let placements = decision
            .placements
            .into_iter()
            .map(|p| Placement {
                job_id: p.job_id,
                worker_id: p.worker_id,
                gpus: p.gpus.iter().map(|g| g.index).collect(),
            })
            .collect();
        let body = command::Body::PlaceJobs(PlaceJobs {
            placements,
            lease_ms: JOB_LEASE_MS,
        });
        match self.propose(&Actor::SYSTEM, body, String::new()).await? {
            command_result::Result::Count(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// Runs [`Service::schedule_once`] every `every` while this node leads, until `stop`.
    pub async fn run_scheduler(
        &self,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let leads = {
                let m = self.raft.metrics().borrow().clone();
                m.current_leader == Some(m.id)
            };
            if leads {
                if let Err(e) = self.schedule_once().await {
                    tracing::debug!(error = %e, "scheduling round failed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

fn request(r: &Resources) -> gloss_sched::Request {
    gloss_sched::Request {
        cpu_millis: r.cpu_millis,
        memory_bytes: r.memory_bytes,
        gpu_count: r.gpu_count,
        gpu_memory_bytes: r.gpu_memory_bytes,
        gpu_model: (!r.gpu_model.is_empty()).then(|| r.gpu_model.clone()),
    }
}

/// The placement problem of the current state: live workers, what placed and running jobs
/// hold, and the queue of jobs whose backoff has passed.
fn problem(workers: &[Worker], active: &[Job], now: i64) -> gloss_sched::Problem {
    let workers = workers
        .iter()
        .map(|w| gloss_sched::Worker {
            id: w.id.clone(),
            cpu_millis: w.cpu_millis,
            memory_bytes: w.memory_bytes,
            gpus: w
                .gpus
                .iter()
                .map(|g| gloss_sched::Gpu {
                    index: g.index,
                    model: g.model.clone(),
                    memory_bytes: g.memory_bytes,
                })
                .collect(),
            labels: w.labels.clone().into_iter().collect::<BTreeMap<_, _>>(),
            schedulable: !w.lost,
        })
        .collect();
    let mut allocations = Vec::new();
    let mut queue = Vec::new();
    for j in active {
        let r = j.resources.clone().unwrap_or_default();
        match j.state() {
            JobState::Placed | JobState::Running => allocations.push(gloss_sched::Allocation {
                job_id: j.id.clone(),
                worker_id: j.worker_id.clone(),
                cpu_millis: r.cpu_millis,
                memory_bytes: r.memory_bytes,
                gpus: j
                    .gpus
                    .iter()
                    .map(|g| gloss_sched::GpuShare {
                        index: *g,
                        memory_bytes: r.gpu_memory_bytes,
                    })
                    .collect(),
            }),
            JobState::Queued if j.not_before_ms <= now => queue.push(gloss_sched::Job {
                id: j.id.clone(),
                priority: j.priority,
                queued_seq: j.queued_seq,
                queued_at_ms: j.submitted_at_ms,
                request: request(&r),
                constraints: j.constraints.clone().into_iter().collect(),
            }),
            _ => {}
        }
    }
    gloss_sched::Problem {
        workers,
        allocations,
        queue,
        now_ms: now,
        starvation_ms: 60_000,
    }
}
