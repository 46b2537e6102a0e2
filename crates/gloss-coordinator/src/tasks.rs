//! Tasks, the feed and review in the service layer: request validation that needs the example's
//! text (token boundaries), defaults, and assembling what annotators see from the state.

use gloss_proto::v1::{
    command, command_result, AgreementReport, Answer, CloseTask, CreateTask, DisagreementPolicy,
    GoldRecord, Group, Heartbeat, Interface, LeaseGrant, LeasedExample, NextExamples, NextRequest,
    NextResponse, Ordering, ResolveReview, ResolveReviewRequest, ReviewItem, SetGroup,
    SetSuggestions, SubmitAnswer, Suggestion, Task, TaskProgress, TaskRecord, UndoAnswer,
};
use gloss_state::feed::{self, answers};
use gloss_state::{review, tasks};

use crate::access::Actor;
use crate::error::ServiceError;
use crate::export::record_text;
use crate::service::{now_ms, unexpected, Service};

/// Labels a task may have, and the longest label.
const MAX_LABELS: usize = 500;
const MAX_LABEL_LEN: usize = 100;
/// Most annotators per example.
const MAX_OVERLAP: u32 = 32;
/// Review queue pages.
const DEFAULT_REVIEW_PAGE: usize = 20;
const MAX_REVIEW_PAGE: usize = 200;

fn invalid(msg: impl Into<String>) -> ServiceError {
    ServiceError::InvalidArgument(msg.into())
}

/// Fills in defaults and checks every field of a new task, naming the field at fault.
pub fn normalize_task(mut t: Task) -> Result<Task, ServiceError> {
    gloss_state::check_name("task", &t.name).map_err(|r| invalid(format!("name: {r}")))?;
    if t.interface() == Interface::Unspecified {
        return Err(invalid(
            "interface: choose binary, choice, multi_choice, ner, ner_correct, spans, relations, image_boxes or image_choice",
        ));
    }
    if t.source_dataset.is_empty() {
        return Err(invalid("source_dataset: is required"));
    }
    if t.labels.is_empty() || t.labels.len() > MAX_LABELS {
        return Err(invalid(format!(
            "labels: a task needs 1-{MAX_LABELS} labels, got {}",
            t.labels.len()
        )));
    }
    for (i, l) in t.labels.iter().enumerate() {
        if l.trim().is_empty() || l.len() > MAX_LABEL_LEN || l.chars().any(char::is_control) {
            return Err(invalid(format!(
                "labels[{i}]: {l:?} must be 1-{MAX_LABEL_LEN} bytes of printable text"
            )));
        }
        if t.labels[..i].contains(l) {
            return Err(invalid(format!("labels[{i}]: {l:?} is listed twice")));
        }
    }
    check_relation_labels(&t)?;
    if t.overlap == 0 {
        t.overlap = 1;
    }
    if t.overlap > MAX_OVERLAP {
        return Err(invalid(format!(
            "overlap: at most {MAX_OVERLAP} annotators per example, got {}",
            t.overlap
        )));
    }
    for (i, p) in t.pool.iter().enumerate() {
        let name = p.strip_prefix("group:").unwrap_or(p);
        gloss_state::tasks::check_annotator(name)
            .map_err(|r| invalid(format!("pool[{i}]: {r}")))?;
    }
    if t.ordering() == Ordering::Unspecified {
        t.set_ordering(Ordering::Sequential);
    }
    if t.disagreement() == DisagreementPolicy::Unspecified {
        t.set_disagreement(DisagreementPolicy::Any);
    }
    for (i, l) in t.review_labels.iter().enumerate() {
        if !t.labels.contains(l) && !t.relation_labels.contains(l) {
            return Err(invalid(format!(
                "review_labels[{i}]: {l:?} is not one of the task's labels"
            )));
        }
    }
    if t.lease_ttl_ms == 0 {
        t.lease_ttl_ms = gloss_state::feed::DEFAULT_LEASE_TTL_MS;
    }
    if !(1_000..=86_400_000).contains(&t.lease_ttl_ms) {
        return Err(invalid(format!(
            "lease_ttl_ms: must be between 1000 (1 s) and 86400000 (1 day), got {}",
            t.lease_ttl_ms
        )));
    }
    if t.output_dataset.is_empty() {
        t.output_dataset = format!("{}-answers", t.name);
    }
    if t.gold_dataset.is_empty() {
        t.gold_dataset = format!("{}-gold", t.name);
    }
    for (field, name) in [
        ("output_dataset", &t.output_dataset),
        ("gold_dataset", &t.gold_dataset),
    ] {
        gloss_state::check_name("dataset", name).map_err(|r| invalid(format!("{field}: {r}")))?;
        if *name == t.source_dataset {
            return Err(invalid(format!(
                "{field}: must differ from the source dataset"
            )));
        }
    }
    if t.output_dataset == t.gold_dataset {
        return Err(invalid("gold_dataset: must differ from output_dataset"));
    }
    Ok(t)
}

