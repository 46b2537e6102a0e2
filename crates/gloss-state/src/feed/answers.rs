//! Answers: recording an answer or a revision (validate, admit, record), and undoing one.

use gloss_proto::v1::{
    command_result, Answer, AnswerOutcome, AnswerRecord, CommandResult, ExampleRow, ImportAnswers,
    Task, TaskExampleRecord, TaskRecord, UndoAnswer,
};
use gloss_proto::ErrorCode;
use gloss_store::rocksdb::{Direction, IteratorMode, Snapshot, DB};
use gloss_store::{cf, keys, state_cf};

use super::{
    admit_annotator, drop_lease, example_state, grant_lease, overlap, save_example, tick,
    update_annotator,
};
use crate::overlay::Overlay;
use crate::read::{decode, scan_options};
use crate::tasks::{
    check_annotator, count_into, open_task, save_task, source_dataset, source_example, task_of,
    Step,
};
use crate::{hash_hex, ok, rejected, review, StateError};

fn answer_key(rec: &TaskRecord, seq: u64, who: &str) -> Vec<u8> {
    keys::answer(rec.task_id, seq, who)
}

/// Records an answer or a revision: a retried request returns the first answer; otherwise
/// [`validate`] checks the answer against the task, [`admit`] against the example's holders,
/// and [`record`] stores it.
pub(crate) fn submit(
    ov: &mut Overlay,
    now: i64,
    answer: &Answer,
    revise: bool,
) -> Step<CommandResult> {
    let mut rec = match open_task(ov, &answer.project, &answer.task)? {
        Ok(r) => r,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let who = answer.annotator.as_str();
    let id_key = keys::answer_id(rec.task_id, who, &answer.answer_id);
    if let Some(first) = ov.msg::<Answer>(state_cf::IDEMPOTENCY, "answer", &id_key)? {
        return Ok(Ok(ok(command_result::Result::Answer(AnswerOutcome {
            answer: Some(first),
            duplicate: true,
        }))));
    }
    let row = match validate(ov, &rec, answer)? {
        Ok(row) => row,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let now = tick(&mut rec, now);
    let seq = answer.seq;
    let key = answer_key(&rec, seq, who);
    let existing: Option<AnswerRecord> = ov.msg(state_cf::ANSWERS, "answer", &key)?;
    let mut te = example_state(ov, rec.task_id, seq)?.unwrap_or_default();
    let current = existing.as_ref().filter(|r| !r.withdrawn).is_some();
    if let Err(rejection) = admit(ov, &mut rec, &mut te, who, seq, current, revise)? {
        return Ok(Err(rejection));
    }
    let stored = record(
        ov,
        &mut rec,
        &mut te,
        Recorded {
            answer,
            row: &row,
            existing: existing.unwrap_or_default(),
            id_key: &id_key,
            revise,
            now,
        },
    )?;
    save_task(ov, &rec);
    Ok(Ok(ok(command_result::Result::Answer(AnswerOutcome {
        answer: Some(stored),
        duplicate: false,
    }))))
}

/// Checks the answer on its own: the annotator may work in the task, the id is well formed,
/// the labels fit the task's scheme and the example exists. Returns the example's row.
fn validate(ov: &Overlay, rec: &TaskRecord, answer: &Answer) -> Step<ExampleRow> {
    if let Err(rejection) = admit_annotator(ov, rec, &answer.annotator)? {
        return Ok(Err(rejection));
    }
    checked(ov, rec, answer)
}

/// [`validate`] but for the annotator's place in the pool.
fn checked(ov: &Overlay, rec: &TaskRecord, answer: &Answer) -> Step<ExampleRow> {
    if answer.answer_id.is_empty() || answer.answer_id.len() > 128 {
        return Ok(Err(rejected(
            ErrorCode::InvalidArgument,
            format!(
                "answer_id must be 1-128 bytes, got {}",
                answer.answer_id.len()
            ),
        )));
    }
    let task = task_of(rec);
    if let Err(e) = gloss_annotate::check_scheme(task, answer) {
        return Ok(Err(rejected(
            ErrorCode::InvalidArgument,
            format!("example {}: {e}", answer.seq),
        )));
    }
    let ds = source_dataset(ov, task)?;
    match source_example(ov, &ds, answer.seq)? {
        Some(row) => Ok(image_fits(task, &row, answer).map(|()| row)),
        None => Ok(Err(rejected(
            ErrorCode::NotFound,
            format!(
                "example {} is not in dataset {}/{}",
                answer.seq, task.project, task.source_dataset
            ),
        ))),
    }
}

/// On an image task: the example has an image and the answer's boxes lie inside it.
pub(crate) fn image_fits(
    task: &Task,
    row: &ExampleRow,
    answer: &Answer,
) -> Result<(), CommandResult> {
    if !gloss_annotate::is_image_interface(task.interface()) {
        return Ok(());
    }
    let Some(image) = &row.image else {
        return Err(rejected(
            ErrorCode::FailedPrecondition,
            format!(
                "example {} has no image; an image task needs examples with images",
                answer.seq
            ),
        ));
    };
    gloss_annotate::check_box_bounds(&answer.boxes, image.width, image.height).map_err(|e| {
        rejected(
            ErrorCode::InvalidArgument,
            format!("example {}: {e}", answer.seq),
        )
    })
}

/// Decides whether the example takes this answer from `who` now: a revision needs a current
/// answer, a new answer needs none and either the annotator's lease (which it consumes) or,
/// for a late answer, room left under the task's overlap.
fn admit(
    ov: &mut Overlay,
    rec: &mut TaskRecord,
    te: &mut TaskExampleRecord,
    who: &str,
    seq: u64,
    current: bool,
    revise: bool,
) -> Step<()> {
    match (revise, current) {
        (true, false) => Ok(Err(rejected(
            ErrorCode::FailedPrecondition,
            format!("{who} has no answer to example {seq} to revise"),
        ))),
        (false, true) => Ok(Err(rejected(
            ErrorCode::AlreadyExists,
            format!("{who} already answered example {seq}; revise the answer instead"),
        ))),
        (false, false) if te.leased.iter().any(|a| a == who) => {
            drop_lease(ov, rec, seq, te, who)?;
            Ok(Ok(()))
        }
        (false, false) => {
            // A late answer (the lease expired while the annotator worked offline) still counts
            // when the example was handed out and has room for it.
            let task = task_of(rec);
            let room = te.leased.len() + te.answered.len() < overlap(task);
            if !room || !was_handed_out(ov, rec, seq)? {
                return Ok(Err(not_leased(seq, who, task)));
            }
            Ok(Ok(()))
        }
        (true, true) => Ok(Ok(())),
    }
}

/// What [`record`] stores.
struct Recorded<'a> {
    answer: &'a Answer,
    row: &'a ExampleRow,
    existing: AnswerRecord,
    id_key: &'a [u8],
    revise: bool,
    now: i64,
}

/// Stores an admitted answer (keeping earlier revisions), its idempotency entry, the counters
/// and the example's review state. Returns the answer as stored.
fn record(
    ov: &mut Overlay,
    rec: &mut TaskRecord,
    te: &mut TaskExampleRecord,
    r: Recorded<'_>,
) -> Result<Answer, StateError> {
    let task = task_of(rec).clone();
    let (who, seq, now, revise) = (r.answer.annotator.as_str(), r.answer.seq, r.now, r.revise);
    let mut stored = r.answer.clone();
    stored.at_ms = now;
    stored.input_hash = hash_hex(&r.row.input_hash);
    if task.interface() != gloss_proto::v1::Interface::Binary {
        stored.label = String::new();
    }
    let mut record = r.existing;
    stored.revision = record.current.as_ref().map_or(1, |c| c.revision + 1);
    if let Some(prev) = record.current.take() {
        record.history.push(prev);
    }
    record.current = Some(stored.clone());
    record.withdrawn = false;
    ov.put(state_cf::ANSWERS, &answer_key(rec, seq, who), &record);
    ov.put(state_cf::IDEMPOTENCY, r.id_key, &stored);
    if !revise {
        te.answered.push(who.to_string());
        save_example(ov, rec, seq, te);
        if te.answered.len() == overlap(&task) {
            rec.done += 1;
        }
        rec.answers += 1;
        if rec.first_answer_ms == 0 {
            rec.first_answer_ms = now;
        }
        rec.last_answer_ms = now;
        count_into(ov, &task.project, &task.output_dataset, 1)?;
    }
    update_annotator(ov, rec, who, |a| {
        a.last_seen_ms = now;
        if !revise {
            a.answers += 1;
            if a.first_answer_ms == 0 {
                a.first_answer_ms = now;
            }
            a.last_answer_ms = now;
        }
    })?;
    review::example_changed(ov, rec, seq, te, now)?;
    Ok(stored)
}

fn not_leased(seq: u64, who: &str, task: &Task) -> CommandResult {
    rejected(
        ErrorCode::FailedPrecondition,
        format!(
            "example {seq} is not leased to {who} (the lease expired or was never granted) and it has no room for another answer (overlap {})",
            task.overlap.max(1)
        ),
    )
}

/// Whether the example has ever been handed out in this task.
fn was_handed_out(ov: &Overlay, rec: &TaskRecord, seq: u64) -> Result<bool, StateError> {
    ov.exists(state_cf::TASK_EXAMPLES, &keys::task_seq(rec.task_id, seq))
}

/// Records answers made in another tool, all or nothing: each is checked like a submitted answer
/// but for the pool (the manager importing vouches for the annotators), keeps the overlap and
/// one-answer-per-annotator rules, and is recorded once per (annotator, answer id). Returns how
/// many were recorded; the rest were recorded before.
pub(crate) fn import_answers(ov: &mut Overlay, now: i64, c: &ImportAnswers) -> Step<CommandResult> {
    let mut rec = match open_task(ov, &c.project, &c.task)? {
        Ok(r) => r,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let now = tick(&mut rec, now);
    let mut recorded = 0u64;
    for (i, answer) in c.answers.iter().enumerate() {
        let at = |e: CommandResult| Ok(Err(prefixed(e, &format!("answers[{i}]"))));
        if answer.project != c.project || answer.task != c.task {
            return at(rejected(
                ErrorCode::InvalidArgument,
                format!("belongs to {}/{}", answer.project, answer.task),
            ));
        }
        let who = answer.annotator.as_str();
        if let Err(reason) = check_annotator(who) {
            return at(rejected(
                ErrorCode::InvalidArgument,
                format!("annotator: {reason}"),
            ));
        }
        let id_key = keys::answer_id(rec.task_id, who, &answer.answer_id);
        if ov.exists(state_cf::IDEMPOTENCY, &id_key)? {
            continue;
        }
        let row = match checked(ov, &rec, answer)? {
            Ok(row) => row,
            Err(rejection) => return at(rejection),
        };
        let seq = answer.seq;
        let existing: Option<AnswerRecord> =
            ov.msg(state_cf::ANSWERS, "answer", &answer_key(&rec, seq, who))?;
        let current = existing.as_ref().filter(|r| !r.withdrawn).is_some();
        let mut te = example_state(ov, rec.task_id, seq)?.unwrap_or_default();
        if current {
            return at(rejected(
                ErrorCode::AlreadyExists,
                format!("{who} already answered example {seq}"),
            ));
        }
        if te.leased.iter().any(|a| a == who) {
            drop_lease(ov, &mut rec, seq, &mut te, who)?;
        } else {
            let task = task_of(&rec);
            let held = te.leased.len() + te.answered.len();
            if held >= overlap(task) {
                return at(rejected(
                    ErrorCode::FailedPrecondition,
                    format!(
                        "example {seq} already has {held} answers and leases (overlap {})",
                        task.overlap.max(1)
                    ),
                ));
            }
        }
        if !was_handed_out(ov, &rec, seq)? {
            // Never handed out: from now on the example's record says where it stands, and the
            // feed hands it out (while it has room) in import order, never again as new.
            te.base_pos = seq.saturating_sub(1);
        }
        record(
            ov,
            &mut rec,
            &mut te,
            Recorded {
                answer,
                row: &row,
                existing: existing.unwrap_or_default(),
                id_key: &id_key,
                revise: false,
                now,
            },
        )?;
        recorded += 1;
    }
    save_task(ov, &rec);
    Ok(Ok(ok(command_result::Result::Count(recorded))))
}

/// `rejection` with its message prefixed by `what`.
fn prefixed(mut rejection: CommandResult, what: &str) -> CommandResult {
    if let Some(command_result::Result::Error(e)) = rejection.result.as_mut() {
        e.message = format!("{what}: {}", e.message);
    }
    rejection
}

/// Withdraws the annotator's answer and leases the example back to them.
pub(crate) fn undo(ov: &mut Overlay, now: i64, c: &UndoAnswer) -> Step<CommandResult> {
    let mut rec = match open_task(ov, &c.project, &c.task)? {
        Ok(r) => r,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let (who, seq) = (c.annotator.as_str(), c.seq);
    if let Err(rejection) = admit_annotator(ov, &rec, who)? {
        return Ok(Err(rejection));
    }
    let now = tick(&mut rec, now);
    let key = answer_key(&rec, seq, who);
    let Some(mut record) = ov
        .msg::<AnswerRecord>(state_cf::ANSWERS, "answer", &key)?
        .filter(|r| !r.withdrawn)
    else {
        return Ok(Err(rejected(
            ErrorCode::NotFound,
            format!("{who} has no answer to example {seq} to undo"),
        )));
    };
    let task = task_of(&rec).clone();
    record.withdrawn = true;
    ov.put(state_cf::ANSWERS, &key, &record);
    let mut te = example_state(ov, rec.task_id, seq)?.unwrap_or_default();
    let was_complete = te.answered.len() >= overlap(&task);
    te.answered.retain(|a| a != who);
    if was_complete {
        rec.done = rec.done.saturating_sub(1);
    }
    rec.answers = rec.answers.saturating_sub(1);
    count_into(ov, &task.project, &task.output_dataset, -1)?;
    grant_lease(ov, &mut rec, seq, &mut te, who)?;
    update_annotator(ov, &mut rec, who, |a| {
        a.answers = a.answers.saturating_sub(1);
        a.last_seen_ms = now;
    })?;
    review::example_changed(ov, &mut rec, seq, &te, now)?;
    save_task(ov, &rec);
    Ok(Ok(ok(command_result::Result::Answer(AnswerOutcome {
        answer: record.current,
        duplicate: false,
    }))))
}

// Reads.

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
