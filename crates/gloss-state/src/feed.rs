//! The feed: leasing examples to annotators with exact overlap, lease expiry, answers, revisions
//! and undo. Time comes from the command; the same log gives every node the same leases.
//!
//! Each example of a task is in one of three places: not yet handed out (ahead of the task's
//! cursor in the base ordering), in the open set (handed out but still short of `overlap`
//! answers and leases), or full. An annotator appears at most once per example, as a lease
//! holder or as an answerer, which is what keeps "never the same example twice" and "never more
//! than N answers" true under any interleaving.

use gloss_proto::v1::{
    command_result, AnnotatorRecord, Answer, AnswerOutcome, AnswerRecord, CommandResult,
    LeaseExamples, LeaseGrant, Lessee, Ordering, SetSuggestions, Suggestion, Task,
    TaskExampleRecord, TaskRecord,
};
use gloss_store::{keys, state_cf};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::overlay::Overlay;
use crate::task::{
    check_annotator, count_into, in_pool, load_task, open_task, save_task, source_dataset,
    source_example, task_of, Step,
};
use crate::{code, hash_hex, ok, rejected, review, StateError};

/// Most examples one annotator may hold at once.
pub const MAX_LEASED: u32 = 50;
/// Lease time when the task does not set one.
pub const DEFAULT_LEASE_TTL_MS: u64 = 30_000;
/// Open-set entries and base positions one command may look at, so one request never stalls
/// the log however the open set looks.
const SCAN_LIMIT: usize = 4096;

pub(crate) fn ttl_ms(task: &Task) -> i64 {
    let ttl = if task.lease_ttl_ms == 0 {
        DEFAULT_LEASE_TTL_MS
    } else {
        task.lease_ttl_ms
    };
    i64::try_from(ttl).unwrap_or(i64::MAX)
}

fn overlap(task: &Task) -> usize {
    task.overlap.max(1) as usize
}

fn task_example(
    ov: &Overlay,
    task_id: u64,
    seq: u64,
) -> Result<Option<TaskExampleRecord>, StateError> {
    ov.msg(
        state_cf::TASK_EXAMPLES,
        "task example",
        &keys::task_seq(task_id, seq),
    )
}

fn annotator_rec(ov: &Overlay, task_id: u64, name: &str) -> Result<AnnotatorRecord, StateError> {
    Ok(ov
        .msg(state_cf::FEED, "annotator", &keys::annotator(task_id, name))?
        .unwrap_or_else(|| AnnotatorRecord {
            annotator: name.into(),
            ..AnnotatorRecord::default()
        }))
}

/// Applies `f` to an annotator's record and saves it, keeping the task's lessee table (what
/// expiry looks at) in step: only annotators holding leases are in it.
fn update_annotator(
    ov: &mut Overlay,
    rec: &mut TaskRecord,
    name: &str,
    f: impl FnOnce(&mut AnnotatorRecord),
) -> Result<AnnotatorRecord, StateError> {
    let mut a = annotator_rec(ov, rec.task_id, name)?;
    f(&mut a);
    a.leased = a.leases.len() as u64;
    ov.put(state_cf::FEED, &keys::annotator(rec.task_id, name), &a);
    let at = rec.lessees.iter().position(|l| l.annotator == name);
    match (at, a.leases.is_empty()) {
        (Some(i), true) => {
            rec.lessees.remove(i);
        }
        (Some(i), false) => rec.lessees[i].last_seen_ms = a.last_seen_ms,
        (None, false) => rec.lessees.push(Lessee {
            annotator: name.to_string(),
            last_seen_ms: a.last_seen_ms,
        }),
        (None, true) => {}
    }
    Ok(a)
}

fn open_key(task_id: u64, seq: u64, te: &TaskExampleRecord) -> Vec<u8> {
    if te.scored {
        keys::open_entry(task_id, 0, te.score_pos, seq).to_vec()
    } else {
        keys::open_entry(task_id, 1, te.base_pos, seq).to_vec()
    }
}

/// Saves an example's feed state, moving it into or out of the open set as its holders change.
fn save_example(ov: &mut Overlay, rec: &mut TaskRecord, seq: u64, te: &mut TaskExampleRecord) {
    let full = te.leased.len() + te.answered.len() >= overlap(task_of(rec));
    let want = if full {
        Vec::new()
    } else {
        open_key(rec.task_id, seq, te)
    };
    if te.open_key != want {
        if !te.open_key.is_empty() {
            ov.delete(state_cf::FEED, &te.open_key);
        }
        if !want.is_empty() {
            ov.put_raw(state_cf::FEED, &want, Vec::new());
            if !rec.open_floor.is_empty() && want < rec.open_floor {
                rec.open_floor = want.clone();
            }
        }
        te.open_key = want;
    }
    ov.put(
        state_cf::TASK_EXAMPLES,
        &keys::task_seq(rec.task_id, seq),
        te,
    );
}