/// A relations task needs relation labels, printable, distinct and apart from its span labels
/// (agreement and review name both kinds in one list); no other task may have any.
fn check_relation_labels(t: &Task) -> Result<(), ServiceError> {
    let labels = &t.relation_labels;
    if t.interface() != Interface::Relations {
        if !labels.is_empty() {
            return Err(invalid(
                "relation_labels: only a relations task has relation labels",
            ));
        }
        return Ok(());
    }
    if labels.is_empty() || labels.len() > MAX_LABELS {
        return Err(invalid(format!(
            "relation_labels: a relations task needs 1-{MAX_LABELS} relation labels, got {}",
            labels.len()
        )));
    }
    for (i, l) in labels.iter().enumerate() {
        if l.trim().is_empty() || l.len() > MAX_LABEL_LEN || l.chars().any(char::is_control) {
            return Err(invalid(format!(
                "relation_labels[{i}]: {l:?} must be 1-{MAX_LABEL_LEN} bytes of printable text"
            )));
        }
        if labels[..i].contains(l) {
            return Err(invalid(format!(
                "relation_labels[{i}]: {l:?} is listed twice"
            )));
        }
        if t.labels.contains(l) {
            return Err(invalid(format!(
                "relation_labels[{i}]: {l:?} is also a span label; use distinct names"
            )));
        }
    }
    Ok(())
}

fn is_span_interface(i: Interface) -> bool {
    matches!(
        i,
        Interface::Ner | Interface::NerCorrect | Interface::Spans | Interface::Relations
    )
}

impl Service {
    /// Writes through Raft a command that is safe to repeat (it carries its own idempotency).
    async fn propose_repeatable(
        &self,
        actor: &Actor,
        body: command::Body,
    ) -> Result<command_result::Result, ServiceError> {
        self.propose_with(actor, body, String::new(), true).await
    }

    /// Creates a task and its answers and gold datasets.
    pub async fn create_task(&self, actor: &Actor, task: Task) -> Result<Task, ServiceError> {
        let task = normalize_task(task)?;
        let body = command::Body::CreateTask(CreateTask { task: Some(task) });
        match self.propose(actor, body, String::new()).await? {
            command_result::Result::Task(t) => Ok(t),
            other => Err(unexpected(other)),
        }
    }

    /// A project's tasks.
    pub async fn list_tasks(&self, project: &str) -> Result<Vec<Task>, ServiceError> {
        self.read_barrier().await?;
        let db = self.state.db();
        if gloss_state::read::project(&db, project)?.is_none() {
            return Err(ServiceError::NotFound(format!(
                "project {project:?} not found"
            )));
        }
        Ok(tasks::tasks(&db, project)?)
    }

    /// One task's stored record, from a linearizable read.
    pub async fn task_record(&self, project: &str, task: &str) -> Result<TaskRecord, ServiceError> {
        self.read_barrier().await?;
        self.local_task(project, task)
    }

    fn local_task(&self, project: &str, task: &str) -> Result<TaskRecord, ServiceError> {
        tasks::task(&self.state.db(), project, task)?
            .ok_or_else(|| ServiceError::NotFound(format!("task {project}/{task} not found")))
    }

    /// A task record that may be read locally without a barrier when it is already here (a
    /// task's scheme never changes after creation).
    async fn known_task(&self, project: &str, task: &str) -> Result<TaskRecord, ServiceError> {
        match self.local_task(project, task) {
            Ok(t) => Ok(t),
            Err(_) => self.task_record(project, task).await,
        }
    }

