//! Tasks: creating and closing them, annotator groups, the lookups every task command starts
//! with, and the reads of tasks, groups and progress (reads take no overlay and write nothing).

use gloss_proto::v1::{
    command_result, AnnotatorProgress, AnnotatorRecord, CommandResult, Dataset, DatasetKind,
    DatasetRecord, ExampleRow, Group, Project, Task, TaskProgress, TaskRecord, TaskState,
};
use gloss_proto::ErrorCode;
use gloss_store::rocksdb::DB;
use gloss_store::{cf, keys, state_cf};

use crate::feed::ttl_ms;
use crate::overlay::Overlay;
use crate::read::{decode, prefixed};
use crate::{check_name, ok, rejected, StateError};

/// A command's outcome: the value to work on, or the rejection to give back.
pub(crate) type Step<T> = Result<Result<T, CommandResult>, StateError>;

/// Longest annotator or group member name.
pub const MAX_ANNOTATOR_LEN: usize = 128;

/// Checks an annotator name: 1-128 bytes, no control characters.
pub fn check_annotator(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_ANNOTATOR_LEN {
        return Err(format!(
            "annotator name must be 1-{MAX_ANNOTATOR_LEN} bytes, got {}",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "annotator name {name:?} contains a control character"
        ));
    }
    Ok(())
}

pub(crate) fn load_task(ov: &Overlay, project: &str, name: &str) -> Step<TaskRecord> {
    Ok(
        match ov.msg(state_cf::TASKS, "task", &keys::named(project, name))? {
            Some(t) => Ok(t),
            None => Err(rejected(
                ErrorCode::NotFound,
                format!("task {project}/{name} not found"),
            )),
        },
    )
}

pub(crate) fn open_task(ov: &Overlay, project: &str, name: &str) -> Step<TaskRecord> {
    let rec = match load_task(ov, project, name)? {
        Ok(r) => r,
        Err(rejection) => return Ok(Err(rejection)),
    };
    if task_of(&rec).state() == TaskState::Closed {
        return Ok(Err(rejected(
            ErrorCode::FailedPrecondition,
            format!("task {project}/{name} is closed"),
        )));
    }
    Ok(Ok(rec))
}

pub(crate) fn save_task(ov: &mut Overlay, rec: &TaskRecord) {
    let t = task_of(rec);
    ov.put(state_cf::TASKS, &keys::named(&t.project, &t.name), rec);
}

pub(crate) fn task_of(rec: &TaskRecord) -> &Task {
    static EMPTY: std::sync::OnceLock<Task> = std::sync::OnceLock::new();
    rec.task
        .as_ref()
        .unwrap_or_else(|| EMPTY.get_or_init(Task::default))
}

