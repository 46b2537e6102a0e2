//! Jobs and workers: the replicated lifecycle queued -> placed -> running -> succeeded | failed |
//! cancelled, with attempts, fencing epochs and leases.
//!
//! Every placement bumps the job's epoch; progress and results are accepted only with the
//! current epoch, so a worker that was presumed lost (and replaced) can never change the job.
//! A placement is leased: the worker's heartbeat renews it, and when it lapses (or the worker
//! is declared lost) the attempt ends and the job goes back to the queue after an exponential
//! backoff, or fails for good (dead-letter) on its last attempt. Time comes from the command.

use gloss_proto::v1::{
    command_result, CommandResult, Job, JobFinishReport, JobProgressReport, JobReportReply,
    JobState, LogLine, PlaceJobs, RegisterWorker, ReportJob, SubmitJob, Worker, WorkerBeat,
    WorkerHeartbeatResponse,
};
use gloss_proto::ErrorCode;
use gloss_store::rocksdb::{Direction, IteratorMode, DB};
use gloss_store::{cf, keys, state_cf};

use crate::overlay::Overlay;
use crate::read::decode;
use crate::tasks::Step;
use crate::{ok, rejected, StateError};

/// First retry waits this long; each further attempt doubles it, up to [`BACKOFF_MAX_MS`].
pub const BACKOFF_BASE_MS: i64 = 2_000;
pub const BACKOFF_MAX_MS: i64 = 60_000;
/// Log lines kept per report (longer reports keep their last lines).
const MAX_LOG_LINES_PER_REPORT: usize = 200;
const MAX_LOG_LINE: usize = 2_000;

/// Number of a `j-N` job id or a `w-N` worker id.
pub fn number(id: &str, prefix: &str) -> Option<u64> {
    id.strip_prefix(prefix)?.parse().ok()
}

/// Backoff before attempt `attempt + 1` after attempt `attempt` failed.
pub fn backoff_ms(attempt: u32) -> i64 {
    let shift = attempt.saturating_sub(1).min(20);
    (BACKOFF_BASE_MS << shift).min(BACKOFF_MAX_MS)
}

fn terminal(state: JobState) -> bool {
    matches!(
        state,
        JobState::Succeeded | JobState::Failed | JobState::Cancelled
    )
}

fn load_job(ov: &Overlay, id: &str) -> Result<Option<Job>, StateError> {
    match number(id, "j-") {
        Some(n) => ov.msg(state_cf::JOBS, "job", &keys::numbered(n)),
        None => Ok(None),
    }
}

fn save_job(ov: &mut Overlay, job: &Job) {
    if let Some(n) = number(&job.id, "j-") {
        ov.put(state_cf::JOBS, &keys::numbered(n), job);
    }
}

fn load_worker(ov: &Overlay, id: &str) -> Result<Option<Worker>, StateError> {
    match number(id, "w-") {
        Some(n) => ov.msg(state_cf::WORKERS, "worker", &keys::numbered(n)),
        None => Ok(None),
    }
}

fn save_worker(ov: &mut Overlay, w: &Worker) {
    if let Some(n) = number(&w.id, "w-") {
        ov.put(state_cf::WORKERS, &keys::numbered(n), w);
    }
}

fn not_found(what: &str, id: &str) -> CommandResult {
    rejected(ErrorCode::NotFound, format!("{what} {id:?} not found"))
}

pub(crate) fn register_worker(
    ov: &mut Overlay,
    now: i64,
    c: &RegisterWorker,
) -> Step<CommandResult> {
    let mut w = c.worker.clone().unwrap_or_default();
    let n = ov.next_id(b"next_worker_id")?;
    w.id = format!("w-{n}");
    w.registered_at_ms = now;
    w.last_heartbeat_ms = now;
    w.lost = false;
    w.jobs.clear();
    save_worker(ov, &w);
    Ok(Ok(ok(command_result::Result::Worker(w))))
}

pub(crate) fn submit_job(ov: &mut Overlay, now: i64, c: &SubmitJob) -> Step<CommandResult> {
    let mut job = c.job.clone().unwrap_or_default();
    let n = ov.next_id(b"next_job_id")?;
    job.id = format!("j-{n}");
    job.queued_seq = n;
    job.set_state(JobState::Queued);
    job.attempt = 0;
    job.epoch = 0;
    job.submitted_at_ms = now;
    if job.max_attempts == 0 {
        job.max_attempts = 3;
    }
    save_job(ov, &job);
    Ok(Ok(ok(command_result::Result::Job(job))))
}