/// Every lease of `annotator` in the task, in example order.
fn leases_of(ov: &Overlay, task_id: u64, annotator: &str) -> Result<Vec<u64>, StateError> {
    Ok(annotator_rec(ov, task_id, annotator)?.leases)
}

fn grant_lease(
    ov: &mut Overlay,
    rec: &mut TaskRecord,
    seq: u64,
    te: &mut TaskExampleRecord,
    who: &str,
) -> Result<(), StateError> {
    te.leased.push(who.to_string());
    save_example(ov, rec, seq, te);
    update_annotator(ov, rec, who, |a| {
        if let Err(at) = a.leases.binary_search(&seq) {
            a.leases.insert(at, seq);
        }
    })?;
    rec.leased += 1;
    Ok(())
}

fn drop_lease(
    ov: &mut Overlay,
    rec: &mut TaskRecord,
    seq: u64,
    te: &mut TaskExampleRecord,
    who: &str,
) -> Result<(), StateError> {
    te.leased.retain(|a| a != who);
    save_example(ov, rec, seq, te);
    update_annotator(ov, rec, who, |a| a.leases.retain(|s| *s != seq))?;
    rec.leased = rec.leased.saturating_sub(1);
    Ok(())
}

/// Returns the examples of every annotator idle for longer than the lease TTL to the queue, and
/// how many there were.
fn reap_expired(ov: &mut Overlay, rec: &mut TaskRecord, now: i64) -> Result<u64, StateError> {
    let cutoff = now.saturating_sub(ttl_ms(task_of(rec)));
    let expired: Vec<String> = rec
        .lessees
        .iter()
        .filter(|l| l.last_seen_ms < cutoff)
        .map(|l| l.annotator.clone())
        .collect();
    let mut returned = 0;
    for who in expired {
        for seq in leases_of(ov, rec.task_id, &who)? {
            let mut te = task_example(ov, rec.task_id, seq)?.unwrap_or_default();
            drop_lease(ov, rec, seq, &mut te, &who)?;
            returned += 1;
        }
        tracing::debug!(task_id = rec.task_id, annotator = %who, "leases expired");
    }
    Ok(returned)
}

/// Advances the task's clock to `at` (never backwards) and returns it.
fn tick(rec: &mut TaskRecord, at: i64) -> i64 {
    rec.clock_ms = rec.clock_ms.max(at);
    rec.clock_ms
}

/// Position `p` of the base ordering as a sequence number.
fn base_seq(task: &Task, p: u64) -> u64 {
    if task.ordering() == Ordering::Random && p < task.source_examples {
        permute(p, task.source_examples, task.seed) + 1
    } else {
        p + 1
    }
}

/// A seeded permutation of `0..domain` (a four-round Feistel network with cycle walking), so the
/// random ordering needs no materialised list however large the dataset.
pub fn permute(i: u64, domain: u64, seed: u64) -> u64 {
    let bits = (64 - domain.saturating_sub(1).leading_zeros()).max(2);
    let bits = bits + (bits & 1);
    let half = bits / 2;
    let mask = (1u64 << half) - 1;
    let mut x = i;
    loop {
        let (mut l, mut r) = (x >> half, x & mask);
        for round in 0u64..4 {
            let f = xxh3_64_with_seed(&(r | (round << 60)).to_le_bytes(), seed) & mask;
            (l, r) = (r, l ^ f);
        }
        x = (l << half) | r;
        if x < domain {
            return x;
        }
    }
}

