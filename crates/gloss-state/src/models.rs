//! The model registry: versions of trained students stored in chunks, checked against their
//! SHA-256 digest when committed, promoted to be their task's assisting model, and the
//! evaluations of teachers and students on a task's eval sets.

use gloss_proto::v1::{
    command_result, BeginModel, CommandResult, CommitModel, Evaluation, Model, PromoteModel,
    PutModelChunk,
};
use gloss_proto::ErrorCode;
use gloss_store::rocksdb::{Direction, IteratorMode, DB};
use gloss_store::{cf, keys, state_cf};
use sha2::{Digest, Sha256};

use crate::overlay::Overlay;
use crate::read::decode;
use crate::tasks::Step;
use crate::{ok, rejected, StateError};

/// Largest chunk accepted.
pub const MAX_CHUNK_BYTES: usize = 1 << 20;

fn load(ov: &Overlay, name: &str, version: u32) -> Result<Option<Model>, StateError> {
    ov.msg(state_cf::MODELS, "model", &keys::model(name, version))
}

fn missing(name: &str, version: u32) -> CommandResult {
    rejected(
        ErrorCode::NotFound,
        format!("model {name} version {version} not found"),
    )
}

/// The newest version of `name` (complete or not), 0 when there is none.
fn latest_version(ov: &Overlay, name: &str) -> Result<u32, StateError> {
    let prefix = [name.as_bytes(), &[0]].concat();
    Ok(ov
        .scan(state_cf::MODELS, &prefix, &prefix, usize::MAX)?
        .iter()
        .filter_map(|(k, _)| k.get(prefix.len()..prefix.len() + 4))
        .filter_map(|b| b.try_into().ok().map(u32::from_be_bytes))
        .max()
        .unwrap_or(0))
}

pub(crate) fn begin(ov: &mut Overlay, now: i64, c: &BeginModel) -> Step<CommandResult> {
    let mut m = c.model.clone().unwrap_or_default();
    if m.name.is_empty() || m.name.contains('\0') {
        return Ok(Err(rejected(
            ErrorCode::InvalidArgument,
            "model.name: is required",
        )));
    }
    if m.artifact_sha256.len() != 64 || m.chunks == 0 {
        return Ok(Err(rejected(
            ErrorCode::InvalidArgument,
            "model: artifact_sha256 (64 hex digits) and chunks are required",
        )));
    }
    m.version = latest_version(ov, &m.name)? + 1;
    m.created_at_ms = now;
    m.complete = false;
    m.promoted = false;
    m.promotion_note.clear();
    ov.put(state_cf::MODELS, &keys::model(&m.name, m.version), &m);
    Ok(Ok(ok(command_result::Result::Model(m))))
}

pub(crate) fn put_chunk(ov: &mut Overlay, c: &PutModelChunk) -> Step<CommandResult> {
    let Some(m) = load(ov, &c.name, c.version)? else {
        return Ok(Err(missing(&c.name, c.version)));
    };
    if m.complete {
        return Ok(Err(rejected(
            ErrorCode::FailedPrecondition,
            format!("model {} version {} is already complete", c.name, c.version),
        )));
    }
    if c.index >= m.chunks || c.data.len() > MAX_CHUNK_BYTES {
        return Ok(Err(rejected(
            ErrorCode::InvalidArgument,
            format!(
                "chunk {} of model {} version {}: index must be below {} and size at most {MAX_CHUNK_BYTES} bytes",
                c.index, c.name, c.version, m.chunks
            ),
        )));
    }
    ov.put_raw(
        state_cf::MODEL_CHUNKS,
        &keys::model_chunk(&c.name, c.version, c.index),
        c.data.clone(),
    );
    Ok(Ok(ok(command_result::Result::Ok(true))))
}

pub(crate) fn commit(ov: &mut Overlay, c: &CommitModel) -> Step<CommandResult> {
    let Some(mut m) = load(ov, &c.name, c.version)? else {
        return Ok(Err(missing(&c.name, c.version)));
    };
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    for i in 0..m.chunks {
        match ov.get(
            state_cf::MODEL_CHUNKS,
            &keys::model_chunk(&c.name, c.version, i),
        )? {
            Some(data) => {
                bytes += data.len() as u64;
                hash.update(&data);
            }
            None => {
                return Ok(Err(rejected(
                    ErrorCode::FailedPrecondition,
                    format!(
                        "model {} version {}: chunk {i} of {} is missing",
                        c.name, c.version, m.chunks
                    ),
                )))
            }
        }
    }
    let digest: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if digest != m.artifact_sha256 || bytes != m.artifact_bytes {
        return Ok(Err(rejected(
            ErrorCode::FailedPrecondition,
            format!(
                "model {} version {}: the chunks hash to {digest} ({bytes} bytes), not the declared {} ({} bytes)",
                c.name, c.version, m.artifact_sha256, m.artifact_bytes
            ),
        )));
    }
    m.complete = true;
    ov.put(state_cf::MODELS, &keys::model(&c.name, c.version), &m);
    Ok(Ok(ok(command_result::Result::Model(m))))
}

