//! What happens when an example's answers are all in: agreeing answers become a gold record,
//! disagreeing ones enter the review queue; a reviewer's resolution; and the reads of the review
//! queue and gold records.

use gloss_proto::v1::{
    command_result, resolve_review_request::Resolution, Answer, AnswerRecord, CommandResult,
    Decision, GoldRecord, ResolveReviewRequest, ReviewEntry, TaskExampleRecord, TaskRecord,
};
use gloss_proto::ErrorCode;
use gloss_store::rocksdb::{Direction, IteratorMode, Snapshot, DB};
use gloss_store::{cf, keys, state_cf};

use crate::feed::answers::answer;
use crate::feed::task_example;
use crate::overlay::Overlay;
use crate::read::{decode, prefixed, scan_options};
use crate::tasks::{check_annotator, count_into, load_task, save_task, task_of, Step};
use crate::{ok, rejected, StateError};

fn current_answers(
    ov: &Overlay,
    rec: &TaskRecord,
    seq: u64,
    who: &[String],
) -> Result<Vec<Answer>, StateError> {
    let mut out = Vec::with_capacity(who.len());
    for a in who {
        let r: Option<AnswerRecord> = ov.msg(
            state_cf::ANSWERS,
            "answer",
            &keys::answer(rec.task_id, seq, a),
        )?;
        out.extend(r.filter(|r| !r.withdrawn).and_then(|r| r.current));
    }
    Ok(out)
}

fn remove_gold(ov: &mut Overlay, rec: &mut TaskRecord, seq: u64) -> Result<(), StateError> {
    let key = keys::review(rec.task_id, keys::tag::GOLD, seq);
    if ov.exists(state_cf::REVIEWS, &key)? {
        ov.delete(state_cf::REVIEWS, &key);
        rec.gold = rec.gold.saturating_sub(1);
        let t = task_of(rec).clone();
        count_into(ov, &t.project, &t.gold_dataset, -1)?;
    }
    Ok(())
}

fn put_gold(ov: &mut Overlay, rec: &mut TaskRecord, gold: &GoldRecord) -> Result<(), StateError> {
    remove_gold(ov, rec, gold.seq)?;
    ov.put(
        state_cf::REVIEWS,
        &keys::review(rec.task_id, keys::tag::GOLD, gold.seq),
        gold,
    );
    rec.gold += 1;
    let t = task_of(rec).clone();
    count_into(ov, &t.project, &t.gold_dataset, 1)
}

fn remove_from_queue(ov: &mut Overlay, rec: &mut TaskRecord, seq: u64) -> Result<(), StateError> {
    let key = keys::review(rec.task_id, keys::tag::QUEUE, seq);
    if ov.exists(state_cf::REVIEWS, &key)? {
        ov.delete(state_cf::REVIEWS, &key);
        rec.review_pending = rec.review_pending.saturating_sub(1);
    }
    Ok(())
}

/// Re-evaluates an example after an answer, revision or undo. A reviewer's gold record stands;
/// otherwise the example's gold record or queue entry follows its current answers.
pub(crate) fn example_changed(
    ov: &mut Overlay,
    rec: &mut TaskRecord,
    seq: u64,
    te: &TaskExampleRecord,
    now: i64,
) -> Result<(), StateError> {
    let gold_key = keys::review(rec.task_id, keys::tag::GOLD, seq);
    let gold: Option<GoldRecord> = ov.msg(state_cf::REVIEWS, "gold", &gold_key)?;
    if gold.is_some_and(|g| !g.reviewer.is_empty()) {
        return Ok(());
    }
    remove_gold(ov, rec, seq)?;
    remove_from_queue(ov, rec, seq)?;
    let task = task_of(rec).clone();
    if te.answered.len() < task.overlap.max(1) as usize {
        return Ok(());
    }
    let answers = current_answers(ov, rec, seq, &te.answered)?;
    let refs: Vec<&Answer> = answers.iter().collect();
    match gloss_annotate::disagreement(&task, &refs) {
        Some(disputed) => {
            ov.put(
                state_cf::REVIEWS,
                &keys::review(rec.task_id, keys::tag::QUEUE, seq),
                &ReviewEntry {
                    disputed_labels: disputed,
                },
            );
            rec.review_pending += 1;
        }
        None => {
            let Some(first) = answers.first() else {
                return Ok(());
            };
            if first.decision() == Decision::Ignore {
                return Ok(());
            }
            let gold = GoldRecord {
                project: task.project.clone(),
                task: task.name.clone(),
                seq,
                input_hash: first.input_hash.clone(),
                answer: Some(first.clone()),
                source_answer_ids: answers.iter().map(|a| a.answer_id.clone()).collect(),
                reviewer: String::new(),
                at_ms: now,
            };
            put_gold(ov, rec, &gold)?;
        }
    }
    Ok(())
}

