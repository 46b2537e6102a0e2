//! The model registry in the service layer: uploads checked against their digest and stored in
//! chunks through Raft, downloads, evaluations, and the promotion rule (a student becomes its
//! task's assisting model only when it beats the teacher on the same gold test split, unless
//! forced, which is recorded).

use gloss_proto::v1::{
    command, command_result, ArtifactChunk, BeginModel, CommitModel, Evaluation, Model,
    PromoteModel, PutModelChunk, RecordEvaluation,
};
use gloss_state::models as read;
use sha2::{Digest, Sha256};

use crate::access::Actor;
use crate::error::ServiceError;
use crate::service::{unexpected, Service};

/// The metric the promotion rule compares for label students, on the gold test split.
pub const PROMOTION_METRIC: &str = "gold-test:accuracy";
/// The metric the promotion rule compares for entity taggers: exact-match span F1.
pub const SPAN_PROMOTION_METRIC: &str = "gold-test:span_f1";

/// The metric `model` is promoted by: span F1 for taggers, accuracy otherwise.
pub fn promotion_metric(model: &Model) -> &'static str {
    if model.kind.ends_with("tagger") {
        SPAN_PROMOTION_METRIC
    } else {
        PROMOTION_METRIC
    }
}
/// Largest artifact accepted.
pub const MAX_ARTIFACT_BYTES: u64 = 256 << 20;

fn invalid(msg: impl Into<String>) -> ServiceError {
    ServiceError::InvalidArgument(msg.into())
}

impl Service {
    /// Stores an uploaded artifact: checks indexes, size and digest, then replicates it chunk by
    /// chunk and commits it (the state machine checks the digest again).
    pub async fn upload_model(&self, chunks: Vec<ArtifactChunk>) -> Result<Model, ServiceError> {
        let first = chunks
            .first()
            .and_then(|c| c.model.clone())
            .ok_or_else(|| invalid("the first chunk must carry the model record"))?;
        if chunks.len() != first.chunks as usize {
            return Err(invalid(format!(
                "model {}: {} chunks arrived, {} declared",
                first.name,
                chunks.len(),
                first.chunks
            )));
        }
        let mut hash = Sha256::new();
        let mut bytes = 0u64;
        for (i, c) in chunks.iter().enumerate() {
            if c.index as usize != i {
                return Err(invalid(format!("chunk {i} arrived with index {}", c.index)));
            }
            if c.data.len() > gloss_state::models::MAX_CHUNK_BYTES {
                return Err(invalid(format!("chunk {i} is larger than 1 MiB")));
            }
            bytes += c.data.len() as u64;
            hash.update(&c.data);
        }
        if bytes > MAX_ARTIFACT_BYTES {
            return Err(invalid(format!(
                "the artifact is {bytes} bytes, above 256 MiB"
            )));
        }
        let digest: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if digest != first.artifact_sha256 || bytes != first.artifact_bytes {
            return Err(invalid(format!(
                "model {}: the upload hashes to {digest} ({bytes} bytes), not the declared {} ({} bytes)",
                first.name, first.artifact_sha256, first.artifact_bytes
            )));
        }
        let body = command::Body::BeginModel(BeginModel { model: Some(first) });
        let model = match self.propose(&Actor::SYSTEM, body, String::new()).await? {
            command_result::Result::Model(m) => m,
            other => return Err(unexpected(other)),
        };
        for c in chunks {
            let body = command::Body::PutModelChunk(PutModelChunk {
                name: model.name.clone(),
                version: model.version,
                index: c.index,
                data: c.data,
            });
            self.propose_with(&Actor::SYSTEM, body, String::new(), true)
                .await?;
        }
        let body = command::Body::CommitModel(CommitModel {
            name: model.name.clone(),
            version: model.version,
        });
        match self.propose(&Actor::SYSTEM, body, String::new()).await? {
            command_result::Result::Model(m) => {
                tracing::info!(model = %m.name, version = m.version, bytes, "model stored");
                Ok(m)
            }
            other => Err(unexpected(other)),
        }
    }

    /// One model version (0: the newest complete one).
    pub async fn get_model(&self, name: &str, version: u32) -> Result<Model, ServiceError> {
        self.read_barrier().await?;
        read::model(&self.state.db(), name, version)?.ok_or_else(|| {
            ServiceError::NotFound(match version {
                0 => format!("model {name:?} has no complete version"),
                v => format!("model {name:?} version {v} not found"),
            })
        })
    }

    /// Models of a project/task (all when empty).
    pub async fn list_models(&self, project: &str, task: &str) -> Result<Vec<Model>, ServiceError> {
        self.read_barrier().await?;
        Ok(read::models(&self.state.db(), project, task)?)
    }

    /// A complete model's artifact, chunk by chunk.
    pub async fn model_chunks(
        &self,
        name: &str,
        version: u32,
    ) -> Result<(Model, Vec<ArtifactChunk>), ServiceError> {
        let model = self.get_model(name, version).await?;
        if !model.complete {
            return Err(ServiceError::FailedPrecondition(format!(
                "model {name} version {} is not completely uploaded",
                model.version
            )));
        }
        let db = self.state.db();
        let mut out = Vec::with_capacity(model.chunks as usize);
        for i in 0..model.chunks {
            let data = read::chunk(&db, &model.name, model.version, i)?.ok_or_else(|| {
                ServiceError::Internal(format!("model {name} chunk {i} is missing"))
            })?;
            out.push(ArtifactChunk {
                model: (i == 0).then(|| model.clone()),
                index: i,
                data,
            });
        }
        Ok((model, out))
    }

