//! LLM teachers in jobs, for choice tasks (which label fits), binary and multi-choice tasks
//! (does this label fit: yes or no, one question per label) and entity tasks (which spans are
//! entities of which label):
//!
//! - `llm:<name>`: a GGUF chat model in the worker's models directory (`<models_dir>/<name>/`,
//!   one `.gguf` file), checked against the job's `sha256` like every base model, run in-process
//!   on the job's device.
//! - `openai:<name>`: a server speaking OpenAI's chat-completions protocol, configured on the
//!   worker only (`--teachers FILE`, table `[openai.<name>]`: `url`, `model`, optional
//!   `key_file`, `max_concurrency`, `timeout_seconds`, `logprobs`). The key is read from its
//!   file when the job starts; it never leaves the worker (not in the job, the log or the audit).
//!
//! Both ask the same prompt: a system turn and a user template with `{text}` and `{labels}` (and
//! `{first_label}` for entities, `{label}` for yes/no questions), each overridable in the job's config (`system`, `prompt`) and
//! recorded in the job's result. An answer that names none of the task's labels (or, for
//! entities, is not a list), or a reply that is not a chat completion, is an abstention, counted,
//! never a crash; a server that cannot be reached fails the job.
//!
//! Answers are cached on the worker's disk under a key of (model identity, system turn, template,
//! labels, text): a re-run of the same teacher on the same examples asks nothing again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use gloss_ml::teacher::prompt::{
    check_decide_template, check_template, render_classify, render_decide, render_extract,
    CLASSIFY_SYSTEM, CLASSIFY_TEMPLATE, DECIDE_ANSWERS, DECIDE_SYSTEM, DECIDE_TEMPLATE,
    EXTRACT_TEMPLATE,
};
use gloss_ml::teacher::{EntityAnswer, LabelAnswer, Teacher};
use gloss_ml::Entity;
use gloss_ml::{OpenAiConfig, OpenAiTeacher};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model_store;

/// The worker's teachers file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeachersFile {
    #[serde(default)]
    openai: BTreeMap<String, OpenAiEndpoint>,
}

/// One OpenAI-compatible server a job may name as `openai:<name>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenAiEndpoint {
    url: String,
    model: String,
    key_file: Option<PathBuf>,
    max_concurrency: Option<usize>,
    timeout_seconds: Option<u64>,
    logprobs: Option<bool>,
}

/// What a teacher is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Which one of the labels fits the text.
    Label,
    /// The entities of the labels in the text.
    Entities,
    /// Whether one given label fits the text: yes or no.
    Decision,
}

impl Ask {
    fn name(self) -> &'static str {
        match self {
            Ask::Label => "label",
            Ask::Entities => "entities",
            Ask::Decision => "decision",
        }
    }
}

/// The prompt a job asks with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub ask: Ask,
    /// The system turn; empty means none (the default for entities).
    pub system: String,
    pub template: String,
    /// Texts are cut to this many characters before they are asked about, so a long document
    /// fits the model's context (entities found stay at their offsets in the whole text).
    pub max_chars: usize,
}

/// Questions an in-process LLM teacher answers in one batch unless the job says otherwise
/// (measured in crates/gloss-ml/BENCH.md).
pub const DEFAULT_BATCH: usize = 8;

/// The same for entity questions, whose answers are generated token by token: each step reads
/// every weight once whatever the number of rows, so more rows per step pay off (16 rows gave
/// 1.36× the new tokens/s of 8, and 32 rows 1.62×, in crates/gloss-ml/BENCH.md). The key/value cache
/// grows with the rows (about 46 KB per token per row for SmolLM2-135M), so 16 keeps a batch of
/// long prompts under about 600 MB. Label and yes/no questions are mostly prompt, where 8 rows
/// already do most of what batching can.
pub const DEFAULT_GENERATION_BATCH: usize = 16;

/// The batch an in-process teacher uses for `ask` when the job does not set `llm_batch`.
pub fn default_batch(ask: Ask) -> usize {
    match ask {
        Ask::Entities => DEFAULT_GENERATION_BATCH,
        Ask::Label | Ask::Decision => DEFAULT_BATCH,
    }
}

