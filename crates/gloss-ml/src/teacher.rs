//! In-process LLM teacher: a quantized llama-family GGUF model (candle) with greedy decoding.
//!
//! Prompts use the ChatML template of SmolLM2 (`<|im_start|>role\n...<|im_end|>\n`). Template
//! tokens are inserted as ids; the caller's text is encoded as plain text, so a text that contains
//! `<|im_end|>` cannot break out of its turn. Decoding is greedy and stops at `<|im_end|>` or EOS.
//!
//! [`Teacher::classify`] and [`Teacher::extract_entities`] turn answers into annotations with the
//! pure functions of [`parse`]; their confidences come from the model's own probabilities.

pub mod openai;
pub mod parse;
pub mod prompt;
pub mod similarity;

use std::path::Path;

use candle_core::Device;

use crate::error::{Error, Result};
use crate::gguf_tokenizer::{read_gguf_content, GgufTokenizer};
use crate::llama::{KvCache, Llama, Weights, MAX_POSITIONS};
use prompt::{classify_user, extract_user, CLASSIFY_SYSTEM};

pub use parse::{entities_from_answer, lists_entities, parse_label, span_confidence};

/// Token limits for the teacher's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerationOptions {
    /// New tokens allowed for a classification answer.
    pub classify_max_new_tokens: usize,
    /// New tokens allowed for an entity-extraction answer.
    pub extract_max_new_tokens: usize,
}

impl Default for GenerationOptions {
    fn default() -> Self {
        GenerationOptions {
            classify_max_new_tokens: 16,
            extract_max_new_tokens: 256,
        }
    }
}

/// A label chosen by the teacher, with its probability among the candidate labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// One of the labels the caller offered.
    pub label: String,
    /// In (0, 1]: softmax over the candidate labels' scores (see [`Teacher::classify`]).
    pub confidence: f32,
}

/// A classification answer as the model gave it: the text, the label it names (none when it
/// names none: an abstention), and a probability per candidate label.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelAnswer {
    pub text: String,
    pub label: Option<usize>,
    pub probabilities: Vec<f32>,
    /// Tokens processed: the prompt and the answer (0 when the server did not say).
    pub tokens: usize,
}

/// An extraction answer as the model gave it: the text, whether it lists entities at all (prose
/// is an abstention, `[]` is not), the entities found, and the tokens processed (0 when a server
/// did not say).
#[derive(Debug, Clone, PartialEq)]
pub struct EntityAnswer {
    pub text: String,
    pub listed: bool,
    pub entities: Vec<Entity>,
    pub tokens: usize,
}

/// An entity span found by the teacher.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// Start offset in code points (inclusive).
    pub start: usize,
    /// End offset in code points (exclusive).
    pub end: usize,
    /// One of the labels the caller offered.
    pub label: String,
    /// Geometric mean of the probabilities of the answer tokens that spelled this entity.
    pub confidence: f32,
}

/// The result of greedy decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The decoded answer, without the stop token.
    pub text: String,
    /// Generated ids, without the stop token.
    pub tokens: Vec<u32>,
    /// Probability the model gave each generated token.
    pub token_probs: Vec<f32>,
    /// Whether decoding ended on a stop token rather than the token limit.
    pub stopped: bool,
}

/// A GGUF chat model on one device, answering one batch of prompts at a time (`&mut self`).
pub struct Teacher {
    model: Llama,
    tokenizer: GgufTokenizer,
    device: Device,
    im_start: u32,
    im_end: u32,
    stop_ids: Vec<u32>,
    context: usize,
    options: GenerationOptions,
}