/// Leases up to `want` examples the annotator has never held: first from the open set, then
/// from the base ordering. Returns the new leases and whether the task may have more later.
fn lease_new(
    ov: &mut Overlay,
    rec: &mut TaskRecord,
    who: &str,
    want: usize,
) -> Step<(Vec<u64>, bool)> {
    let mut got = Vec::new();
    let mut more = false;
    if want == 0 {
        return Ok(Ok((got, true)));
    }
    let prefix = keys::task_tag(rec.task_id, keys::tag::OPEN);
    let from = if rec.open_floor.is_empty() {
        prefix.to_vec()
    } else {
        rec.open_floor.clone()
    };
    let open = ov.scan(state_cf::FEED, &prefix, &from, SCAN_LIMIT)?;
    if open.len() == SCAN_LIMIT {
        more = true;
    }
    // Seek past everything deleted in front of the first live entry next time; an empty set
    // gets the largest key, which the next insertion lowers.
    rec.open_floor = match open.first() {
        Some((k, _)) => k.clone(),
        None => keys::open_entry(rec.task_id, u8::MAX, u64::MAX, u64::MAX).to_vec(),
    };
    for (k, _) in open {
        if got.len() == want {
            break;
        }
        let seq = keys::decode_open_entry(&k)?;
        let mut te = task_example(ov, rec.task_id, seq)?.unwrap_or_default();
        if te.leased.iter().chain(&te.answered).any(|a| a == who) {
            continue;
        }
        grant_lease(ov, rec, seq, &mut te, who)?;
        got.push(seq);
    }
    let task = task_of(rec).clone();
    let ds = source_dataset(ov, &task)?;
    let mut scanned = 0;
    while got.len() < want {
        if scanned == SCAN_LIMIT {
            more = true;
            break;
        }
        scanned += 1;
        let seq = if task.ordering() == Ordering::Random && rec.cursor < task.source_examples {
            base_seq(&task, rec.cursor)
        } else {
            // Import order: seek past gaps left by duplicates and aborted imports.
            let from = keys::example(ds.dataset_id, base_seq(&task, rec.cursor));
            let next = ov.scan(
                state_cf::EXAMPLES,
                &keys::id_prefix(ds.dataset_id),
                &from,
                1,
            )?;
            match next.first() {
                Some((k, _)) => keys::decode_example(k)?.1,
                None => break,
            }
        };
        if seq >= ds.next_seq {
            break;
        }
        let Some(_) = source_example(ov, &ds, seq)? else {
            if ds.open_imports.is_empty()
                || ov
                    .get(state_cf::EXAMPLES, &keys::example(ds.dataset_id, seq))?
                    .is_none()
            {
                rec.cursor = next_pos(&task, rec.cursor, seq);
                continue;
            }
            // Rows of an import still in progress: wait here until it commits or aborts.
            more = true;
            break;
        };
        let pos = rec.cursor;
        rec.cursor = next_pos(&task, rec.cursor, seq);
        if task_example(ov, rec.task_id, seq)?.is_some() {
            // Already handed out through a suggestion's score.
            continue;
        }
        let mut te = TaskExampleRecord {
            base_pos: pos,
            ..TaskExampleRecord::default()
        };
        grant_lease(ov, rec, seq, &mut te, who)?;
        got.push(seq);
    }
    // Leases held by others may expire and bring their examples back.
    if got.len() == want || rec.leased > got.len() as u64 {
        more = true;
    }
    Ok(Ok((got, more)))
}

/// The base position after handing out `seq` from position `pos`.
fn next_pos(task: &Task, pos: u64, seq: u64) -> u64 {
    if task.ordering() == Ordering::Random && pos < task.source_examples {
        pos + 1
    } else {
        seq
    }
}

/// Renews the annotator's activity, reaps expired leases, and tops the annotator up to `count`.
pub(crate) fn lease_examples(ov: &mut Overlay, now: i64, c: &LeaseExamples) -> Step<CommandResult> {
    let mut rec = match open_task(ov, &c.project, &c.task)? {
        Ok(r) => r,
        Err(rejection) => return Ok(Err(rejection)),
    };
    if let Err(reason) = check_annotator(&c.annotator) {
        return Ok(Err(rejected(
            code::INVALID_ARGUMENT,
            format!("annotator: {reason}"),
        )));
    }
    if !in_pool(ov, task_of(&rec), &c.annotator)? {
        return Ok(Err(rejected(
            code::PERMISSION_DENIED,
            format!(
                "{} is not in the annotator pool of task {}/{}",
                c.annotator, c.project, c.task
            ),
        )));
    }
    let now = tick(&mut rec, now);
    // Renew first, so the caller's own leases survive the reaping below.
    update_annotator(ov, &mut rec, &c.annotator, |a| {
        a.last_seen_ms = now;
        if !c.session_id.is_empty() {
            a.session_id = c.session_id.clone();
        }
    })?;
    let expired = reap_expired(ov, &mut rec, now)?;
    let held = leases_of(ov, rec.task_id, &c.annotator)?;
    let count = c.count.clamp(1, MAX_LEASED) as usize;
    let (fresh, more) =
        match lease_new(ov, &mut rec, &c.annotator, count.saturating_sub(held.len()))? {
            Ok(x) => x,
            Err(rejection) => return Ok(Err(rejection)),
        };
    save_task(ov, &rec);
    let mut seqs = held;
    seqs.extend(fresh);
    let exhausted = seqs.is_empty() && !more;
    Ok(Ok(ok(command_result::Result::Lease(LeaseGrant {
        seqs,
        expires_at_ms: now.saturating_add(ttl_ms(task_of(&rec))),
        exhausted,
        expired,
    }))))
}

