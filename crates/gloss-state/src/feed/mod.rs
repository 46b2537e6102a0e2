//! The feed: leasing examples to annotators with exact overlap, lease expiry, answers, revisions
//! and undo. Time comes from the command; the same log gives every node the same leases.
//!
//! Each example of a task is in one of three places: not yet handed out (ahead of the task's
//! cursor in the base ordering), in the open set (handed out but still short of `overlap`
//! answers and leases), or full. An annotator appears at most once per example, as a lease
//! holder or as an answerer, which is what keeps "never the same example twice" and "never more
//! than N answers" true under any interleaving.

pub mod answers;

use gloss_proto::v1::{
    command_result, AnnotatorRecord, CommandResult, Heartbeat, LeaseGrant, Lessee, NextExamples,
    Ordering, SetSuggestions, Suggestion, Task, TaskExampleRecord, TaskRecord,
};
use gloss_proto::ErrorCode;
use gloss_store::rocksdb::DB;
use gloss_store::{cf, keys, state_cf};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::overlay::Overlay;
use crate::read::decode;
use crate::tasks::{
    check_annotator, in_pool, load_task, open_task, save_task, source_dataset, source_example,
    task_of, Step,
};
use crate::{ok, rejected, StateError};

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

pub(crate) fn overlap(task: &Task) -> usize {
    task.overlap.max(1) as usize
}

pub(crate) fn example_state(
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
pub(crate) fn update_annotator(
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
pub(crate) fn save_example(
    ov: &mut Overlay,
    rec: &mut TaskRecord,
    seq: u64,
    te: &mut TaskExampleRecord,
) {
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

pub(crate) fn grant_lease(
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

pub(crate) fn drop_lease(
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
            let mut te = example_state(ov, rec.task_id, seq)?.unwrap_or_default();
            drop_lease(ov, rec, seq, &mut te, &who)?;
            returned += 1;
        }
        tracing::debug!(task_id = rec.task_id, annotator = %who, "leases expired");
    }
    Ok(returned)
}

/// Advances the task's clock to `at` (never backwards) and returns it.
pub(crate) fn tick(rec: &mut TaskRecord, at: i64) -> i64 {
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
    let past_all = keys::open_entry(rec.task_id, u8::MAX, u64::MAX, u64::MAX);
    // A floor past every entry means the set was empty and nothing was added since (an
    // insertion lowers it): there is nothing to scan.
    let open = if from == past_all {
        Vec::new()
    } else {
        ov.scan(state_cf::FEED, &prefix, &from, SCAN_LIMIT)?
    };
    if open.len() == SCAN_LIMIT {
        more = true;
    }
    // Seek past everything deleted in front of the first live entry next time; an empty set
    // gets the largest key, which the next insertion lowers.
    rec.open_floor = match open.first() {
        Some((k, _)) => k.clone(),
        None => past_all.to_vec(),
    };
    for (k, _) in open {
        if got.len() == want {
            break;
        }
        let seq = keys::decode_open_entry(&k)?;
        let mut te = example_state(ov, rec.task_id, seq)?.unwrap_or_default();
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
            // Import order: the next example is at the cursor unless duplicates or an aborted
            // import left a gap there; then seek past it.
            let at = base_seq(&task, rec.cursor);
            if at < ds.next_seq
                && ov.exists(state_cf::EXAMPLES, &keys::example(ds.dataset_id, at))?
            {
                at
            } else {
                let from = keys::example(ds.dataset_id, at);
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
        if example_state(ov, rec.task_id, seq)?.is_some() {
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

/// The rule every feed command checks first: the annotator's name is valid and the task's pool
/// admits them. Whichever way a request came (gRPC, the web app, a forward from a follower),
/// the state machine decides it here, once.
pub(crate) fn admit_annotator(ov: &Overlay, rec: &TaskRecord, who: &str) -> Step<()> {
    if let Err(reason) = check_annotator(who) {
        return Ok(Err(rejected(
            ErrorCode::InvalidArgument,
            format!("annotator: {reason}"),
        )));
    }
    let task = task_of(rec);
    if !in_pool(ov, task, who)? {
        return Ok(Err(rejected(
            ErrorCode::PermissionDenied,
            format!(
                "{who} is not in the annotator pool of task {}/{}",
                task.project, task.name
            ),
        )));
    }
    Ok(Ok(()))
}

/// The task a feed command names (only an open one when `open`), once its pool admits `who`.
fn annotators_task(
    ov: &Overlay,
    project: &str,
    task: &str,
    who: &str,
    open: bool,
) -> Step<TaskRecord> {
    let found = if open {
        open_task(ov, project, task)?
    } else {
        load_task(ov, project, task)?
    };
    let rec = match found {
        Ok(r) => r,
        Err(rejection) => return Ok(Err(rejection)),
    };
    Ok(admit_annotator(ov, &rec, who)?.map(|()| rec))
}

/// Renews the annotator's activity, reaps expired leases, and tops the annotator up to `count`.
pub(crate) fn next_examples(ov: &mut Overlay, now: i64, c: &NextExamples) -> Step<CommandResult> {
    let mut rec = match annotators_task(ov, &c.project, &c.task, &c.annotator, true)? {
        Ok(r) => r,
        Err(rejection) => return Ok(Err(rejection)),
    };
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
pub(crate) fn heartbeat(ov: &mut Overlay, now: i64, c: &Heartbeat) -> Step<CommandResult> {
    // A closed task still takes heartbeats: annotators finishing their last examples keep them.
    let mut rec = match annotators_task(ov, &c.project, &c.task, &c.annotator, false)? {
        Ok(r) => r,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let now = tick(&mut rec, now);
    let a = update_annotator(ov, &mut rec, &c.annotator, |a| a.last_seen_ms = now)?;
    let expired = reap_expired(ov, &mut rec, now)?;
    save_task(ov, &rec);
    Ok(Ok(ok(command_result::Result::Lease(LeaseGrant {
        seqs: a.leases,
        expires_at_ms: now.saturating_add(ttl_ms(task_of(&rec))),
        exhausted: false,
        expired,
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
                ErrorCode::NotFound,
                format!(
                    "suggestions[{i}]: example {} is not in dataset {}/{}",
                    s.seq, task.project, task.source_dataset
                ),
            )));
        }
        if !(0.0..=1.0).contains(&s.score) {
            return Ok(Err(rejected(
                ErrorCode::InvalidArgument,
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
                ErrorCode::InvalidArgument,
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
        let mut te = example_state(ov, rec.task_id, s.seq)?.unwrap_or_default();
        te.scored = true;
        te.score_pos = (s.score * f64::from(u32::MAX)) as u64;
        save_example(ov, &mut rec, s.seq, &mut te);
    }
    Ok(Ok(ok(command_result::Result::Count(
        c.suggestions.len() as u64
    ))))
}

// Reads.

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