impl std::fmt::Debug for Teacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Teacher")
            .field("device", &self.device)
            .field("tokenizer", &self.tokenizer)
            .field("context", &self.context)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Teacher {
    /// Loads a llama-family GGUF file (weights and tokenizer) onto `device`, its matrices held
    /// as [`Weights::Auto`] chooses.
    pub fn load(path: &Path, device: &Device) -> Result<Teacher> {
        Teacher::load_with(path, device, Weights::Auto)
    }

    /// [`Teacher::load`] with the matrices held as `weights` says.
    pub fn load_with(path: &Path, device: &Device, weights: Weights) -> Result<Teacher> {
        let content = read_gguf_content(path)?;
        let tokenizer = GgufTokenizer::from_content(&content, path)?;
        let context = match content.metadata.get("llama.context_length") {
            Some(v) => v.to_u32().map_or(MAX_POSITIONS, |n| n as usize),
            None => MAX_POSITIONS,
        }
        .min(MAX_POSITIONS);
        let special = |name: &str| {
            tokenizer.token_id(name).ok_or_else(|| Error::GgufMetadata {
                path: path.to_path_buf(),
                key: "tokenizer.ggml.tokens".into(),
                message: format!("no {name} token: not a ChatML model"),
            })
        };
        let (im_start, im_end) = (special("<|im_start|>")?, special("<|im_end|>")?);
        let mut stop_ids = vec![im_end, tokenizer.eos_id()];
        stop_ids.extend(tokenizer.token_id("<|endoftext|>"));
        stop_ids.sort_unstable();
        stop_ids.dedup();

        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut reader = std::io::BufReader::new(file);
        let model = Llama::load(&content, &mut reader, device, weights).map_err(|e| {
            Error::InvalidInput(format!("{}: loading llama weights: {e}", path.display()))
        })?;
        Ok(Teacher {
            model,
            tokenizer,
            device: device.clone(),
            im_start,
            im_end,
            stop_ids,
            context,
            options: GenerationOptions::default(),
        })
    }

    /// Replaces the token limits.
    pub fn with_options(mut self, options: GenerationOptions) -> Teacher {
        self.options = options;
        self
    }

    /// The token limits in use.
    pub fn options(&self) -> GenerationOptions {
        self.options
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    /// Prompt ids for an optional system turn and one user turn, ending where the assistant's
    /// answer begins.
    pub fn chat_prompt(&self, system: Option<&str>, user: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        if self.tokenizer.add_bos() {
            ids.extend(self.tokenizer.bos_id());
        }
        let turns = system
            .map(|s| ("system", s))
            .into_iter()
            .chain([("user", user)]);
        for (role, body) in turns {
            ids.push(self.im_start);
            ids.extend(self.tokenizer.encode_plain(&format!("{role}\n{body}"))?);
            ids.push(self.im_end);
            ids.extend(self.tokenizer.encode_plain("\n")?);
        }
        ids.push(self.im_start);
        ids.extend(self.tokenizer.encode_plain("assistant\n")?);
        Ok(ids)
    }

    /// Greedy decoding of at most `max_new_tokens` after `prompt`.
    pub fn generate(&mut self, prompt: &[u32], max_new_tokens: usize) -> Result<Generation> {
        let mut out = self.decode(&[prompt.to_vec()], max_new_tokens, None)?;
        Ok(out.remove(0).0)
    }

    /// Greedy decoding of every prompt at once (one batch, left-padded).
    pub fn generate_batch(
        &mut self,
        prompts: &[Vec<u32>],
        max_new_tokens: usize,
    ) -> Result<Vec<Generation>> {
        let out = self.decode(prompts, max_new_tokens, None)?;
        Ok(out.into_iter().map(|(g, _)| g).collect())
    }

    /// Classifies `text` into one of `labels`.
    ///
    /// The label is the first one the answer names (see [`parse_label`]), or, when it names none,
    /// the best-scoring label. A label's score is the log-probability, right after the prompt, of
    /// its first token(s), as written, lowercased or capitalised (enough tokens to tell it apart
    /// from the other labels); the confidence is the softmax of these scores over the labels.
    pub fn classify(&mut self, text: &str, labels: &[&str]) -> Result<Prediction> {
        let answer =
            self.classify_prompted(CLASSIFY_SYSTEM, &classify_user(text, labels), labels)?;
        let chosen = answer
            .label
            .unwrap_or_else(|| argmax(&answer.probabilities));
        Ok(Prediction {
            label: labels[chosen].to_string(),
            confidence: answer.probabilities[chosen].max(f32::MIN_POSITIVE),
        })
    }

    /// Asks with a given system and user turn which of `labels` fits, and reports what the
    /// answer named (nothing, when it names no label) beside the probabilities of the labels
    /// (softmax of their scores right after the prompt, as in [`Teacher::classify`]).
    pub fn classify_prompted(
        &mut self,
        system: &str,
        user: &str,
        labels: &[&str],
    ) -> Result<LabelAnswer> {
        Ok(self.classify_batch(system, &[user], labels)?.remove(0))
    }

    /// [`Teacher::classify_prompted`] for several user turns at once, in one batch.
    pub fn classify_batch(
        &mut self,
        system: &str,
        users: &[&str],
        labels: &[&str],
    ) -> Result<Vec<LabelAnswer>> {
        check_labels(labels)?;
        let prompts = users
            .iter()
            .map(|user| self.chat_prompt(Some(system), user))
            .collect::<Result<Vec<_>>>()?;
        let max_new = self.options.classify_max_new_tokens;
        let answers = self.decode(&prompts, max_new, Some(labels))?;
        Ok(answers
            .into_iter()
            .zip(&prompts)
            .map(|((answer, scores), prompt)| LabelAnswer {
                label: parse_label(&answer.text, labels),
                probabilities: softmax(&scores),
                tokens: prompt.len() + answer.tokens.len(),
                text: answer.text,
            })
            .collect())
    }

    /// Extracts entities of the given `labels` from `text` as code-point spans.
    pub fn extract_entities(&mut self, text: &str, labels: &[&str]) -> Result<Vec<Entity>> {
        Ok(self
            .extract_prompted(None, &extract_user(text, labels), text, labels)?
            .entities)
    }

    /// Asks with a given (optional) system turn and user turn for the entities of `labels` in
    /// `text`, and reports the answer with the entities it names.
    pub fn extract_prompted(
        &mut self,
        system: Option<&str>,
        user: &str,
        text: &str,
        labels: &[&str],
    ) -> Result<EntityAnswer> {
        Ok(self
            .extract_batch(system, &[(user, text)], labels)?
            .remove(0))
    }

    /// [`Teacher::extract_prompted`] for several (user turn, text) pairs at once, in one batch.
    pub fn extract_batch(
        &mut self,
        system: Option<&str>,
        items: &[(&str, &str)],
        labels: &[&str],
    ) -> Result<Vec<EntityAnswer>> {
        check_labels(labels)?;
        let prompts = items
            .iter()
            .map(|(user, _)| self.chat_prompt(system, user))
            .collect::<Result<Vec<_>>>()?;
        let answers = self.generate_batch(&prompts, self.options.extract_max_new_tokens)?;
        Ok(answers
            .into_iter()
            .zip(items)
            .zip(&prompts)
            .map(|((answer, (_, text)), prompt)| {
                let mut ends = Vec::with_capacity(answer.tokens.len());
                let mut at = 0;
                for &id in &answer.tokens {
                    at += self.tokenizer.byte_len(id);
                    ends.push(at);
                }
                let confidence = |span| span_confidence(&ends, &answer.token_probs, span);
                EntityAnswer {
                    entities: entities_from_answer(text, &answer.text, labels, confidence),
                    listed: lists_entities(&answer.text),
                    tokens: prompt.len() + answer.tokens.len(),
                    text: answer.text,
                }
            })
            .collect())
    }

    /// Greedy decoding of every prompt in one batch, with each label's score right after each
    /// prompt when `labels` are given (empty otherwise).
    fn decode(
        &self,
        prompts: &[Vec<u32>],
        max_new_tokens: usize,
        labels: Option<&[&str]>,
    ) -> Result<Vec<(Generation, Vec<f32>)>> {
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        for prompt in prompts {
            if prompt.is_empty() {
                return Err(Error::InvalidInput("teacher: empty prompt".into()));
            }
            if prompt.len() + max_new_tokens > self.context {
                return Err(Error::InvalidInput(format!(
                    "teacher: prompt of {} tokens plus {max_new_tokens} new tokens exceeds the context of {}",
                    prompt.len(),
                    self.context
                )));
            }
        }
        let (mut logits, mut cache) = self.model.prefill(prompts)?;
        let scores = match labels {
            Some(labels) => self.label_scores(&logits, &cache, labels)?,
            None => vec![Vec::new(); prompts.len()],
        };
        let rows = prompts.len();
        let mut out: Vec<Generation> = (0..rows)
            .map(|_| Generation {
                text: String::new(),
                tokens: Vec::new(),
                token_probs: Vec::new(),
                stopped: false,
            })
            .collect();
        let mut done = vec![max_new_tokens == 0; rows];
        loop {
            let mut next = vec![self.im_end; rows];
            for r in 0..rows {
                if done[r] {
                    continue;
                }
                let id = argmax(&logits[r]);
                if self.stop_ids.contains(&(id as u32)) {
                    out[r].stopped = true;
                    done[r] = true;
                    continue;
                }
                out[r]
                    .token_probs
                    .push(log_softmax_at(&logits[r], id).exp());
                out[r].tokens.push(id as u32);
                next[r] = id as u32;
                done[r] = out[r].tokens.len() == max_new_tokens;
            }
            if done.iter().all(|&d| d) {
                break;
            }
            // Finished rows are fed an end token; what follows it is never read.
            logits = self.model.step(&mut cache, &next)?;
        }
        for g in &mut out {
            g.text = self.tokenizer.decode(&g.tokens)?;
        }
        Ok(out.into_iter().zip(scores).collect())
    }

    /// Log-probability scores of each label right after each prompt (see [`Teacher::classify`]);
    /// labels that take several tokens to tell apart are scored by looking ahead on a copy of
    /// the batch's cache.
    fn label_scores(
        &self,
        first: &[Vec<f32>],
        cache: &KvCache,
        labels: &[&str],
    ) -> Result<Vec<Vec<f32>>> {
        let variants: Vec<Vec<Vec<u32>>> = labels
            .iter()
            .map(|l| {
                let mut seqs = Vec::new();
                for v in spellings(l) {
                    let ids = self.tokenizer.encode_plain(&v)?;
                    if !ids.is_empty() && !seqs.contains(&ids) {
                        seqs.push(ids);
                    }
                }
                Ok(seqs)
            })
            .collect::<Result<_>>()?;
        let norms: Vec<f32> = first.iter().map(|l| log_sum_exp(l)).collect();
        let mut scores = vec![Vec::with_capacity(labels.len()); first.len()];
        for (i, seqs) in variants.iter().enumerate() {
            let others: Vec<&Vec<u32>> = variants
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .flat_map(|(_, s)| s)
                .collect();
            let mut logps = vec![Vec::new(); first.len()];
            for seq in seqs {
                let prefix = &seq[..distinguishing_len(seq, &others)];
                let ahead = if prefix.len() > 1 {
                    self.model
                        .look_ahead(&mut cache.clone(), &prefix[..prefix.len() - 1])?
                } else {
                    Vec::new()
                };
                for (r, row) in first.iter().enumerate() {
                    let mut total = row[prefix[0] as usize] - norms[r];
                    for (j, &next) in prefix[1..].iter().enumerate() {
                        total += log_softmax_at(&ahead[r][j], next as usize);
                    }
                    logps[r].push(total);
                }
            }
            for (r, l) in logps.iter().enumerate() {
                scores[r].push(log_sum_exp(l));
            }
        }
        Ok(scores)
    }
}

pub(crate) fn check_labels(labels: &[&str]) -> Result<()> {
    if labels.is_empty() {
        return Err(Error::InvalidInput("teacher: no labels given".into()));
    }
    for (i, label) in labels.iter().enumerate() {
        if label.trim().is_empty() {
            return Err(Error::InvalidInput(format!("teacher: label {i} is empty")));
        }
        if labels[..i]
            .iter()
            .any(|l| l.to_lowercase() == label.to_lowercase())
        {
            return Err(Error::InvalidInput(format!(
                "teacher: label {label:?} is given twice (labels are matched ignoring case)"
            )));
        }
    }
    Ok(())
}

/// The spellings a model is likely to answer with: as written, lowercase, capitalised.
fn spellings(label: &str) -> Vec<String> {
    let lower = label.to_lowercase();
    let mut chars = lower.chars();
    let capital = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    vec![label.to_string(), lower, capital]
}

/// Shortest prefix length of `seq` that is not a prefix of any of `others` (all of it if none).
fn distinguishing_len(seq: &[u32], others: &[&Vec<u32>]) -> usize {
    (1..=seq.len())
        .find(|&k| others.iter().all(|o| !o.starts_with(&seq[..k])))
        .unwrap_or(seq.len())
}

fn argmax(xs: &[f32]) -> usize {
    xs.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 {
                (i, x)
            } else {
                best
            }
        })
        .0
}