pub(crate) fn promote(ov: &mut Overlay, c: &PromoteModel) -> Step<CommandResult> {
    let Some(mut m) = load(ov, &c.name, c.version)? else {
        return Ok(Err(missing(&c.name, c.version)));
    };
    if !m.complete {
        return Ok(Err(rejected(
            ErrorCode::FailedPrecondition,
            format!(
                "model {} version {} is not completely uploaded",
                c.name, c.version
            ),
        )));
    }
    // One assisting model per name: the previously promoted version steps down.
    let prefix = [c.name.as_bytes(), &[0]].concat();
    for (k, v) in ov.scan(state_cf::MODELS, &prefix, &prefix, usize::MAX)? {
        let mut other: Model = decode("model", &v)?;
        if other.promoted && other.version != c.version {
            other.promoted = false;
            ov.put(state_cf::MODELS, &k, &other);
        }
    }
    m.promoted = true;
    m.promotion_note = c.note.clone();
    ov.put(state_cf::MODELS, &keys::model(&c.name, c.version), &m);
    Ok(Ok(ok(command_result::Result::Model(m))))
}

pub(crate) fn record_evaluation(ov: &mut Overlay, now: i64, e: &Evaluation) -> Step<CommandResult> {
    let mut e = e.clone();
    if e.model.is_empty() || e.metrics.is_empty() {
        return Ok(Err(rejected(
            ErrorCode::InvalidArgument,
            "evaluation: model and at least one metric are required",
        )));
    }
    e.at_ms = now;
    let key = keys::named(&e.project, &format!("{}\0{}", e.task, e.model));
    ov.put(state_cf::EVALUATIONS, &key, &e);
    // A registered student's scores are kept with it too.
    if let Some((name, version)) = e.model.rsplit_once('@') {
        if let Ok(version) = version.parse::<u32>() {
            if let Some(mut m) = load(ov, name, version)? {
                m.metrics.extend(e.metrics.clone());
                ov.put(state_cf::MODELS, &keys::model(name, version), &m);
            }
        }
    }
    Ok(Ok(ok(command_result::Result::Evaluation(e))))
}

/// One model version; `version` 0 is the newest complete one.
pub fn model(db: &DB, name: &str, version: u32) -> Result<Option<Model>, StateError> {
    if version != 0 {
        return db
            .get_cf(cf(db, state_cf::MODELS)?, keys::model(name, version))?
            .map(|v| decode("model", &v))
            .transpose();
    }
    Ok(versions(db, name)?.into_iter().find(|m| m.complete))
}

/// Every version of `name`, newest first.
pub fn versions(db: &DB, name: &str) -> Result<Vec<Model>, StateError> {
    let prefix = [name.as_bytes(), &[0]].concat();
    let mut out = Vec::new();
    for kv in db.iterator_cf(
        cf(db, state_cf::MODELS)?,
        IteratorMode::From(&prefix, Direction::Forward),
    ) {
        let (k, v) = kv?;
        if !k.starts_with(&prefix) {
            break;
        }
        out.push(decode("model", &v)?);
    }
    out.reverse();
    Ok(out)
}

/// Every model version, filtered by project and task when given, newest version first per name.
pub fn models(db: &DB, project: &str, task: &str) -> Result<Vec<Model>, StateError> {
    let mut out: Vec<Model> = Vec::new();
    for kv in db.iterator_cf(cf(db, state_cf::MODELS)?, IteratorMode::Start) {
        let (_, v) = kv?;
        let m: Model = decode("model", &v)?;
        if (project.is_empty() || m.project == project) && (task.is_empty() || m.task == task) {
            out.push(m);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(b.version.cmp(&a.version)));
    Ok(out)
}

/// Chunk `index` of a model version's artifact.
pub fn chunk(db: &DB, name: &str, version: u32, index: u32) -> Result<Option<Vec<u8>>, StateError> {
    Ok(db.get_cf(
        cf(db, state_cf::MODEL_CHUNKS)?,
        keys::model_chunk(name, version, index),
    )?)
}

/// A task's evaluations.
pub fn evaluations(db: &DB, project: &str, task: &str) -> Result<Vec<Evaluation>, StateError> {
    let prefix = keys::named(project, &format!("{task}\0"));
    let mut out = Vec::new();
    for kv in db.iterator_cf(
        cf(db, state_cf::EVALUATIONS)?,
        IteratorMode::From(&prefix, Direction::Forward),
    ) {
        let (k, v) = kv?;
        if !k.starts_with(&prefix) {
            break;
        }
        out.push(decode("evaluation", &v)?);
    }
    Ok(out)
}
