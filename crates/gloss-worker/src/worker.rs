//! The worker loop (`gloss worker`, and the worker `gloss up` embeds): joins the cluster with the
//! join token, reports its capacity (CPU, memory and GPUs, read through NVML when the driver is
//! present or declared with `--gpus`), heartbeats, and runs the jobs placed on it, each on its
//! own thread, reporting progress and the result with the job's epoch. A refused report (stale
//! epoch, cancelled) stops the job.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use gloss_proto::v1::worker_service_client::WorkerServiceClient;
use gloss_proto::v1::{
    Gpu, Job, JobFinishReport, JobProgressReport, RegisterWorkerRequest, RunningJob, Worker,
    WorkerHeartbeatRequest,
};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::job_run::{self, Progress};

#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// Coordinators' internal addresses (HOST:PORT, comma-separated).
    #[arg(
        long,
        env = "GLOSS_COORDINATOR",
        value_delimiter = ',',
        required = true
    )]
    pub coordinator: Vec<String>,
    /// File holding the cluster's join token.
    #[arg(long, env = "GLOSS_JOIN_TOKEN_FILE")]
    pub join_token_file: Option<PathBuf>,
    /// Name shown in `glossctl worker list` [default: the host name].
    #[arg(long, env = "GLOSS_WORKER_NAME")]
    pub name: Option<String>,
    /// Labels jobs can require, as k=v,k=v (for example zone=a,gpu=h200).
    #[arg(long, env = "GLOSS_WORKER_LABELS", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Declared GPUs as MODEL:MEMORY, comma-separated (for example h200:141GiB,h200:141GiB);
    /// without it GPUs are read through NVML when the driver is present.
    #[arg(long, env = "GLOSS_WORKER_GPUS")]
    pub gpus: Option<String>,
    /// CPU cores to offer [default: all].
    #[arg(long, env = "GLOSS_WORKER_CPUS")]
    pub cpus: Option<f64>,
    /// Memory to offer, such as 8GiB [default: the machine's].
    #[arg(long, env = "GLOSS_WORKER_MEMORY")]
    pub memory: Option<String>,
    /// Base models (encoders for teachers) by directory name; jobs name them with their
    /// SHA-256 (`gloss digest DIR`) and a mismatch is refused.
    #[arg(long, env = "GLOSS_MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// Scratch space for jobs (trained models before upload, caches).
    #[arg(long, env = "GLOSS_WORK_DIR", default_value = "gloss-work")]
    pub work_dir: PathBuf,
    /// TOML file naming the OpenAI-compatible servers jobs may use as teachers
    /// (`openai:<name>`): a table `[openai.<name>]` each, with `url`, `model` and optional
    /// `key_file`, `max_concurrency`, `timeout_seconds`, `logprobs`. Keys stay on this worker.
    #[arg(long, env = "GLOSS_TEACHERS")]
    pub teachers: Option<PathBuf>,
    /// Directory with `ca.crt`, `tls.crt`, `tls.key`: the worker checks coordinators against
    /// the CA and presents its certificate (the internal port requires it when TLS is on).
    #[arg(long, env = "GLOSS_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,
}

/// Parses a size flag (`80GiB`).
pub fn parse_bytes(s: &str) -> Result<u64> {
    gloss_core::config::parse_bytes(s).map_err(anyhow::Error::msg)
}

/// GPUs from `MODEL:MEMORY,...`.
pub fn parse_gpus(s: &str) -> Result<Vec<Gpu>> {
    s.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .enumerate()
        .map(|(i, g)| {
            let (model, mem) = g
                .split_once(':')
                .with_context(|| format!("--gpus entry {g:?} is not MODEL:MEMORY"))?;
            Ok(Gpu {
                index: i as u32,
                model: model.to_string(),
                memory_bytes: parse_bytes(mem)?,
            })
        })
        .collect()
}

fn parse_labels(items: &[String]) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .with_context(|| format!("--labels entry {l:?} is not KEY=VALUE"))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn machine_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(4 << 30)
}

/// The worker's capacity as it registers it.
fn inventory(args: &WorkerArgs) -> Result<Worker> {
    let cores = args
        .cpus
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64));
    let gpus = match &args.gpus {
        Some(list) => parse_gpus(list)?,
        None => crate::gpu::detect(),
    };
    let name = args.name.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "worker".into())
    });
    Ok(Worker {
        name,
        cpu_millis: (cores * 1000.0) as u64,
        memory_bytes: match &args.memory {
            Some(m) => parse_bytes(m)?,
            None => machine_memory(),
        },
        gpus,
        labels: parse_labels(&args.labels)?.into_iter().collect(),
        ..Worker::default()
    })
}