pub(crate) fn place_jobs(ov: &mut Overlay, now: i64, c: &PlaceJobs) -> Step<CommandResult> {
    let mut placed = 0u64;
    for p in &c.placements {
        let Some(mut job) = load_job(ov, &p.job_id)? else {
            continue;
        };
        // The decision was made on an earlier state: skip what changed since.
        if job.state() != JobState::Queued || job.not_before_ms > now {
            continue;
        }
        let Some(mut w) = load_worker(ov, &p.worker_id)? else {
            continue;
        };
        if w.lost {
            continue;
        }
        job.epoch += 1;
        job.attempt += 1;
        job.set_state(JobState::Placed);
        job.worker_id = w.id.clone();
        job.gpus = p.gpus.clone();
        job.lease_expires_at_ms = now.saturating_add(c.lease_ms as i64);
        job.progress = 0.0;
        w.jobs.push(job.id.clone());
        save_job(ov, &job);
        save_worker(ov, &w);
        placed += 1;
    }
    Ok(Ok(ok(command_result::Result::Count(placed))))
}

pub(crate) fn worker_beat(ov: &mut Overlay, now: i64, c: &WorkerBeat) -> Step<CommandResult> {
    let mut reply = WorkerHeartbeatResponse::default();
    let Some(mut w) = load_worker(ov, &c.worker_id)? else {
        reply.lost = true;
        return Ok(Ok(ok(command_result::Result::Beat(reply))));
    };
    if w.lost {
        reply.lost = true;
        reply.stop = c.running.iter().map(|r| r.job_id.clone()).collect();
        return Ok(Ok(ok(command_result::Result::Beat(reply))));
    }
    w.last_heartbeat_ms = now;
    for r in &c.running {
        match load_job(ov, &r.job_id)? {
            Some(mut job)
                if job.worker_id == w.id
                    && job.epoch == r.epoch
                    && !terminal(job.state())
                    && !job.cancel_requested =>
            {
                job.lease_expires_at_ms = now.saturating_add(c.lease_ms as i64);
                save_job(ov, &job);
            }
            _ => reply.stop.push(r.job_id.clone()),
        }
    }
    let mut keep = Vec::new();
    for id in std::mem::take(&mut w.jobs) {
        let Some(mut job) = load_job(ov, &id)? else {
            continue;
        };
        if job.worker_id != w.id || terminal(job.state()) {
            continue;
        }
        let running = c.running.iter().any(|r| r.job_id == id);
        if job.state() == JobState::Placed && !running {
            if job.cancel_requested {
                // Cancelled before the worker ever started it.
                job.set_state(JobState::Cancelled);
                job.finished_at_ms = now;
                save_job(ov, &job);
                continue;
            }
            reply.assignments.push(gloss_proto::v1::JobAssignment {
                job: Some(job.clone()),
            });
        }
        keep.push(id);
    }
    w.jobs = keep;
    save_worker(ov, &w);
    Ok(Ok(ok(command_result::Result::Beat(reply))))
}

/// Ends the job's current attempt: retried after backoff, or failed for good on its last one.
fn end_attempt(ov: &mut Overlay, job: &mut Job, now: i64, reason: &str) -> Result<(), StateError> {
    job.history
        .push(format!("attempt {}: {reason}", job.attempt));
    if let Some(mut w) = load_worker(ov, &job.worker_id)? {
        w.jobs.retain(|j| j != &job.id);
        save_worker(ov, &w);
    }
    job.lease_expires_at_ms = 0;
    if job.cancel_requested {
        job.set_state(JobState::Cancelled);
        job.finished_at_ms = now;
    } else if job.attempt >= job.max_attempts {
        job.set_state(JobState::Failed);
        job.error = format!("dead-lettered after {} attempt(s): {reason}", job.attempt);
        job.finished_at_ms = now;
    } else {
        job.set_state(JobState::Queued);
        job.not_before_ms = now.saturating_add(backoff_ms(job.attempt));
        job.worker_id.clear();
        job.gpus.clear();
    }
    save_job(ov, job);
    Ok(())
}