/// Whether `annotator` may work on the task: an empty pool admits anyone; otherwise the name or
/// one of the task's groups must list them.
pub(crate) fn in_pool(ov: &Overlay, task: &Task, annotator: &str) -> Result<bool, StateError> {
    if task.pool.is_empty() || task.pool.iter().any(|p| p == annotator) {
        return Ok(true);
    }
    for entry in &task.pool {
        if let Some(group) = entry.strip_prefix("group:") {
            let g: Option<Group> = ov.msg(
                state_cf::GROUPS,
                "group",
                &keys::named(&task.project, group),
            )?;
            if g.is_some_and(|g| g.members.iter().any(|m| m == annotator)) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The visible example `seq` of a dataset, or why it cannot be used.
pub(crate) fn source_example(
    ov: &Overlay,
    ds: &DatasetRecord,
    seq: u64,
) -> Result<Option<ExampleRow>, StateError> {
    let row: Option<ExampleRow> = ov.msg(
        state_cf::EXAMPLES,
        "example",
        &keys::example(ds.dataset_id, seq),
    )?;
    Ok(row.filter(|r| !ds.open_imports.contains(&r.import_id)))
}

pub(crate) fn source_dataset(ov: &Overlay, task: &Task) -> Result<DatasetRecord, StateError> {
    Ok(ov
        .msg(
            state_cf::DATASETS,
            "dataset",
            &keys::dataset(&task.project, &task.source_dataset),
        )?
        .unwrap_or_default())
}

pub(crate) fn create_task(ov: &mut Overlay, at_ms: i64, task: &Task) -> Step<CommandResult> {
    if let Err(reason) = check_name("task", &task.name) {
        return Ok(Err(rejected(ErrorCode::InvalidArgument, reason)));
    }
    let Some(mut project): Option<Project> =
        ov.msg(state_cf::PROJECTS, "project", &keys::project(&task.project))?
    else {
        return Ok(Err(rejected(
            ErrorCode::NotFound,
            format!("project {:?} not found", task.project),
        )));
    };
    let task_key = keys::named(&task.project, &task.name);
    if ov.exists(state_cf::TASKS, &task_key)? {
        return Ok(Err(rejected(
            ErrorCode::AlreadyExists,
            format!("task {}/{} already exists", task.project, task.name),
        )));
    }
    let Some(source): Option<DatasetRecord> = ov.msg(
        state_cf::DATASETS,
        "dataset",
        &keys::dataset(&task.project, &task.source_dataset),
    )?
    else {
        return Ok(Err(rejected(
            ErrorCode::NotFound,
            format!(
                "source dataset {}/{} not found",
                task.project, task.source_dataset
            ),
        )));
    };
    let mut task = task.clone();
    task.state = TaskState::Open as i32;
    task.created_at_ms = at_ms;
    // The random ordering permutes the sequence numbers handed out so far.
    task.source_examples = source.next_seq.saturating_sub(1);
    for (name, kind) in [
        (&task.output_dataset, DatasetKind::Annotations),
        (&task.gold_dataset, DatasetKind::Gold),
    ] {
        let key = keys::dataset(&task.project, name);
        if let Some(existing) = ov.msg::<DatasetRecord>(state_cf::DATASETS, "dataset", &key)? {
            if existing.task != task.name {
                return Ok(Err(rejected(
                    ErrorCode::AlreadyExists,
                    format!(
                        "dataset {}/{name} already exists and does not belong to task {}",
                        task.project, task.name
                    ),
                )));
            }
            continue;
        }
        let rec = DatasetRecord {
            dataset_id: ov.next_id(keys::meta::NEXT_DATASET_ID)?,
            dataset: Some(Dataset {
                project: task.project.clone(),
                name: name.clone(),
                kind: kind as i32,
                description: format!("{} of task {}", kind.as_str_name(), task.name),
                created_at_ms: at_ms,
                ..Dataset::default()
            }),
            next_seq: 1,
            open_imports: Vec::new(),
            task: task.name.clone(),
        };
        ov.put(state_cf::DATASETS, &key, &rec);
        project.dataset_count += 1;
    }
    ov.put(state_cf::PROJECTS, &keys::project(&task.project), &project);
    let rec = TaskRecord {
        task_id: ov.next_id(keys::meta::NEXT_TASK_ID)?,
        task: Some(task.clone()),
        source_dataset_id: source.dataset_id,
        ..TaskRecord::default()
    };
    ov.put(state_cf::TASKS, &task_key, &rec);
    Ok(Ok(ok(command_result::Result::Task(task))))
}

pub(crate) fn close_task(ov: &mut Overlay, project: &str, name: &str) -> Step<CommandResult> {
    let mut rec = match load_task(ov, project, name)? {
        Ok(r) => r,
        Err(rejection) => return Ok(Err(rejection)),
    };
    if let Some(t) = rec.task.as_mut() {
        t.state = TaskState::Closed as i32;
    }
    save_task(ov, &rec);
    Ok(Ok(ok(command_result::Result::Task(
        rec.task.unwrap_or_default(),
    ))))
}

pub(crate) fn set_group(ov: &mut Overlay, group: &Group) -> Step<CommandResult> {
    if let Err(reason) = check_name("group", &group.name) {
        return Ok(Err(rejected(ErrorCode::InvalidArgument, reason)));
    }
    if !ov.exists(state_cf::PROJECTS, &keys::project(&group.project))? {
        return Ok(Err(rejected(
            ErrorCode::NotFound,
            format!("project {:?} not found", group.project),
        )));
    }
    for (i, m) in group.members.iter().enumerate() {
        if let Err(reason) = check_annotator(m) {
            return Ok(Err(rejected(
                ErrorCode::InvalidArgument,
                format!("members[{i}]: {reason}"),
            )));
        }
    }
    let mut g = group.clone();
    g.members.sort();
    g.members.dedup();
    ov.put(
        state_cf::GROUPS,
        &keys::named(&group.project, &group.name),
        &g,
    );
    Ok(Ok(ok(command_result::Result::Group(g))))
}

/// Adds `delta` to the example count of a task's output or gold dataset.
pub(crate) fn count_into(
    ov: &mut Overlay,
    project: &str,
    dataset: &str,
    delta: i64,
) -> Result<(), StateError> {
    let key = keys::dataset(project, dataset);
    if let Some(mut rec) = ov.msg::<DatasetRecord>(state_cf::DATASETS, "dataset", &key)? {
        if let Some(d) = rec.dataset.as_mut() {
            d.example_count = d.example_count.saturating_add_signed(delta);
        }
        ov.put(state_cf::DATASETS, &key, &rec);
    }
    Ok(())
}

// Reads.

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