/// Renews the annotator's leases without asking for work.
pub(crate) fn renew(
    ov: &mut Overlay,
    now: i64,
    project: &str,
    task: &str,
    who: &str,
) -> Step<CommandResult> {
    let mut rec = match load_task(ov, project, task)? {
        Ok(r) => r,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let now = tick(&mut rec, now);
    let a = update_annotator(ov, &mut rec, who, |a| a.last_seen_ms = now)?;
    let expired = reap_expired(ov, &mut rec, now)?;
    save_task(ov, &rec);
    Ok(Ok(ok(command_result::Result::Lease(LeaseGrant {
        seqs: a.leases,
        expires_at_ms: now.saturating_add(ttl_ms(task_of(&rec))),
        exhausted: false,
        expired,
    }))))
}

fn answer_key(rec: &TaskRecord, seq: u64, who: &str) -> Vec<u8> {
    keys::answer(rec.task_id, seq, who)
}

/// Records an answer or a revision.
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
    let now = tick(&mut rec, now);
    let who = answer.annotator.as_str();
    if let Err(reason) = check_annotator(who) {
        return Ok(Err(rejected(
            code::INVALID_ARGUMENT,
            format!("annotator: {reason}"),
        )));
    }
    if answer.answer_id.is_empty() || answer.answer_id.len() > 128 {
        return Ok(Err(rejected(
            code::INVALID_ARGUMENT,
            format!(
                "answer_id must be 1-128 bytes, got {}",
                answer.answer_id.len()
            ),
        )));
    }
    let id_key = keys::answer_id(rec.task_id, who, &answer.answer_id);
    if let Some(first) = ov.msg::<Answer>(state_cf::IDEMPOTENCY, "answer", &id_key)? {
        return Ok(Ok(ok(command_result::Result::Answer(AnswerOutcome {
            answer: Some(first),
            duplicate: true,
        }))));
    }
    let task = task_of(&rec).clone();
    if let Err(e) = gloss_annotate::check_scheme(&task, answer) {
        return Ok(Err(rejected(
            code::INVALID_ARGUMENT,
            format!("example {}: {e}", answer.seq),
        )));
    }
    let ds = source_dataset(ov, &task)?;
    let Some(row) = source_example(ov, &ds, answer.seq)? else {
        return Ok(Err(rejected(
            code::NOT_FOUND,
            format!(
                "example {} is not in dataset {}/{}",
                answer.seq, task.project, task.source_dataset
            ),
        )));
    };
    let seq = answer.seq;
    let key = answer_key(&rec, seq, who);
    let existing: Option<AnswerRecord> = ov.msg(state_cf::ANSWERS, "answer", &key)?;
    let current = existing.as_ref().filter(|r| !r.withdrawn);
    let mut te = task_example(ov, rec.task_id, seq)?.unwrap_or_default();
    match (revise, current) {
        (true, None) => {
            return Ok(Err(rejected(
                code::FAILED_PRECONDITION,
                format!("{who} has no answer to example {seq} to revise"),
            )))
        }
        (false, Some(_)) => {
            return Ok(Err(rejected(
                code::ALREADY_EXISTS,
                format!("{who} already answered example {seq}; revise the answer instead"),
            )))
        }
        (false, None) if te.leased.iter().any(|a| a == who) => {
            drop_lease(ov, &mut rec, seq, &mut te, who)?;
        }
        (false, None) => {
            // A late answer (the lease expired while the annotator worked offline) still counts
            // when the example was handed out and has room for it.
            let room = te.leased.len() + te.answered.len() < overlap(&task);
            if !room || !was_handed_out(ov, &rec, seq)? {
                return Ok(Err(not_leased(seq, who, &task)));
            }
        }
        (true, Some(_)) => {}
    }
    let mut stored = answer.clone();
    stored.at_ms = now;
    stored.input_hash = hash_hex(&row.input_hash);
    stored.label = if task.interface() == gloss_proto::v1::Interface::Binary {
        stored.label
    } else {
        String::new()
    };
    let mut record = existing.unwrap_or_default();
    stored.revision = record.current.as_ref().map_or(1, |c| c.revision + 1);
    if let Some(prev) = record.current.take() {
        record.history.push(prev);
    }
    record.current = Some(stored.clone());
    record.withdrawn = false;
    ov.put(state_cf::ANSWERS, &key, &record);
    ov.put(state_cf::IDEMPOTENCY, &id_key, &stored);
    if !revise {
        te.answered.push(who.to_string());
        save_example(ov, &mut rec, seq, &mut te);
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
    update_annotator(ov, &mut rec, who, |a| {
        a.last_seen_ms = now;
        if !revise {
            a.answers += 1;
            if a.first_answer_ms == 0 {
                a.first_answer_ms = now;
            }
            a.last_answer_ms = now;
        }
    })?;
    review::example_changed(ov, &mut rec, seq, &te, now)?;
    save_task(ov, &rec);
    Ok(Ok(ok(command_result::Result::Answer(AnswerOutcome {
        answer: Some(stored),
        duplicate: false,
    }))))
}

fn not_leased(seq: u64, who: &str, task: &Task) -> CommandResult {
    rejected(
        code::FAILED_PRECONDITION,
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

/// Withdraws the annotator's answer and leases the example back to them.
pub(crate) fn undo(
    ov: &mut Overlay,
    now: i64,
    project: &str,
    task_name: &str,
    who: &str,
    seq: u64,
) -> Step<CommandResult> {
    let mut rec = match open_task(ov, project, task_name)? {
        Ok(r) => r,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let now = tick(&mut rec, now);
    let key = answer_key(&rec, seq, who);
    let Some(mut record) = ov
        .msg::<AnswerRecord>(state_cf::ANSWERS, "answer", &key)?
        .filter(|r| !r.withdrawn)
    else {
        return Ok(Err(rejected(
            code::NOT_FOUND,
            format!("{who} has no answer to example {seq} to undo"),
        )));
    };
    let task = task_of(&rec).clone();
    record.withdrawn = true;
    ov.put(state_cf::ANSWERS, &key, &record);
    let mut te = task_example(ov, rec.task_id, seq)?.unwrap_or_default();
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

/// Stores suggestions; under the uncertainty ordering, scored examples that still need answers
/// move to the front of the open set, least confident first.
pub(crate) fn set_suggestions(ov: &mut Overlay, c: &SetSuggestions) -> Step<CommandResult> {
    let mut rec = match load_task(ov, &c.project, &c.task)? {
        Ok(r) => r,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let task = task_of(&rec).clone();
    let ds = source_dataset(ov, &task)?;
    for (i, s) in c.suggestions.iter().enumerate() {
        if source_example(ov, &ds, s.seq)?.is_none() {
            return Ok(Err(rejected(
                code::NOT_FOUND,
                format!(
                    "suggestions[{i}]: example {} is not in dataset {}/{}",
                    s.seq, task.project, task.source_dataset
                ),
            )));
        }
        if !(0.0..=1.0).contains(&s.score) {
            return Ok(Err(rejected(
                code::INVALID_ARGUMENT,
                format!("suggestions[{i}].score: {} is outside [0, 1]", s.score),
            )));
        }
        if let Some(bad) = s
            .labels
            .iter()
            .chain(s.spans.iter().map(|sp| &sp.label))
            .find(|l| !task.labels.contains(l))
        {
            return Ok(Err(rejected(
                code::INVALID_ARGUMENT,
                format!(
                    "suggestions[{i}]: unknown label {bad:?}; the task's labels are {}",
                    task.labels.join(", ")
                ),
            )));
        }
    }
    for s in &c.suggestions {
        ov.put::<Suggestion>(
            state_cf::SUGGESTIONS,
            &keys::task_seq(rec.task_id, s.seq),
            s,
        );
        if task.ordering() != Ordering::Uncertainty {
            continue;
        }
        let mut te = task_example(ov, rec.task_id, s.seq)?.unwrap_or_default();
        te.scored = true;
        te.score_pos = (s.score * f64::from(u32::MAX)) as u64;
        save_example(ov, &mut rec, s.seq, &mut te);
    }
    Ok(Ok(ok(command_result::Result::Count(
        c.suggestions.len() as u64
    ))))
}