    /// Records scores of a model (teacher or student) on a task's eval sets.
    pub async fn record_evaluation(&self, e: Evaluation) -> Result<Evaluation, ServiceError> {
        self.task_record(&e.project, &e.task).await?;
        let body = command::Body::RecordEvaluation(RecordEvaluation {
            evaluation: Some(e),
        });
        match self.propose(&Actor::SYSTEM, body, String::new()).await? {
            command_result::Result::Evaluation(e) => Ok(e),
            other => Err(unexpected(other)),
        }
    }

    /// A task's evaluations.
    pub async fn list_evaluations(
        &self,
        project: &str,
        task: &str,
    ) -> Result<Vec<Evaluation>, ServiceError> {
        self.read_barrier().await?;
        Ok(read::evaluations(&self.state.db(), project, task)?)
    }

    /// Promotes a version when it beats every evaluated teacher on its [`promotion_metric`]; `force`
    /// overrides the rule and is recorded with `by`.
    pub async fn promote_model(
        &self,
        actor: &Actor,
        name: &str,
        version: u32,
        force: bool,
        by: &str,
    ) -> Result<Model, ServiceError> {
        let model = self.get_model(name, version).await?;
        let evaluations = self.list_evaluations(&model.project, &model.task).await?;
        let verdict = promotion_verdict(&model, &evaluations);
        let note = match (verdict, force) {
            (Ok(why), _) => why,
            (Err(why), true) => format!(
                "forced by {}: {why}",
                if by.is_empty() { "an operator" } else { by }
            ),
            (Err(why), false) => {
                return Err(ServiceError::FailedPrecondition(format!(
                    "model {name} version {} cannot be promoted: {why} (use --force to override; it is recorded)",
                    model.version
                )))
            }
        };
        let body = command::Body::PromoteModel(PromoteModel {
            name: model.name.clone(),
            version: model.version,
            note,
        });
        match self.propose(actor, body, String::new()).await? {
            command_result::Result::Model(m) => Ok(m),
            other => Err(unexpected(other)),
        }
    }
}

/// Why the model may be promoted (it beats the best evaluated teacher on the same split), or
/// why not.
pub fn promotion_verdict(model: &Model, evaluations: &[Evaluation]) -> Result<String, String> {
    let metric = promotion_metric(model);
    let mine =
        model.metrics.get(metric).copied().ok_or_else(|| {
            format!("it has not been evaluated on {metric} (run an evaluate job)")
        })?;
    // Teachers are the evaluated models that are not registry versions (`name@version`).
    let best_teacher = evaluations
        .iter()
        .filter(|e| !e.model.contains('@'))
        .filter_map(|e| e.metrics.get(metric).map(|s| (e.model.as_str(), *s)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match best_teacher {
        None => Err(format!(
            "no teacher has been evaluated on {metric} for {}/{}",
            model.project, model.task
        )),
        Some((teacher, score)) if mine > score => Ok(format!(
            "beats teacher {teacher}: {mine:.3} > {score:.3} on {metric}"
        )),
        Some((teacher, score)) => Err(format!(
            "{mine:.3} does not beat teacher {teacher} ({score:.3}) on {metric}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(model: &str, score: f64) -> Evaluation {
        Evaluation {
            model: model.into(),
            metrics: [(PROMOTION_METRIC.to_string(), score)].into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_student_is_promoted_only_when_it_beats_the_best_teacher() {
        let mut m = Model {
            name: "p/t/tiny".into(),
            version: 2,
            ..Default::default()
        };
        assert!(promotion_verdict(&m, &[])
            .unwrap_err()
            .contains("not been evaluated"));
        m.metrics.insert(PROMOTION_METRIC.into(), 0.8);
        assert!(promotion_verdict(&m, &[])
            .unwrap_err()
            .contains("no teacher"));
        let evals = [
            eval("similarity:minilm", 0.7),
            eval("llm:smollm2", 0.75),
            eval("p/t/tiny@1", 0.9),
        ];
        let ok = promotion_verdict(&m, &evals).unwrap();
        assert!(
            ok.contains("llm:smollm2") && ok.contains("0.800 > 0.750"),
            "{ok}"
        );
        m.metrics.insert(PROMOTION_METRIC.into(), 0.75);
        assert!(promotion_verdict(&m, &evals)
            .unwrap_err()
            .contains("does not beat"));
    }

    #[test]
    fn taggers_are_promoted_by_span_f1() {
        let mut m = Model {
            name: "p/t/tiny-tagger".into(),
            kind: "tiny-tagger".into(),
            version: 1,
            ..Default::default()
        };
        m.metrics.insert(PROMOTION_METRIC.into(), 0.99);
        assert!(promotion_verdict(&m, &[])
            .unwrap_err()
            .contains(SPAN_PROMOTION_METRIC));
        m.metrics.insert(SPAN_PROMOTION_METRIC.into(), 0.6);
        let teacher = Evaluation {
            model: "llm:smollm2".into(),
            metrics: [(SPAN_PROMOTION_METRIC.to_string(), 0.2)].into(),
            ..Default::default()
        };
        let ok = promotion_verdict(&m, &[teacher]).unwrap();
        assert!(ok.contains("0.600 > 0.200 on gold-test:span_f1"), "{ok}");
    }
}