    /// Closes a task.
    pub async fn close_task(
        &self,
        actor: &Actor,
        project: &str,
        task: &str,
    ) -> Result<Task, ServiceError> {
        let body = command::Body::CloseTask(CloseTask {
            project: project.into(),
            task: task.into(),
        });
        match self.propose(actor, body, String::new()).await? {
            command_result::Result::Task(t) => Ok(t),
            other => Err(unexpected(other)),
        }
    }

    /// Defines an annotator group.
    pub async fn set_group(&self, actor: &Actor, group: Group) -> Result<Group, ServiceError> {
        match self
            .propose_repeatable(
                actor,
                command::Body::SetGroup(SetGroup { group: Some(group) }),
            )
            .await?
        {
            command_result::Result::Group(g) => Ok(g),
            other => Err(unexpected(other)),
        }
    }

    /// Progress of a task and its annotators.
    pub async fn task_progress(
        &self,
        project: &str,
        task: &str,
    ) -> Result<TaskProgress, ServiceError> {
        let rec = self.task_record(project, task).await?;
        let db = self.state.db();
        let t = rec.task.clone().unwrap_or_default();
        let total = gloss_state::read::dataset(&db, project, &t.source_dataset)?
            .and_then(|d| d.dataset)
            .map_or(0, |d| d.example_count);
        Ok(tasks::progress(&db, &rec, total, now_ms())?)
    }