fn log_sum_exp(xs: &[f32]) -> f32 {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + xs.iter().map(|x| (x - max).exp()).sum::<f32>().ln()
}

fn log_softmax_at(logits: &[f32], i: usize) -> f32 {
    logits[i] - log_sum_exp(logits)
}

pub(crate) fn softmax(xs: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(xs);
    xs.iter().map(|x| (x - lse).exp()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinguishing_prefix_stops_at_the_first_differing_token() {
        let a = vec![1, 2, 3];
        let b = vec![1, 2, 4];
        let c = vec![5];
        assert_eq!(distinguishing_len(&a, &[&b, &c]), 3);
        assert_eq!(distinguishing_len(&c, &[&a, &b]), 1);
        assert_eq!(distinguishing_len(&[1], &[&a]), 1);
    }

    #[test]
    fn labels_are_offered_as_an_or_list() {
        assert_eq!(prompt::or_list(&["a"]), "a");
        assert_eq!(prompt::or_list(&["a", "b", "c"]), "a, b or c");
    }

    #[test]
    fn spellings_cover_case_variants() {
        assert_eq!(
            spellings("NEGATIVE"),
            vec!["NEGATIVE", "negative", "Negative"]
        );
    }

    #[test]
    fn softmax_and_argmax_agree() {
        let p = softmax(&[1.0, 3.0, 2.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(argmax(&p), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), 0);
    }

    #[test]
    fn labels_must_be_distinct_and_non_empty() {
        assert!(check_labels(&[]).is_err());
        assert!(check_labels(&["a", " "]).is_err());
        assert!(check_labels(&["Yes", "yes"]).is_err());
        assert!(check_labels(&["yes", "no"]).is_ok());
    }
}
