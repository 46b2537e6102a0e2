//! Reads of tasks, feeds, answers, reviews and gold records. Like [`crate::read`], nothing here
//! writes; multi-key reads take a snapshot so they see one point of the log.

use gloss_proto::v1::{
    AnnotatorProgress, AnnotatorRecord, Answer, AnswerRecord, GoldRecord, Group, ReviewEntry,
    Suggestion, Task, TaskExampleRecord, TaskProgress, TaskRecord,
};
use gloss_store::rocksdb::{Direction, IteratorMode, Snapshot, DB};
use gloss_store::{cf, keys, state_cf};

use crate::feed::ttl_ms;
use crate::read::{decode, scan_options};
use crate::StateError;

/// One task's stored record.
pub fn task(db: &DB, project: &str, name: &str) -> Result<Option<TaskRecord>, StateError> {
    db.get_cf(cf(db, state_cf::TASKS)?, keys::named(project, name))?
        .map(|v| decode("task", &v))
        .transpose()
}

/// A project's tasks, by name.
pub fn tasks(db: &DB, project: &str) -> Result<Vec<Task>, StateError> {
    let prefix = keys::dataset_prefix(project);
    prefixed(
        db,
        None,
        state_cf::TASKS,
        &prefix,
        &prefix,
        usize::MAX,
        |_, v| {
            let rec: TaskRecord = decode("task", v)?;
            Ok(rec.task)
        },
    )
    .map(|v| v.into_iter().flatten().collect())
}

/// One annotator group.
pub fn group(db: &DB, project: &str, name: &str) -> Result<Option<Group>, StateError> {
    db.get_cf(cf(db, state_cf::GROUPS)?, keys::named(project, name))?
        .map(|v| decode("group", &v))
        .transpose()
}

/// Feed state of one example of a task.
pub fn task_example(
    db: &DB,
    task_id: u64,
    seq: u64,
) -> Result<Option<TaskExampleRecord>, StateError> {
    db.get_cf(
        cf(db, state_cf::TASK_EXAMPLES)?,
        keys::task_seq(task_id, seq),
    )?
    .map(|v| decode("task example", &v))
    .transpose()
}

/// The suggestion attached to one example of a task.
pub fn suggestion(db: &DB, task_id: u64, seq: u64) -> Result<Option<Suggestion>, StateError> {
    db.get_cf(cf(db, state_cf::SUGGESTIONS)?, keys::task_seq(task_id, seq))?
        .map(|v| decode("suggestion", &v))
        .transpose()
}

/// One annotator's answer record for one example.
pub fn answer(
    db: &DB,
    task_id: u64,
    seq: u64,
    annotator: &str,
) -> Result<Option<AnswerRecord>, StateError> {
    db.get_cf(
        cf(db, state_cf::ANSWERS)?,
        keys::answer(task_id, seq, annotator),
    )?
    .map(|v| decode("answer", &v))
    .transpose()
}

/// Up to `limit` decoded entries of `cf_name` under `prefix`, from `from` on.
fn prefixed<T>(
    db: &DB,
    snapshot: Option<&Snapshot<'_>>,
    cf_name: &'static str,
    prefix: &[u8],
    from: &[u8],
    limit: usize,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<T, StateError>,
) -> Result<Vec<T>, StateError> {
    let iter = db.iterator_cf_opt(
        cf(db, cf_name)?,
        scan_options(snapshot),
        IteratorMode::From(from, Direction::Forward),
    );
    let mut out = Vec::new();
    for kv in iter {
        let (k, v) = kv?;
        if !k.starts_with(prefix) || out.len() == limit {
            break;
        }
        out.push(f(&k, &v)?);
    }
    Ok(out)
}

/// Every current answer of a task grouped by example, in example order, as of `snapshot`.
/// Calls `f` once per example with its answers (ordered by annotator).
pub fn for_each_answered<E: From<StateError>>(
    db: &DB,
    snapshot: &Snapshot<'_>,
    task_id: u64,
    mut f: impl FnMut(u64, Vec<Answer>) -> Result<(), E>,
) -> Result<(), E> {
    let prefix = keys::id_prefix(task_id);
    let iter = db.iterator_cf_opt(
        cf(db, state_cf::ANSWERS).map_err(StateError::from)?,
        scan_options(Some(snapshot)),
        IteratorMode::From(&prefix, Direction::Forward),
    );
    let mut group: Option<(u64, Vec<Answer>)> = None;
    for kv in iter {
        let (k, v) = kv.map_err(StateError::from)?;
        if !k.starts_with(&prefix) {
            break;
        }
        let (seq, _) = keys::decode_answer(&k).map_err(StateError::from)?;
        let rec: AnswerRecord = decode("answer", &v)?;
        let Some(current) = rec.current.filter(|_| !rec.withdrawn) else {
            continue;
        };
        match &mut group {
            Some((s, answers)) if *s == seq => answers.push(current),
            _ => {
                if let Some((s, answers)) = group.take() {
                    f(s, answers)?;
                }
                group = Some((seq, vec![current]));
            }
        }
    }
    if let Some((s, answers)) = group {
        f(s, answers)?;
    }
    Ok(())
}