/// Characters of a text an LLM teacher reads unless the job says otherwise.
pub const DEFAULT_MAX_CHARS: usize = 2000;

impl Prompt {
    /// The job's overrides over the defaults for `ask`, checked.
    pub fn new(ask: Ask, system: &str, template: &str) -> Result<Prompt> {
        let (default_system, default_template) = match ask {
            Ask::Label => (CLASSIFY_SYSTEM, CLASSIFY_TEMPLATE),
            Ask::Entities => ("", EXTRACT_TEMPLATE),
            Ask::Decision => (DECIDE_SYSTEM, DECIDE_TEMPLATE),
        };
        let template = if template.is_empty() {
            default_template
        } else {
            template
        };
        match ask {
            Ask::Decision => check_decide_template(template),
            _ => check_template(template),
        }
        .map_err(anyhow::Error::msg)?;
        Ok(Prompt {
            ask,
            system: if system.is_empty() {
                default_system.to_string()
            } else {
                system.to_string()
            },
            template: template.to_string(),
            max_chars: DEFAULT_MAX_CHARS,
        })
    }

    /// The same prompt reading at most `max_chars` characters of each text (at least 1).
    pub fn with_max_chars(mut self, max_chars: usize) -> Prompt {
        self.max_chars = max_chars.max(1);
        self
    }

    /// `text` cut to [`Prompt::max_chars`] characters.
    fn clip<'t>(&self, text: &'t str) -> &'t str {
        match text.char_indices().nth(self.max_chars) {
            Some((at, _)) => &text[..at],
            None => text,
        }
    }

    fn system(&self) -> Option<&str> {
        (!self.system.is_empty()).then_some(self.system.as_str())
    }
}

enum Backend {
    Local(Box<Mutex<Teacher>>),
    Remote(Box<OpenAiTeacher>, usize),
}

impl Backend {
    fn local(t: &Mutex<Teacher>) -> gloss_ml::Result<std::sync::MutexGuard<'_, Teacher>> {
        t.lock()
            .map_err(|_| gloss_ml::Error::InvalidInput("the teacher's lock was poisoned".into()))
    }

    /// One batch for the in-process model; one request per user turn for a server (the caller
    /// sends a server one at a time, several in flight).
    fn classify(
        &self,
        system: &str,
        users: &[&str],
        labels: &[&str],
    ) -> gloss_ml::Result<Vec<LabelAnswer>> {
        match self {
            Backend::Local(t) => Self::local(t)?.classify_batch(system, users, labels),
            Backend::Remote(t, _) => users
                .iter()
                .map(|user| t.classify_prompted(system, user, labels))
                .collect(),
        }
    }

    /// Entities for each (user turn, text), batched as [`Backend::classify`] is.
    fn extract(
        &self,
        system: Option<&str>,
        items: &[(&str, &str)],
        labels: &[&str],
    ) -> gloss_ml::Result<Vec<EntityAnswer>> {
        match self {
            Backend::Local(t) => Self::local(t)?.extract_batch(system, items, labels),
            Backend::Remote(t, _) => items
                .iter()
                .map(|(user, text)| t.extract_prompted(system, user, text, labels))
                .collect(),
        }
    }
}

/// A loaded LLM teacher for one task's labels.
pub struct LlmTeacher {
    backend: Backend,
    /// What the cache keys on for the model: the GGUF directory's digest, or the server's URL
    /// and model name.
    identity: String,
    /// Questions the in-process model answers in one batch.
    batch: usize,
    prompt: Prompt,
    labels: Vec<String>,
    cache: AnswerCache,
}

/// One example's outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The label and the probabilities of every label (for a yes/no question: 0 is yes, and
    /// the probabilities are those of yes and no).
    Label(usize, Vec<f32>),
    /// The entities the answer listed (maybe none).
    Entities(Vec<Entity>),
    /// The answer named no label, or listed no entities at all (prose).
    Abstained,
    /// The reply was not a chat completion (counted as an abstention too).
    Malformed,
}

/// What a run over many examples gave, with its figures.
#[derive(Debug, Default)]
pub struct Run {
    pub outcomes: Vec<Outcome>,
    pub cached: usize,
    pub tokens: usize,
    pub seconds: f64,
}