struct Running {
    epoch: u64,
    cancel: Arc<AtomicBool>,
    /// The job's span: its reports are sent inside it.
    span: tracing::Span,
}

/// Reads the join token named by `--join-token-file`.
pub fn read_token(args: &WorkerArgs) -> Result<String> {
    let path = args
        .join_token_file
        .as_ref()
        .context("--join-token-file (GLOSS_JOIN_TOKEN_FILE) is required")?;
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading the join token {}", path.display()))?
        .trim()
        .to_string())
}

/// Runs a worker with the join token `token` until `shutdown` resolves.
pub async fn run(
    args: WorkerArgs,
    token: String,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let me = inventory(&args)?;
    std::fs::create_dir_all(&args.work_dir)
        .with_context(|| format!("creating {}", args.work_dir.display()))?;
    let tls = match &args.tls_dir {
        Some(dir) => Some(gloss_tls::TlsDir::load(dir)?.internal_client()),
        None => None,
    };
    let client = gloss_client::Client::connect_with(&args.coordinator, tls)
        .await
        .context("connecting to a coordinator")?;
    let mut rpc = WorkerServiceClient::new(client.channel());
    let (tx, mut reports) = mpsc::unbounded_channel::<Progress>();
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut worker_id = String::new();
    let mut interval = Duration::from_millis(1000);
    tokio::pin!(shutdown);
    loop {
        if worker_id.is_empty() {
            match rpc
                .register(RegisterWorkerRequest {
                    join_token: token.clone(),
                    worker: Some(me.clone()),
                })
                .await
            {
                Ok(r) => {
                    let r = r.into_inner();
                    worker_id = r.worker_id;
                    interval = Duration::from_millis(r.heartbeat_interval_ms.max(100));
                    tracing::info!(%worker_id, cpus = me.cpu_millis / 1000, gpus = me.gpus.len(), "worker registered");
                    println!("worker {worker_id} registered");
                }
                Err(e)
                    if e.code() == tonic::Code::Unauthenticated
                        || e.code() == tonic::Code::PermissionDenied =>
                {
                    bail!("registration refused: {}", e.message())
                }
                Err(e) => tracing::warn!(error = %e.message(), "cannot register yet"),
            }
        } else {
            let req = WorkerHeartbeatRequest {
                worker_id: worker_id.clone(),
                running: running
                    .iter()
                    .map(|(id, r)| RunningJob {
                        job_id: id.clone(),
                        epoch: r.epoch,
                    })
                    .collect(),
            };
            match rpc.heartbeat(req).await {
                Ok(reply) => {
                    let reply = reply.into_inner();
                    for id in &reply.stop {
                        if let Some(r) = running.get(id) {
                            tracing::info!(job_id = %id, "stopping job");
                            r.cancel.store(true, Ordering::SeqCst);
                        }
                    }
                    if reply.lost {
                        tracing::warn!(%worker_id, "declared lost by the cluster; registering again");
                        for r in running.values() {
                            r.cancel.store(true, Ordering::SeqCst);
                        }
                        worker_id.clear();
                    }
                    for a in reply.assignments {
                        let Some(job) = a.job else { continue };
                        if running.contains_key(&job.id) {
                            continue;
                        }
                        let cancel = Arc::new(AtomicBool::new(false));
                        let span = job_span(&job);
                        running.insert(
                            job.id.clone(),
                            Running {
                                epoch: job.epoch,
                                cancel: cancel.clone(),
                                span: span.clone(),
                            },
                        );
                        start_job(job, &args, &client, cancel, tx.clone(), span);
                    }
                }
                Err(e) => tracing::warn!(error = %e.message(), "heartbeat failed"),
            }
        }
        // Forward reports until the next heartbeat is due.
        let due = tokio::time::sleep(interval);
        tokio::pin!(due);
        loop {
            tokio::select! {
                _ = &mut due => break,
                _ = &mut shutdown => {
                    for r in running.values() {
                        r.cancel.store(true, Ordering::SeqCst);
                    }
                    return Ok(());
                }
                Some(report) = reports.recv() => {
                    deliver(&mut rpc, report, &mut running).await;
                }
            }
        }
    }
}