/// Resolves a queued example into a gold record.
pub(crate) fn resolve(
    ov: &mut Overlay,
    now: i64,
    req: &ResolveReviewRequest,
) -> Step<CommandResult> {
    let mut rec = match load_task(ov, &req.project, &req.task)? {
        Ok(r) => r,
        Err(rejection) => return Ok(Err(rejection)),
    };
    if let Err(reason) = check_annotator(&req.reviewer) {
        return Ok(Err(rejected(
            ErrorCode::InvalidArgument,
            format!("reviewer: {reason}"),
        )));
    }
    let seq = req.seq;
    if !ov.exists(
        state_cf::REVIEWS,
        &keys::review(rec.task_id, keys::tag::QUEUE, seq),
    )? {
        return Ok(Err(rejected(
            ErrorCode::FailedPrecondition,
            format!(
                "example {seq} is not in the review queue of task {}/{}",
                req.project, req.task
            ),
        )));
    }
    let task = task_of(&rec).clone();
    let te: TaskExampleRecord = ov
        .msg(
            state_cf::TASK_EXAMPLES,
            "task example",
            &keys::task_seq(rec.task_id, seq),
        )?
        .unwrap_or_default();
    let answers = current_answers(ov, &rec, seq, &te.answered)?;
    let chosen = match &req.resolution {
        Some(Resolution::PickAnswerId(id)) => match answers.iter().find(|a| &a.answer_id == id) {
            Some(a) => a.clone(),
            None => {
                return Ok(Err(rejected(
                    ErrorCode::InvalidArgument,
                    format!("pick_answer_id: {id:?} is not a current answer to example {seq}"),
                )))
            }
        },
        Some(Resolution::Edited(a)) => {
            if let Err(e) = gloss_annotate::check_scheme(&task, a) {
                return Ok(Err(rejected(
                    ErrorCode::InvalidArgument,
                    format!("edited: {e}"),
                )));
            }
            let mut a = a.clone();
            a.seq = seq;
            let ds = crate::tasks::source_dataset(ov, &task)?;
            if let Some(row) = crate::tasks::source_example(ov, &ds, seq)? {
                if let Err(rejection) = crate::feed::answers::image_fits(&task, &row, &a) {
                    return Ok(Err(rejection));
                }
            }
            a.project = task.project.clone();
            a.task = task.name.clone();
            a.annotator = req.reviewer.clone();
            a.at_ms = now;
            a.input_hash = answers
                .first()
                .map(|x| x.input_hash.clone())
                .unwrap_or_default();
            a
        }
        None => {
            return Ok(Err(rejected(
                ErrorCode::InvalidArgument,
                "resolution: pick an answer id or send an edited answer",
            )))
        }
    };
    remove_from_queue(ov, &mut rec, seq)?;
    let gold = GoldRecord {
        project: task.project.clone(),
        task: task.name.clone(),
        seq,
        input_hash: chosen.input_hash.clone(),
        answer: Some(chosen),
        source_answer_ids: answers.iter().map(|a| a.answer_id.clone()).collect(),
        reviewer: req.reviewer.clone(),
        at_ms: now,
    };
    put_gold(ov, &mut rec, &gold)?;
    save_task(ov, &rec);
    Ok(Ok(ok(command_result::Result::Gold(gold))))
}

// Reads.

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
