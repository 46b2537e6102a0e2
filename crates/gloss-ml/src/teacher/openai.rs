//! A remote LLM teacher: any server speaking OpenAI's chat-completions protocol (vLLM,
//! llama.cpp's server, Ollama, TGI), reached with a blocking HTTP client.
//!
//! Nothing is ever sent unless the caller built an [`OpenAiTeacher`] from an explicit
//! [`OpenAiConfig`]; there are no defaults that point anywhere. Prompts are those of
//! [`prompt`](super::prompt) and answers go through the same [`parse_label`] and
//! [`entities_from_answer`] as the in-process [`Teacher`](super::Teacher), so switching between
//! them changes the model, not the protocol of asking. Requests use temperature 0.
//!
//! Confidence: when [`OpenAiConfig::logprobs`] is set and the server returns token
//! log-probabilities, a label's confidence is the geometric mean of the answer tokens'
//! probabilities and an entity's that of the tokens that spelled it (as in-process). Without
//! them every parsed label and entity gets confidence 1.0: the server told us nothing better.
//!
//! `http://` works out of the box; `https://` needs the crate feature `https` (rustls).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use serde::Deserialize;

use super::prompt::{classify_user, extract_user, CLASSIFY_SYSTEM};
use super::{
    check_labels, entities_from_answer, lists_entities, parse_label, span_confidence, Entity,
    EntityAnswer, LabelAnswer, Prediction,
};
use crate::error::{Error, Result};

/// Bytes of an error body kept in [`Error::HttpStatus`].
const ERROR_BODY_CHARS: usize = 300;

/// Where and how to reach the server. The API key never appears in `Debug` output or errors.
#[derive(Clone, PartialEq)]
pub struct OpenAiConfig {
    /// Server root such as `http://127.0.0.1:8000` (a trailing `/v1` is accepted too); requests
    /// go to `{base}/v1/chat/completions`.
    pub base_url: String,
    /// The `model` field of each request.
    pub model: String,
    /// Sent as `Authorization: Bearer ...` when set.
    pub api_key: Option<String>,
    /// Limit on a whole request: connect, send, and read the answer.
    pub timeout: Duration,
    /// Requests in flight at once through this teacher, across all threads.
    pub max_concurrency: usize,
    /// `max_tokens` of a classification request.
    pub classify_max_tokens: u32,
    /// `max_tokens` of an entity-extraction request.
    pub extract_max_tokens: u32,
    /// Ask for token log-probabilities (`"logprobs": true`) and use them for confidence.
    pub logprobs: bool,
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_concurrency", &self.max_concurrency)
            .field("classify_max_tokens", &self.classify_max_tokens)
            .field("extract_max_tokens", &self.extract_max_tokens)
            .field("logprobs", &self.logprobs)
            .finish()
    }
}

impl OpenAiConfig {
    /// A config for `model` at `base_url`: no key, 60 s timeout, 4 requests at once, 16/256
    /// answer tokens, no log-probabilities.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> OpenAiConfig {
        OpenAiConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(60),
            max_concurrency: 4,
            classify_max_tokens: 16,
            extract_max_tokens: 256,
            logprobs: false,
        }
    }

    /// The chat-completions endpoint this config posts to.
    pub fn endpoint(&self) -> String {
        let base = self.base_url.trim_end_matches('/');
        if base.ends_with("/v1") {
            format!("{base}/chat/completions")
        } else {
            format!("{base}/v1/chat/completions")
        }
    }

    fn validate(&self) -> Result<()> {
        let url = &self.base_url;
        let problem = if url.starts_with("https://") && !cfg!(feature = "https") {
            Some(format!(
                "{url}: https needs gloss-ml built with the `https` feature"
            ))
        } else if !(url.starts_with("http://") || url.starts_with("https://")) {
            Some(format!("{url:?} is not an http:// or https:// URL"))
        } else if self.model.trim().is_empty() {
            Some("model must not be empty".into())
        } else if self.timeout.is_zero() {
            Some("timeout must be positive".into())
        } else if self.max_concurrency == 0 {
            Some("max_concurrency must be at least 1".into())
        } else if self.classify_max_tokens == 0 || self.extract_max_tokens == 0 {
            Some("max_tokens limits must be at least 1".into())
        } else {
            None
        };
        problem.map_or(Ok(()), |p| {
            Err(Error::InvalidInput(format!("openai teacher: {p}")))
        })
    }
}

/// One generated token with its probability, as the server reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenProb {
    /// The token's text.
    pub token: String,
    /// Its length in UTF-8 bytes (from the server's `bytes` when given).
    pub byte_len: usize,
    /// `exp(logprob)`.
    pub prob: f32,
}

/// A server's answer to one chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// `choices[0].message.content`.
    pub text: String,
    /// Per-token probabilities when requested and returned.
    pub tokens: Option<Vec<TokenProb>>,
}