/// Every gold record of a task in example order, as of `snapshot`.
pub fn for_each_gold<E: From<StateError>>(
    db: &DB,
    snapshot: &Snapshot<'_>,
    task_id: u64,
    mut f: impl FnMut(GoldRecord) -> Result<(), E>,
) -> Result<(), E> {
    let prefix = keys::task_tag(task_id, keys::tag::GOLD);
    let iter = db.iterator_cf_opt(
        cf(db, state_cf::REVIEWS).map_err(StateError::from)?,
        scan_options(Some(snapshot)),
        IteratorMode::From(&prefix, Direction::Forward),
    );
    for kv in iter {
        let (k, v) = kv.map_err(StateError::from)?;
        if !k.starts_with(&prefix) {
            break;
        }
        f(decode("gold", &v)?)?;
    }
    Ok(())
}

/// One gold record.
pub fn gold(db: &DB, task_id: u64, seq: u64) -> Result<Option<GoldRecord>, StateError> {
    db.get_cf(
        cf(db, state_cf::REVIEWS)?,
        keys::review(task_id, keys::tag::GOLD, seq),
    )?
    .map(|v| decode("gold", &v))
    .transpose()
}

/// A page of a task's review queue after `after_seq`: (sequence, entry, current answers).
pub fn review_queue(
    db: &DB,
    task_id: u64,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<(u64, ReviewEntry, Vec<Answer>)>, StateError> {
    let prefix = keys::task_tag(task_id, keys::tag::QUEUE);
    let from = keys::review(task_id, keys::tag::QUEUE, after_seq.saturating_add(1));
    let entries = prefixed(
        db,
        None,
        state_cf::REVIEWS,
        &prefix,
        &from,
        limit,
        |k, v| Ok((keys::decode_review(k)?, decode::<ReviewEntry>("review", v)?)),
    )?;
    let mut out = Vec::with_capacity(entries.len());
    for (seq, entry) in entries {
        let te = task_example(db, task_id, seq)?.unwrap_or_default();
        let mut answers = Vec::new();
        for who in &te.answered {
            if let Some(rec) = answer(db, task_id, seq, who)?.filter(|r| !r.withdrawn) {
                answers.extend(rec.current);
            }
        }
        out.push((seq, entry, answers));
    }
    Ok(out)
}

fn per_hour(count: u64, first_ms: i64, last_ms: i64) -> f64 {
    let span_ms = (last_ms - first_ms).max(0) as f64;
    if count < 2 || span_ms <= 0.0 {
        return 0.0;
    }
    // `count` answers span `count - 1` intervals.
    (count - 1) as f64 * 3_600_000.0 / span_ms
}

/// Progress of a task at time `now` (leases of annotators idle past the TTL are not counted as
/// in progress, whether or not they were reaped yet).
pub fn progress(
    db: &DB,
    rec: &TaskRecord,
    source_examples: u64,
    now: i64,
) -> Result<TaskProgress, StateError> {
    let task = rec.task.clone().unwrap_or_default();
    let ttl = ttl_ms(&task);
    let prefix = keys::task_tag(rec.task_id, keys::tag::ANNOTATOR);
    let annotators = prefixed(
        db,
        None,
        state_cf::FEED,
        &prefix,
        &prefix,
        usize::MAX,
        |_, v| decode::<AnnotatorRecord>("annotator", v),
    )?;
    let mut in_progress = 0;
    let per: Vec<AnnotatorProgress> = annotators
        .into_iter()
        .map(|a| {
            let live = if a.last_seen_ms.saturating_add(ttl) > now {
                a.leased
            } else {
                0
            };
            in_progress += live;
            AnnotatorProgress {
                answers_per_hour: per_hour(a.answers, a.first_answer_ms, a.last_answer_ms),
                annotator: a.annotator,
                answers: a.answers,
                in_progress: live,
                first_answer_ms: a.first_answer_ms,
                last_answer_ms: a.last_answer_ms,
                last_seen_ms: a.last_seen_ms,
            }
        })
        .collect();
    Ok(TaskProgress {
        project: task.project.clone(),
        task: task.name.clone(),
        total: source_examples,
        done: rec.done,
        in_progress,
        remaining: source_examples.saturating_sub(rec.done),
        answers: rec.answers,
        answers_per_hour: per_hour(rec.answers, rec.first_answer_ms, rec.last_answer_ms),
        review_pending: rec.review_pending,
        gold: rec.gold,
        annotators: per,
        state: task.state,
    })
}