fn append_logs(ov: &mut Overlay, job: &Job, now: i64, lines: &[String]) -> Result<(), StateError> {
    let Some(n) = number(&job.id, "j-") else {
        return Ok(());
    };
    let skip = lines.len().saturating_sub(MAX_LOG_LINES_PER_REPORT);
    let counter = [b"next_log_line/".as_slice(), &keys::numbered(n)].concat();
    for text in &lines[skip..] {
        let line = ov.next_id(&counter)?;
        let text: String = text.chars().take(MAX_LOG_LINE).collect();
        let rec = LogLine {
            line,
            at_ms: now,
            attempt: job.attempt,
            text,
        };
        ov.put(state_cf::JOB_LOGS, &keys::job_log(n, line), &rec);
    }
    Ok(())
}

fn refuse(reason: String) -> Step<CommandResult> {
    Ok(Ok(ok(command_result::Result::Report(JobReportReply {
        accepted: false,
        reason,
    }))))
}

pub(crate) fn report_job(ov: &mut Overlay, now: i64, c: &ReportJob) -> Step<CommandResult> {
    let (job_id, epoch) = match (&c.progress, &c.finish) {
        (Some(p), None) => (p.job_id.clone(), p.epoch),
        (None, Some(f)) => (f.job_id.clone(), f.epoch),
        _ => {
            return Ok(Err(rejected(
                ErrorCode::InvalidArgument,
                "a report holds exactly one of progress and finish",
            )))
        }
    };
    let Some(mut job) = load_job(ov, &job_id)? else {
        return Ok(Err(not_found("job", &job_id)));
    };
    if epoch != job.epoch {
        return refuse(format!(
            "stale epoch {epoch}: job {job_id} is at epoch {} (attempt {})",
            job.epoch, job.attempt
        ));
    }
    if terminal(job.state()) || job.state() == JobState::Queued {
        return refuse(format!(
            "job {job_id} is {} ",
            job.state()
                .as_str_name()
                .trim_start_matches("JOB_STATE_")
                .to_lowercase()
        ));
    }
    if let Some(p) = &c.progress {
        progress(ov, &mut job, now, p, c.lease_ms)?;
        if job.cancel_requested {
            return refuse(format!("job {job_id} was cancelled"));
        }
    } else if let Some(f) = &c.finish {
        finish(ov, &mut job, now, f)?;
    }
    Ok(Ok(ok(command_result::Result::Report(JobReportReply {
        accepted: true,
        reason: String::new(),
    }))))
}

fn progress(
    ov: &mut Overlay,
    job: &mut Job,
    now: i64,
    p: &JobProgressReport,
    lease_ms: u64,
) -> Result<(), StateError> {
    if job.state() == JobState::Placed && p.started {
        job.set_state(JobState::Running);
        job.started_at_ms = now;
    }
    job.progress = p.progress.clamp(0.0, 1.0);
    job.metrics.extend(p.metrics.iter().cloned());
    job.lease_expires_at_ms = now.saturating_add(lease_ms as i64);
    append_logs(ov, job, now, &p.log)?;
    save_job(ov, job);
    Ok(())
}

fn finish(
    ov: &mut Overlay,
    job: &mut Job,
    now: i64,
    f: &JobFinishReport,
) -> Result<(), StateError> {
    append_logs(ov, job, now, &f.log)?;
    if f.ok {
        if let Some(mut w) = load_worker(ov, &job.worker_id)? {
            w.jobs.retain(|j| j != &job.id);
            save_worker(ov, &w);
        }
        job.set_state(JobState::Succeeded);
        job.result_json = f.result_json.clone();
        job.progress = 1.0;
        job.finished_at_ms = now;
        job.lease_expires_at_ms = 0;
        job.error.clear();
        save_job(ov, job);
        return Ok(());
    }
    let reason = if f.error.is_empty() {
        "failed without a reason".to_string()
    } else {
        f.error.clone()
    };
    end_attempt(ov, job, now, &reason)
}

pub(crate) fn cancel_job(ov: &mut Overlay, now: i64, id: &str) -> Step<CommandResult> {
    let Some(mut job) = load_job(ov, id)? else {
        return Ok(Err(not_found("job", id)));
    };
    match job.state() {
        s if terminal(s) => {
            return Ok(Err(rejected(
                ErrorCode::FailedPrecondition,
                format!(
                    "job {id} already ended ({})",
                    s.as_str_name()
                        .trim_start_matches("JOB_STATE_")
                        .to_lowercase()
                ),
            )))
        }
        JobState::Queued => {
            job.set_state(JobState::Cancelled);
            job.finished_at_ms = now;
        }
        _ => job.cancel_requested = true,
    }
    save_job(ov, &job);
    Ok(Ok(ok(command_result::Result::Job(job))))
}