impl Completion {
    /// Geometric mean of the probabilities of the tokens overlapping `span` (answer bytes);
    /// 1.0 when the server gave no log-probabilities.
    fn confidence(&self, span: std::ops::Range<usize>) -> f32 {
        let Some(tokens) = &self.tokens else {
            return 1.0;
        };
        let mut ends = Vec::with_capacity(tokens.len());
        let mut at = 0;
        for t in tokens {
            at += t.byte_len;
            ends.push(at);
        }
        let probs: Vec<f32> = tokens.iter().map(|t| t.prob).collect();
        span_confidence(&ends, &probs, span)
    }
}

/// An OpenAI-compatible chat-completions server used as a teacher. `Send + Sync`: share it
/// between threads; [`OpenAiConfig::max_concurrency`] bounds requests in flight overall.
#[derive(Debug)]
pub struct OpenAiTeacher {
    config: OpenAiConfig,
    endpoint: String,
    agent: ureq::Agent,
    slots: Semaphore,
}

impl OpenAiTeacher {
    /// Checks `config`; no request is made until a method is called.
    pub fn new(config: OpenAiConfig) -> Result<OpenAiTeacher> {
        config.validate()?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(OpenAiTeacher {
            endpoint: config.endpoint(),
            slots: Semaphore::new(config.max_concurrency),
            config,
            agent,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    /// Classifies `text` into one of `labels`; an answer naming no label is [`Error::NoLabel`].
    pub fn classify(&self, text: &str, labels: &[&str]) -> Result<Prediction> {
        check_labels(labels)?;
        let answer = self.complete(
            Some(CLASSIFY_SYSTEM),
            &classify_user(text, labels),
            self.config.classify_max_tokens,
        )?;
        let Some(index) = parse_label(&answer.text, labels) else {
            return Err(Error::NoLabel {
                source_name: self.endpoint.clone(),
                answer: answer.text,
                labels: labels.iter().map(|l| l.to_string()).collect(),
            });
        };
        Ok(Prediction {
            label: labels[index].to_string(),
            confidence: answer.confidence(0..answer.text.len()),
        })
    }

    /// Classifies every text, at most `max_concurrency` requests at a time; one result per
    /// text, in order, so one failed request does not lose the others.
    pub fn classify_many(&self, texts: &[&str], labels: &[&str]) -> Vec<Result<Prediction>> {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<Prediction>>>> =
            Mutex::new((0..texts.len()).map(|_| None).collect());
        let workers = self.config.max_concurrency.min(texts.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(text) = texts.get(i) else { break };
                    let result = self.classify(text, labels);
                    lock(&results)[i] = Some(result);
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(Error::InvalidInput("openai teacher: worker died".into())))
            })
            .collect()
    }

    /// Asks with a given system and user turn which of `labels` fits. The answer names a label
    /// or nothing (an abstention); the named label gets the answer's confidence and the others
    /// share the rest, and an abstention spreads it evenly. A reply that is not a chat
    /// completion is [`Error::BadResponse`].
    pub fn classify_prompted(
        &self,
        system: &str,
        user: &str,
        labels: &[&str],
    ) -> Result<LabelAnswer> {
        check_labels(labels)?;
        let answer = self.complete(Some(system), user, self.config.classify_max_tokens)?;
        let label = parse_label(&answer.text, labels);
        let n = labels.len();
        let probabilities = match label {
            Some(i) => {
                let c = answer.confidence(0..answer.text.len());
                let rest = (1.0 - c) / (n.max(2) - 1) as f32;
                (0..n).map(|j| if j == i { c } else { rest }).collect()
            }
            None => vec![1.0 / n as f32; n],
        };
        Ok(LabelAnswer {
            text: answer.text,
            label,
            probabilities,
            tokens: 0,
        })
    }

    /// Extracts entities of `labels` from `text` as code-point spans.
    pub fn extract_entities(&self, text: &str, labels: &[&str]) -> Result<Vec<Entity>> {
        Ok(self
            .extract_prompted(None, &extract_user(text, labels), text, labels)?
            .entities)
    }

    /// Asks with a given (optional) system turn and user turn for the entities of `labels` in
    /// `text`; a reply that is not a chat completion is [`Error::BadResponse`].
    pub fn extract_prompted(
        &self,
        system: Option<&str>,
        user: &str,
        text: &str,
        labels: &[&str],
    ) -> Result<EntityAnswer> {
        check_labels(labels)?;
        let answer = self.complete(system, user, self.config.extract_max_tokens)?;
        Ok(EntityAnswer {
            entities: entities_from_answer(text, &answer.text, labels, |span| {
                answer.confidence(span)
            }),
            listed: lists_entities(&answer.text),
            tokens: 0,
            text: answer.text,
        })
    }

    /// Sends one chat request (an optional system turn and a user turn) and returns the answer.
    pub fn complete(
        &self,
        system: Option<&str>,
        user: &str,
        max_tokens: u32,
    ) -> Result<Completion> {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = system {
            messages.push(serde_json::json!({"role": "system", "content": system}));
        }
        messages.push(serde_json::json!({"role": "user", "content": user}));
        let mut body = serde_json::json!({
            "model": self.config.model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": max_tokens,
        });
        if self.config.logprobs {
            body["logprobs"] = serde_json::Value::Bool(true);
        }
        let body = body.to_string();
        let raw = {
            let _slot = self.slots.acquire();
            self.post(&body)?
        };
        self.parse_response(&raw)
    }

    fn post(&self, body: &str) -> Result<String> {
        let mut request = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "application/json");
        if let Some(key) = &self.config.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut response = request.send(body).map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.transport_error(e))?;
        if !(200..300).contains(&status) {
            return Err(Error::HttpStatus {
                url: self.endpoint.clone(),
                status,
                body: text.chars().take(ERROR_BODY_CHARS).collect(),
            });
        }
        Ok(text)
    }

    fn transport_error(&self, error: ureq::Error) -> Error {
        let timed_out = match &error {
            ureq::Error::Timeout(_) => true,
            ureq::Error::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        };
        if timed_out {
            Error::Timeout {
                url: self.endpoint.clone(),
                timeout_ms: self.config.timeout.as_millis(),
            }
        } else {
            Error::Transport {
                url: self.endpoint.clone(),
                message: error.to_string(),
            }
        }
    }

    fn parse_response(&self, raw: &str) -> Result<Completion> {
        let bad = |message: String| Error::BadResponse {
            url: self.endpoint.clone(),
            message,
        };
        let response: ChatResponse = serde_json::from_str(raw).map_err(|e| {
            let start: String = raw.chars().take(80).collect();
            bad(format!("{e} in {start:?}"))
        })?;
        let choice = response
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| bad("no choices".into()))?;
        let text = choice
            .message
            .content
            .ok_or_else(|| bad("choices[0].message.content is missing".into()))?;
        let tokens = choice.logprobs.and_then(|l| l.content).map(|content| {
            content
                .into_iter()
                .map(|t| TokenProb {
                    byte_len: t.bytes.map_or(t.token.len(), |b| b.len()),
                    prob: t.logprob.exp(),
                    token: t.token,
                })
                .collect()
        });
        Ok(Completion { text, tokens })
    }
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
    #[serde(default)]
    logprobs: Option<ChoiceLogprobs>,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceLogprobs {
    content: Option<Vec<TokenLogprob>>,
}