impl Run {
    pub fn abstained(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Abstained | Outcome::Malformed))
            .count()
    }

    pub fn malformed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Malformed))
            .count()
    }
}

impl LlmTeacher {
    /// `llm:<name>`: the GGUF model in `models_dir/<name>/`, after its digest check.
    pub fn local(
        device: &gloss_ml::Device,
        models_dir: &Path,
        name: &str,
        sha256: &str,
        prompt: Prompt,
        cache_dir: &Path,
        labels: &[String],
    ) -> Result<LlmTeacher> {
        let dir = model_store::base_model(models_dir, name, sha256)?;
        let ggufs: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
            .collect();
        let [path] = ggufs.as_slice() else {
            bail!(
                "teacher llm:{name}: {} must hold exactly one .gguf file, found {}",
                dir.display(),
                ggufs.len()
            );
        };
        let teacher = Teacher::load(path, device)
            .with_context(|| format!("loading teacher llm:{name} from {}", path.display()))?;
        Ok(LlmTeacher {
            backend: Backend::Local(Box::new(Mutex::new(teacher))),
            identity: format!("gguf:{sha256}"),
            prompt,
            labels: labels.to_vec(),
            cache: AnswerCache::new(cache_dir),
            batch: DEFAULT_BATCH,
        })
    }

    /// `openai:<name>`: the endpoint of that name in the worker's teachers file.
    pub fn remote(
        teachers_file: Option<&Path>,
        name: &str,
        prompt: Prompt,
        cache_dir: &Path,
        labels: &[String],
    ) -> Result<LlmTeacher> {
        let Some(file) = teachers_file else {
            bail!(
                "teacher openai:{name}: this worker has no teachers file (--teachers) naming \
                 OpenAI-compatible endpoints"
            );
        };
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading the teachers file {}", file.display()))?;
        let teachers: TeachersFile = toml::from_str(&text)
            .with_context(|| format!("the teachers file {} is not valid", file.display()))?;
        let endpoint = teachers.openai.get(name).with_context(|| {
            format!(
                "teacher openai:{name} is not in this worker's teachers file {} (it names: {})",
                file.display(),
                teachers
                    .openai
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let mut config = OpenAiConfig::new(endpoint.url.clone(), endpoint.model.clone());
        if let Some(path) = &endpoint.key_file {
            let key = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "teacher openai:{name}: cannot read its key file {}",
                    path.display()
                )
            })?;
            let key = key.lines().next().unwrap_or("").trim().to_string();
            if key.is_empty() {
                bail!(
                    "teacher openai:{name}: the key file {} is empty",
                    path.display()
                );
            }
            config.api_key = Some(key);
        }
        if let Some(n) = endpoint.max_concurrency {
            config.max_concurrency = n;
        }
        if let Some(s) = endpoint.timeout_seconds {
            config.timeout = Duration::from_secs(s);
        }
        config.logprobs = endpoint.logprobs.unwrap_or(false);
        let concurrency = config.max_concurrency;
        let identity = format!("openai:{}#{}", config.endpoint(), config.model);
        let teacher =
            OpenAiTeacher::new(config).with_context(|| format!("teacher openai:{name}"))?;
        Ok(LlmTeacher {
            backend: Backend::Remote(Box::new(teacher), concurrency),
            identity,
            prompt,
            labels: labels.to_vec(),
            cache: AnswerCache::new(cache_dir),
            batch: DEFAULT_BATCH,
        })
    }

    /// The prompt in use (recorded with the job's result).
    pub fn prompt(&self) -> &Prompt {
        &self.prompt
    }

    /// The same teacher answering `batch` questions at a time (in-process models only; at
    /// least 1).
    pub fn with_batch(mut self, batch: usize) -> LlmTeacher {
        self.batch = batch.max(1);
        self
    }