/// Sends one report; a refusal stops the job (it is not this worker's to finish any more).
async fn deliver(
    rpc: &mut WorkerServiceClient<gloss_client::Conn>,
    report: Progress,
    running: &mut HashMap<String, Running>,
) {
    let span_of = |id: &str| {
        running
            .get(id)
            .map_or_else(tracing::Span::none, |r| r.span.clone())
    };
    let (job_id, reply) = match report {
        Progress::Update(p) => {
            let span = span_of(&p.job_id);
            (
                p.job_id.clone(),
                rpc.report_progress(p).instrument(span).await,
            )
        }
        Progress::Done(f) => {
            let id = f.job_id.clone();
            let reply = send_finish(rpc, f).instrument(span_of(&id)).await;
            running.remove(&id);
            (id, reply)
        }
    };
    match reply {
        Ok(r) if !r.get_ref().accepted => {
            tracing::warn!(%job_id, reason = %r.get_ref().reason, "report refused; stopping the job");
            if let Some(r) = running.get(&job_id) {
                r.cancel.store(true, Ordering::SeqCst);
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(%job_id, error = %e.message(), "report not delivered"),
    }
}

/// A finish report is retried until a coordinator answers: losing it would rerun the job.
async fn send_finish(
    rpc: &mut WorkerServiceClient<gloss_client::Conn>,
    f: JobFinishReport,
) -> Result<tonic::Response<gloss_proto::v1::JobReportReply>, tonic::Status> {
    let mut last = None;
    for attempt in 0..20u64 {
        match rpc.finish_job(f.clone()).await {
            Ok(r) => return Ok(r),
            Err(e) if e.code() == tonic::Code::Unavailable => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| tonic::Status::unavailable("no coordinator answered")))
}

/// The span of one attempt of `job`, a child of the span that submitted it (its trace context
/// travels with the job).
fn job_span(job: &Job) -> tracing::Span {
    let kind = job.spec.as_ref().map_or("", |s| s.kind().as_str_name());
    let span = tracing::info_span!(
        "job",
        otel.name = "job.run",
        job.id = %job.id,
        job.kind = kind,
        job.attempt = job.attempt,
        job.epoch = job.epoch,
    );
    gloss_core::telemetry::set_remote_parent(&span, |key| {
        job.trace_context.get(key).map(String::as_str)
    });
    span
}

fn start_job(
    job: Job,
    args: &WorkerArgs,
    client: &gloss_client::Client,
    cancel: Arc<AtomicBool>,
    tx: mpsc::UnboundedSender<Progress>,
    span: tracing::Span,
) {
    let ctx = job_run::Context {
        client: client.clone(),
        runtime: tokio::runtime::Handle::current(),
        work_dir: args.work_dir.join(&job.id),
        models_dir: args.models_dir.clone(),
        teachers_file: args.teachers.clone(),
        cache_dir: args.work_dir.join("teacher-cache"),
        cancel,
        reports: tx.clone(),
        job: job.clone(),
        device: std::sync::OnceLock::new(),
    };
    tracing::info!(job_id = %job.id, epoch = job.epoch, attempt = job.attempt, "job started");
    std::thread::Builder::new()
        .name(format!("job-{}", job.id))
        .spawn(move || {
            let _entered = span.enter();
            let _ = tx.send(Progress::Update(JobProgressReport {
                job_id: job.id.clone(),
                epoch: job.epoch,
                started: true,
                log: vec![format!("attempt {} started", job.attempt)],
                ..Default::default()
            }));
            let outcome = job_run::run(&ctx);
            let finish = match outcome {
                Ok(result) => JobFinishReport {
                    job_id: job.id.clone(),
                    epoch: job.epoch,
                    ok: true,
                    result_json: result.to_string(),
                    log: vec!["finished".into()],
                    ..Default::default()
                },
                Err(e) => JobFinishReport {
                    job_id: job.id.clone(),
                    epoch: job.epoch,
                    ok: false,
                    error: format!("{e:#}"),
                    log: vec![format!("failed: {e:#}")],
                    ..Default::default()
                },
            };
            let _ = tx.send(Progress::Done(finish));
        })
        .expect("spawning a job thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpus_and_labels_parse() {
        let g = parse_gpus("h200:141GiB, a10:24GiB").unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(
            (g[1].index, g[1].model.as_str(), g[1].memory_bytes),
            (1, "a10", 24 << 30)
        );
        assert!(parse_gpus("h200")
            .unwrap_err()
            .to_string()
            .contains("MODEL:MEMORY"));
        assert!(parse_labels(&["zone".into()]).is_err());
    }
}