    /// Agreement of a task's annotators, from one snapshot of its answers.
    pub async fn task_agreement(
        &self,
        project: &str,
        task: &str,
    ) -> Result<AgreementReport, ServiceError> {
        let rec = self.task_record(project, task).await?;
        let db = self.state.db();
        tokio::task::spawn_blocking(move || {
            let snapshot = db.snapshot();
            let mut items = Vec::new();
            answers::for_each_answered::<ServiceError>(
                &db,
                &snapshot,
                rec.task_id,
                |_, answers| {
                    if answers.len() >= 2 {
                        items.push(answers);
                    }
                    Ok(())
                },
            )?;
            let task = rec.task.unwrap_or_default();
            Ok(gloss_annotate::agreement_report(&task, &items))
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
    }

    /// Attaches suggestions to a task's examples; spans are checked against the text.
    pub async fn set_suggestions(
        &self,
        actor: &Actor,
        project: &str,
        task: &str,
        mut suggestions: Vec<Suggestion>,
    ) -> Result<u64, ServiceError> {
        let rec = self.known_task(project, task).await?;
        let t = rec.task.clone().unwrap_or_default();
        for (i, s) in suggestions.iter_mut().enumerate() {
            if let Some(unknown) = s.labels.iter().find(|l| !t.labels.contains(l)) {
                return Err(invalid(format!(
                    "suggestions[{i}] (example {}): unknown label {unknown:?}; the task's labels \
                     are {}",
                    s.seq,
                    t.labels.join(", ")
                )));
            }
            if s.spans.is_empty() && s.relations.is_empty() {
                continue;
            }
            let text = self.example_text(&t, s.seq).await?;
            let mut probe = Answer {
                decision: gloss_proto::v1::Decision::Accept as i32,
                spans: std::mem::take(&mut s.spans),
                relations: std::mem::take(&mut s.relations),
                ..Answer::default()
            };
            gloss_annotate::check_answer(&t, &text, &mut probe)
                .map_err(|e| invalid(format!("suggestions[{i}] (example {}): {e}", s.seq)))?;
            s.spans = probe.spans;
            s.relations = probe.relations;
        }
        let body = command::Body::SetSuggestions(SetSuggestions {
            project: project.into(),
            task: task.into(),
            suggestions,
        });
        match self.propose_repeatable(actor, body).await? {
            command_result::Result::Count(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// The text of example `seq` of the task's source dataset. Reads locally, and once more
    /// after a barrier when this node has not applied the example yet.
    async fn example_row(
        &self,
        task: &Task,
        seq: u64,
    ) -> Result<gloss_proto::v1::ExampleRow, ServiceError> {
        for attempt in 0..2 {
            if attempt == 1 {
                self.read_barrier().await?;
            }
            let db = self.state.db();
            if let Some(ds) = gloss_state::read::dataset(&db, &task.project, &task.source_dataset)?
            {
                if let Some(row) = gloss_state::read::example(&db, &ds, seq)? {
                    return Ok(row);
                }
            }
        }
        Err(ServiceError::NotFound(format!(
            "example {seq} is not in dataset {}/{}",
            task.project, task.source_dataset
        )))
    }

    /// The image of example `seq` of the task's source dataset and its bytes.
    pub async fn example_image(
        &self,
        task: &Task,
        seq: u64,
    ) -> Result<(gloss_proto::v1::ImageRef, Vec<u8>), ServiceError> {
        let row = self.example_row(task, seq).await?;
        let Some(image) = row.image else {
            return Err(ServiceError::NotFound(format!(
                "example {seq} of {}/{} has no image",
                task.project, task.source_dataset
            )));
        };
        let bytes = crate::export::image_bytes(&self.state.db(), seq, &image)?;
        Ok((image, bytes))
    }

    async fn example_text(&self, task: &Task, seq: u64) -> Result<String, ServiceError> {
        let row = self.example_row(task, seq).await?;
        record_text(seq, &row.record_json)
    }

    /// What an annotator sees of one leased example.
    async fn leased_example(
        &self,
        rec: &TaskRecord,
        seq: u64,
    ) -> Result<LeasedExample, ServiceError> {
        let task = rec.task.clone().unwrap_or_default();
        let row = self.example_row(&task, seq).await?;
        let text = record_text(seq, &row.record_json)?;
        let db = self.state.db();
        Ok(LeasedExample {
            seq,
            input_hash: gloss_state::hash_hex(&row.input_hash),
            tokens: if is_span_interface(task.interface()) {
                gloss_annotate::tokenize(&text)
            } else {
                Vec::new()
            },
            label: if task.interface() == Interface::Binary {
                gloss_annotate::proposed_label(&task, &row.record_json)
            } else {
                String::new()
            },
            suggestion: feed::suggestion(&db, rec.task_id, seq)?,
            text,
            record_json: row.record_json,
            previous: None,
            image: row.image,
        })
    }

    async fn leased_examples(
        &self,
        rec: &TaskRecord,
        annotator: &str,
        grant: &LeaseGrant,
    ) -> Result<Vec<LeasedExample>, ServiceError> {
        let mut out = Vec::with_capacity(grant.seqs.len());
        for seq in &grant.seqs {
            let mut ex = self.leased_example(rec, *seq).await?;
            // An undone answer comes back with the annotator's earlier version to start from.
            ex.previous = answers::answer(&self.state.db(), rec.task_id, *seq, annotator)?
                .filter(|r| r.withdrawn)
                .and_then(|r| r.current);
            out.push(ex);
        }
        Ok(out)
    }

    /// Leases examples to an annotator and returns them with their text and tokens.
    pub async fn next_examples(
        &self,
        actor: &Actor,
        req: NextRequest,
    ) -> Result<NextResponse, ServiceError> {
        let rec = self.known_task(&req.project, &req.task).await?;
        let body = command::Body::NextExamples(NextExamples {
            project: req.project.clone(),
            task: req.task.clone(),
            annotator: req.annotator.clone(),
            session_id: req.session_id.clone(),
            count: if req.count == 0 { 3 } else { req.count },
        });
        let grant = match self.propose_repeatable(actor, body).await? {
            command_result::Result::Lease(g) => g,
            other => return Err(unexpected(other)),
        };
        self.metrics.feed_leases(grant.seqs.len() as u64);
        self.metrics.feed_lease_expiries(grant.expired);
        Ok(NextResponse {
            examples: self.leased_examples(&rec, &req.annotator, &grant).await?,
            lease_expires_at_ms: grant.expires_at_ms,
            exhausted: grant.exhausted,
        })
    }

    /// Renews an annotator's leases; returns when they now expire and how many are held.
    pub async fn heartbeat(
        &self,
        actor: &Actor,
        project: &str,
        task: &str,
        annotator: &str,
    ) -> Result<LeaseGrant, ServiceError> {
        let body = command::Body::Heartbeat(Heartbeat {
            project: project.into(),
            task: task.into(),
            annotator: annotator.into(),
        });
        match self.propose_repeatable(actor, body).await? {
            command_result::Result::Lease(g) => {
                self.metrics.feed_lease_expiries(g.expired);
                Ok(g)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Records an answer (or, with `revise`, replaces the annotator's earlier one). Spans are
    /// checked against the example's tokens and normalised before they are replicated.
    pub async fn submit_answer(
        &self,
        actor: &Actor,
        mut answer: Answer,
        revise: bool,
    ) -> Result<(Answer, bool), ServiceError> {
        let rec = self.known_task(&answer.project, &answer.task).await?;
        let task = rec.task.clone().unwrap_or_default();
        if is_span_interface(task.interface()) {
            let text = self.example_text(&task, answer.seq).await?;
            gloss_annotate::check_answer(&task, &text, &mut answer)
                .map_err(|e| invalid(format!("example {}: {e}", answer.seq)))?;
        } else {
            gloss_annotate::check_scheme(&task, &answer)
                .map_err(|e| invalid(format!("example {}: {e}", answer.seq)))?;
        }
        let body = command::Body::SubmitAnswer(SubmitAnswer {
            answer: Some(answer),
            revise,
        });
        match self.propose_repeatable(actor, body).await? {
            command_result::Result::Answer(a) => {
                if !a.duplicate {
                    self.metrics.feed_answer();
                }
                Ok((a.answer.unwrap_or_default(), a.duplicate))
            }
            other => Err(unexpected(other)),
        }
    }

    /// Withdraws an annotator's answer and returns the example, leased back to them.
    pub async fn undo_answer(
        &self,
        actor: &Actor,
        project: &str,
        task: &str,
        annotator: &str,
        seq: u64,
    ) -> Result<LeasedExample, ServiceError> {
        let rec = self.known_task(project, task).await?;
        let body = command::Body::UndoAnswer(UndoAnswer {
            project: project.into(),
            task: task.into(),
            annotator: annotator.into(),
            seq,
        });
        let withdrawn = match self.propose(actor, body, String::new()).await? {
            command_result::Result::Answer(a) => a.answer,
            other => return Err(unexpected(other)),
        };
        let mut ex = self.leased_example(&rec, seq).await?;
        ex.previous = withdrawn;
        Ok(ex)
    }

    /// A page of a task's review queue with every annotator's answer.
    pub async fn review_queue(
        &self,
        project: &str,
        task: &str,
        page_size: u32,
        after_seq: u64,
    ) -> Result<(Vec<ReviewItem>, u64), ServiceError> {
        let rec = self.task_record(project, task).await?;
        let size = match page_size as usize {
            0 => DEFAULT_REVIEW_PAGE,
            n => n.min(MAX_REVIEW_PAGE),
        };
        let t = rec.task.clone().unwrap_or_default();
        let entries = review::review_queue(&self.state.db(), rec.task_id, after_seq, size)?;
        let mut items = Vec::with_capacity(entries.len());
        for (seq, entry, answers) in entries {
            let row = self.example_row(&t, seq).await?;
            items.push(ReviewItem {
                seq,
                input_hash: gloss_state::hash_hex(&row.input_hash),
                text: record_text(seq, &row.record_json)?,
                answers,
                disputed_labels: entry.disputed_labels,
            });
        }
        Ok((items, rec.review_pending))
    }

    /// Resolves a queued example into a gold record.
    pub async fn resolve_review(
        &self,
        actor: &Actor,
        mut req: ResolveReviewRequest,
    ) -> Result<GoldRecord, ServiceError> {
        use gloss_proto::v1::resolve_review_request::Resolution;
        let rec = self.known_task(&req.project, &req.task).await?;
        let task = rec.task.clone().unwrap_or_default();
        if let Some(Resolution::Edited(a)) = req.resolution.as_mut() {
            if is_span_interface(task.interface()) {
                let text = self.example_text(&task, req.seq).await?;
                gloss_annotate::check_answer(&task, &text, a)
                    .map_err(|e| invalid(format!("edited: {e}")))?;
            }
        }
        let body = command::Body::ResolveReview(ResolveReview { request: Some(req) });
        match self.propose(actor, body, String::new()).await? {
            command_result::Result::Gold(g) => Ok(g),
            other => Err(unexpected(other)),
        }
    }
}