    /// Questions the in-process model answers in one batch.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The task's labels the teacher answers about.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Asks about each (text, index of the label asked about; it matters to yes/no questions,
    /// [`Ask::Decision`], only), calling `progress(done, cached so far)` after each; a server
    /// error other than a malformed reply stops the run with it.
    pub fn ask_each(
        &self,
        texts: &[(&str, usize)],
        cancel: &std::sync::atomic::AtomicBool,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Run> {
        if self.prompt.ask == Ask::Decision {
            if let Some((_, bad)) = texts.iter().find(|(_, l)| *l >= self.labels.len()) {
                bail!(
                    "a question about label {bad}, but the task has {} labels",
                    self.labels.len()
                );
            }
        }
        let started = Instant::now();
        let labels: Vec<&str> = self.labels.iter().map(String::as_str).collect();
        let slots: Vec<Mutex<Option<Outcome>>> = texts.iter().map(|_| Mutex::new(None)).collect();
        let cached = AtomicUsize::new(0);
        let tokens = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
        let next = AtomicUsize::new(0);
        // A unit of work is a run of `per_unit` questions: one batch for the in-process model,
        // one request for a server (several units in flight at once).
        let (per_unit, workers) = match &self.backend {
            Backend::Local(_) => (self.batch, 1),
            Backend::Remote(_, n) => (1, (*n).clamp(1, texts.len().max(1))),
        };
        let units = texts.len().div_ceil(per_unit);
        let one = |unit: usize| -> Result<()> {
            let range = unit * per_unit..((unit + 1) * per_unit).min(texts.len());
            let mut misses = Vec::new();
            for i in range.clone() {
                let (text, asked) = texts[i];
                let text = self.prompt.clip(text);
                let asked = match self.prompt.ask {
                    Ask::Decision => Some(labels[asked]),
                    _ => None,
                };
                let key = self.cache_key(text, asked);
                match self.cache.get(&key) {
                    Some(hit) => {
                        cached.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut slot) = slots[i].lock() {
                            *slot = Some(hit.outcome(self.prompt.ask, &self.labels));
                        }
                    }
                    None => misses.push((i, text, asked, key)),
                }
            }
            if !misses.is_empty() {
                let questions: Vec<(&str, Option<&str>)> =
                    misses.iter().map(|(_, t, a, _)| (*t, *a)).collect();
                let entries = match self.ask(&questions, &labels) {
                    Ok((entries, n)) => {
                        tokens.fetch_add(n, Ordering::Relaxed);
                        entries
                    }
                    Err(gloss_ml::Error::BadResponse { message, .. }) => misses
                        .iter()
                        .map(|_| Cached::malformed(message.clone()))
                        .collect(),
                    Err(e) => return Err(e.into()),
                };
                for ((i, _, _, key), entry) in misses.iter().zip(entries) {
                    self.cache.put(key, &entry);
                    if let Ok(mut slot) = slots[*i].lock() {
                        *slot = Some(entry.outcome(self.prompt.ask, &self.labels));
                    }
                }
            }
            let n = done.fetch_add(range.len(), Ordering::Relaxed) + range.len();
            progress(n, cached.load(Ordering::Relaxed));
            Ok(())
        };
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    if cancel.load(Ordering::SeqCst) || failure.lock().map_or(true, |f| f.is_some())
                    {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= units {
                        break;
                    }
                    if let Err(e) = one(i) {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        break;
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        if cancel.load(Ordering::SeqCst) {
            bail!("cancelled");
        }
        let outcomes = slots
            .into_iter()
            .map(|s| s.into_inner().ok().flatten().unwrap_or(Outcome::Malformed))
            .collect();
        Ok(Run {
            outcomes,
            cached: cached.into_inner(),
            tokens: tokens.into_inner(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Questions to the model, (text, the label of a yes/no question), in one batch; returns
    /// the answers with the tokens processed.
    fn ask(
        &self,
        questions: &[(&str, Option<&str>)],
        labels: &[&str],
    ) -> gloss_ml::Result<(Vec<Cached>, usize)> {
        let system = self.prompt.system();
        let template = self.prompt.template.as_str();
        let user = |(text, asked): &(&str, Option<&str>)| match self.prompt.ask {
            Ask::Label => render_classify(template, text, labels),
            Ask::Decision => render_decide(template, text, asked.unwrap_or_default()),
            Ask::Entities => render_extract(template, text, labels),
        };
        let users: Vec<String> = questions.iter().map(user).collect();
        let mut tokens = 0;
        let mut count = |n: usize| tokens += n;
        let entries: Vec<Cached> = match self.prompt.ask {
            Ask::Label | Ask::Decision => {
                let answers = match self.prompt.ask {
                    Ask::Decision => &DECIDE_ANSWERS[..],
                    _ => labels,
                };
                let users: Vec<&str> = users.iter().map(String::as_str).collect();
                self.backend
                    .classify(system.unwrap_or_default(), &users, answers)?
                    .into_iter()
                    .map(|a| {
                        count(a.tokens);
                        Cached::from_label(a)
                    })
                    .collect()
            }
            Ask::Entities => {
                let items: Vec<(&str, &str)> = users
                    .iter()
                    .zip(questions)
                    .map(|(u, (text, _))| (u.as_str(), *text))
                    .collect();
                self.backend
                    .extract(system, &items, labels)?
                    .into_iter()
                    .map(|a| {
                        count(a.tokens);
                        Cached::from_entities(a)
                    })
                    .collect()
            }
        };
        Ok((entries, tokens))
    }

    fn cache_key(&self, text: &str, asked: Option<&str>) -> String {
        let mut h = Sha256::new();
        let labels = self.labels.join("\u{1f}");
        let parts = [
            self.prompt.ask.name(),
            self.identity.as_str(),
            self.prompt.system.as_str(),
            self.prompt.template.as_str(),
            &labels,
            text,
        ];
        for part in parts.into_iter().chain(asked) {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        model_store::hex(&h.finalize())
    }
}

/// A cached answer.
#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    text: String,
    label: Option<usize>,
    probabilities: Vec<f32>,
    malformed: bool,
    /// Entity answers: whether the answer was a list, and what it listed.
    #[serde(default)]
    listed: bool,
    #[serde(default)]
    entities: Vec<(usize, usize, String, f32)>,
}

impl Cached {
    fn from_label(a: LabelAnswer) -> Cached {
        Cached {
            text: a.text,
            label: a.label,
            probabilities: a.probabilities,
            malformed: false,
            listed: false,
            entities: Vec::new(),
        }
    }

    fn from_entities(a: EntityAnswer) -> Cached {
        Cached {
            text: a.text,
            label: None,
            probabilities: Vec::new(),
            malformed: false,
            listed: a.listed,
            entities: a
                .entities
                .into_iter()
                .map(|e| (e.start, e.end, e.label, e.confidence))
                .collect(),
        }
    }

    fn malformed(message: String) -> Cached {
        Cached {
            text: message,
            label: None,
            probabilities: Vec::new(),
            malformed: true,
            listed: false,
            entities: Vec::new(),
        }
    }

    /// What the answer means for a task with `labels`; entities with other labels are dropped.
    fn outcome(&self, ask: Ask, labels: &[String]) -> Outcome {
        let n_labels = labels.len();
        match (ask, self.label) {
            _ if self.malformed => Outcome::Malformed,
            (Ask::Label, Some(i)) if i < n_labels && self.probabilities.len() == n_labels => {
                Outcome::Label(i, self.probabilities.clone())
            }
            (Ask::Decision, Some(i)) if i < 2 && self.probabilities.len() == 2 => {
                Outcome::Label(i, self.probabilities.clone())
            }
            (Ask::Entities, _) if self.listed => Outcome::Entities(
                self.entities
                    .iter()
                    .filter(|(s, e, l, _)| s < e && labels.contains(l))
                    .map(|(start, end, label, confidence)| Entity {
                        start: *start,
                        end: *end,
                        label: label.clone(),
                        confidence: *confidence,
                    })
                    .collect(),
            ),
            _ => Outcome::Abstained,
        }
    }
}

/// Answers on disk, one small JSON file per key (`<dir>/<2 hex>/<key>.json`), written whole
/// through a temporary file so a crash never leaves half an answer.
struct AnswerCache {
    dir: PathBuf,
}

impl AnswerCache {
    fn new(dir: &Path) -> AnswerCache {
        AnswerCache {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.json"))
    }

    fn get(&self, key: &str) -> Option<Cached> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Best effort: a cache that cannot be written only costs a later re-run.
    fn put(&self, key: &str, value: &Cached) {
        let path = self.path(key);
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, serde_json::to_vec(value)?)?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            tracing::warn!(error = %e, path = %path.display(), "teacher cache not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_answers_get_larger_batches_than_label_questions() {
        assert_eq!(default_batch(Ask::Entities), DEFAULT_GENERATION_BATCH);
        assert_eq!(default_batch(Ask::Label), DEFAULT_BATCH);
        assert_eq!(default_batch(Ask::Decision), DEFAULT_BATCH);
    }

    #[test]
    fn prompts_default_and_overrides_must_place_the_text() {
        let p = Prompt::new(Ask::Label, "", "").unwrap();
        assert_eq!(p.system, CLASSIFY_SYSTEM);
        assert_eq!(p.template, CLASSIFY_TEMPLATE);
        let p = Prompt::new(Ask::Label, "Be brief.", "Review: {text}\nOne of {labels}:").unwrap();
        assert_eq!(p.system, "Be brief.");
        assert!(Prompt::new(Ask::Label, "", "no text field").is_err());
        let p = Prompt::new(Ask::Entities, "", "").unwrap();
        assert_eq!((p.system(), p.template.as_str()), (None, EXTRACT_TEMPLATE));
        assert!(Prompt::new(Ask::Entities, "", "Labels: {labels}").is_err());
        let p = Prompt::new(Ask::Decision, "", "").unwrap();
        assert_eq!(
            (p.system.as_str(), p.template.as_str()),
            (DECIDE_SYSTEM, DECIDE_TEMPLATE)
        );
        let err = Prompt::new(Ask::Decision, "", "Text: {text}. Yes or no?").unwrap_err();
        assert!(err.to_string().contains("{label}"), "{err}");
        let p = p.with_max_chars(3);
        assert_eq!((p.clip("héllo"), p.clip("hé")), ("hél", "hé"));
    }

    #[test]
    fn cached_answers_round_trip_and_stale_ones_abstain() {
        let dir = tempfile::tempdir().unwrap();
        let cache = AnswerCache::new(dir.path());
        let key = "ab".repeat(32);
        assert!(cache.get(&key).is_none());
        cache.put(
            &key,
            &Cached::from_label(LabelAnswer {
                text: "POS".into(),
                label: Some(0),
                probabilities: vec![0.9, 0.1],
                tokens: 12,
            }),
        );
        let labels = |n: usize| -> Vec<String> { (0..n).map(|i| format!("L{i}")).collect() };
        let hit = cache.get(&key).unwrap();
        assert_eq!(
            hit.outcome(Ask::Label, &labels(2)),
            Outcome::Label(0, vec![0.9, 0.1])
        );
        // Read with another label count (cannot happen for one key, but never panics).
        assert_eq!(hit.outcome(Ask::Label, &labels(3)), Outcome::Abstained);
        // A yes/no answer is about two answers whatever the task's labels.
        assert_eq!(
            hit.outcome(Ask::Decision, &labels(3)),
            Outcome::Label(0, vec![0.9, 0.1])
        );
        assert_eq!(
            Cached::malformed("x".into()).outcome(Ask::Label, &labels(2)),
            Outcome::Malformed
        );
    }

    #[test]
    fn entity_answers_keep_the_tasks_labels_and_prose_abstains() {
        let entity = |start, end, label: &str| Entity {
            start,
            end,
            label: label.into(),
            confidence: 0.8,
        };
        let answer = |listed, entities| {
            Cached::from_entities(EntityAnswer {
                text: String::new(),
                listed,
                entities,
                tokens: 0,
            })
        };
        let labels = vec!["PER".to_string(), "LOC".to_string()];
        let listed = answer(true, vec![entity(0, 3, "PER"), entity(7, 12, "ORG")]);
        let round: Cached = serde_json::from_slice(&serde_json::to_vec(&listed).unwrap()).unwrap();
        assert_eq!(
            round.outcome(Ask::Entities, &labels),
            Outcome::Entities(vec![entity(0, 3, "PER")])
        );
        assert_eq!(
            answer(true, vec![]).outcome(Ask::Entities, &labels),
            Outcome::Entities(vec![])
        );
        assert_eq!(
            answer(false, vec![]).outcome(Ask::Entities, &labels),
            Outcome::Abstained
        );
    }
}