pub(crate) fn expire_jobs(ov: &mut Overlay, now: i64, timeout_ms: u64) -> Step<CommandResult> {
    let mut ended = 0u64;
    for (_, v) in ov.scan(state_cf::WORKERS, b"", b"", usize::MAX)? {
        let mut w: Worker = decode("worker", &v)?;
        if w.lost || now.saturating_sub(w.last_heartbeat_ms) <= timeout_ms as i64 {
            continue;
        }
        w.lost = true;
        let jobs = std::mem::take(&mut w.jobs);
        save_worker(ov, &w);
        let silent = now.saturating_sub(w.last_heartbeat_ms) / 1000;
        for id in jobs {
            if let Some(mut job) = load_job(ov, &id)? {
                if job.worker_id == w.id
                    && !terminal(job.state())
                    && job.state() != JobState::Queued
                {
                    let reason = format!("worker {} lost (no heartbeat for {silent} s)", w.id);
                    end_attempt(ov, &mut job, now, &reason)?;
                    ended += 1;
                }
            }
        }
    }
    for (_, v) in ov.scan(state_cf::JOBS, b"", b"", usize::MAX)? {
        let mut job: Job = decode("job", &v)?;
        let active = matches!(job.state(), JobState::Placed | JobState::Running);
        if active && job.lease_expires_at_ms != 0 && job.lease_expires_at_ms < now {
            let reason = format!("lease lapsed on worker {}", job.worker_id);
            end_attempt(ov, &mut job, now, &reason)?;
            ended += 1;
        }
    }
    Ok(Ok(ok(command_result::Result::Count(ended))))
}

/// One job.
pub fn job(db: &DB, id: &str) -> Result<Option<Job>, StateError> {
    match number(id, "j-") {
        Some(n) => db
            .get_cf(cf(db, state_cf::JOBS)?, keys::numbered(n))?
            .map(|v| decode("job", &v))
            .transpose(),
        None => Ok(None),
    }
}

/// Jobs, newest first, in `states` (all when empty), at most `limit`.
pub fn jobs(db: &DB, states: &[JobState], limit: usize) -> Result<Vec<Job>, StateError> {
    let mut out = Vec::new();
    for kv in db.iterator_cf(cf(db, state_cf::JOBS)?, IteratorMode::End) {
        let (_, v) = kv?;
        let job: Job = decode("job", &v)?;
        if states.is_empty() || states.contains(&job.state()) {
            out.push(job);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// A job's log lines after line `after`.
pub fn job_logs(db: &DB, id: &str, after: u64) -> Result<Vec<LogLine>, StateError> {
    let Some(n) = number(id, "j-") else {
        return Ok(Vec::new());
    };
    let from = keys::job_log(n, after.saturating_add(1));
    let prefix = keys::numbered(n);
    let mut out = Vec::new();
    for kv in db.iterator_cf(
        cf(db, state_cf::JOB_LOGS)?,
        IteratorMode::From(&from, Direction::Forward),
    ) {
        let (k, v) = kv?;
        if !k.starts_with(&prefix) {
            break;
        }
        out.push(decode("job log line", &v)?);
    }
    Ok(out)
}

/// Every registered worker, by id.
pub fn workers(db: &DB) -> Result<Vec<Worker>, StateError> {
    db.iterator_cf(cf(db, state_cf::WORKERS)?, IteratorMode::Start)
        .map(|kv| {
            let (_, v) = kv?;
            decode("worker", &v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff_ms(1), 2_000);
        assert_eq!(backoff_ms(2), 4_000);
        assert_eq!(backoff_ms(3), 8_000);
        assert_eq!(backoff_ms(30), BACKOFF_MAX_MS);
    }

    #[test]
    fn ids_parse_with_their_prefix_only() {
        assert_eq!(number("j-12", "j-"), Some(12));
        assert_eq!(number("w-3", "j-"), None);
        assert_eq!(number("j-x", "j-"), None);
    }
}