#[derive(Deserialize)]
struct TokenLogprob {
    token: String,
    logprob: f32,
    #[serde(default)]
    bytes: Option<Vec<u8>>,
}

/// A counting semaphore: at most `n` holders of a [`Slot`] at once.
#[derive(Debug)]
struct Semaphore {
    free: Mutex<usize>,
    freed: Condvar,
}

struct Slot<'a>(&'a Semaphore);

impl Semaphore {
    fn new(n: usize) -> Semaphore {
        Semaphore {
            free: Mutex::new(n),
            freed: Condvar::new(),
        }
    }

    fn acquire(&self) -> Slot<'_> {
        let mut free = lock(&self.free);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *lock(&self.0.free) += 1;
        self.0.freed.notify_one();
    }
}

/// Locks a mutex, shrugging off poisoning: every value guarded here stays consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_and_validation() {
        let c = OpenAiConfig::new("http://127.0.0.1:8000/", "m");
        assert_eq!(c.endpoint(), "http://127.0.0.1:8000/v1/chat/completions");
        let c = OpenAiConfig::new("http://h:1/v1", "m");
        assert_eq!(c.endpoint(), "http://h:1/v1/chat/completions");
        assert!(OpenAiTeacher::new(OpenAiConfig::new("ftp://h", "m")).is_err());
        assert!(OpenAiTeacher::new(OpenAiConfig::new("http://h", " ")).is_err());
        let mut c = OpenAiConfig::new("http://h", "m");
        c.max_concurrency = 0;
        assert!(OpenAiTeacher::new(c).is_err());
        if !cfg!(feature = "https") {
            let err = OpenAiTeacher::new(OpenAiConfig::new("https://h", "m")).unwrap_err();
            assert!(err.to_string().contains("`https` feature"), "{err}");
        }
    }

    #[test]
    fn api_key_is_redacted() {
        let mut c = OpenAiConfig::new("http://h", "m");
        c.api_key = Some("sk-secret".into());
        let shown = format!("{:?}", OpenAiTeacher::new(c).unwrap());
        assert!(
            !shown.contains("sk-secret") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn confidence_without_logprobs_is_one() {
        let c = Completion {
            text: "Positive".into(),
            tokens: None,
        };
        assert_eq!(c.confidence(0..8), 1.0);
        let c = Completion {
            text: "Positive".into(),
            tokens: Some(vec![
                TokenProb {
                    token: "Pos".into(),
                    byte_len: 3,
                    prob: 0.25,
                },
                TokenProb {
                    token: "itive".into(),
                    byte_len: 5,
                    prob: 1.0,
                },
            ]),
        };
        assert!((c.confidence(0..8) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn semaphore_limits_holders() {
        let s = Semaphore::new(1);
        let a = s.acquire();
        assert_eq!(*lock(&s.free), 0);
        drop(a);
        assert_eq!(*lock(&s.free), 1);
    }
}
