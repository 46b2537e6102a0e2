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

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::quantized_llama::{ModelWeights, MAX_SEQ_LEN};

use crate::error::{CandleContext, Error, Result};
use crate::gguf_tokenizer::{read_gguf_content, GgufTokenizer};
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

/// A GGUF chat model on one device. Methods take `&mut self`: the model holds a KV cache.
pub struct Teacher {
    model: ModelWeights,
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
    /// Loads a llama-family GGUF file (weights and tokenizer) onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Teacher> {
        let content = read_gguf_content(path)?;
        let tokenizer = GgufTokenizer::from_content(&content, path)?;
        let context = match content.metadata.get("llama.context_length") {
            Some(v) => v.to_u32().map_or(MAX_SEQ_LEN, |n| n as usize),
            None => MAX_SEQ_LEN,
        }
        .min(MAX_SEQ_LEN);
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
        let model = ModelWeights::from_gguf(content, &mut reader, device)
            .ctx(|| format!("{}: loading quantized llama weights", path.display()))?;
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
        let logits = self.start(prompt, max_new_tokens)?;
        self.continue_greedy(logits, prompt.len(), max_new_tokens)
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
        check_labels(labels)?;
        let prompt = self.chat_prompt(Some(system), user)?;
        let max_new = self.options.classify_max_new_tokens;
        let logits = self.start(&prompt, max_new)?;
        let scores = self.label_scores(&logits, prompt.len(), labels)?;
        let answer = self.continue_greedy(logits, prompt.len(), max_new)?;
        Ok(LabelAnswer {
            label: parse_label(&answer.text, labels),
            text: answer.text,
            probabilities: softmax(&scores),
            tokens: prompt.len() + answer.tokens.len(),
        })
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
        check_labels(labels)?;
        let prompt = self.chat_prompt(system, user)?;
        let answer = self.generate(&prompt, self.options.extract_max_new_tokens)?;

        let mut ends = Vec::with_capacity(answer.tokens.len());
        let mut at = 0;
        for &id in &answer.tokens {
            at += self.tokenizer.byte_len(id);
            ends.push(at);
        }
        let confidence = |span| span_confidence(&ends, &answer.token_probs, span);
        Ok(EntityAnswer {
            entities: entities_from_answer(text, &answer.text, labels, confidence),
            listed: lists_entities(&answer.text),
            tokens: prompt.len() + answer.tokens.len(),
            text: answer.text,
        })
    }

    /// Runs the prompt through a fresh KV cache and returns the next-token logits.
    fn start(&mut self, prompt: &[u32], max_new_tokens: usize) -> Result<Vec<f32>> {
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
        forward(&mut self.model, &self.device, prompt, 0)
    }

    fn continue_greedy(
        &mut self,
        mut logits: Vec<f32>,
        prompt_len: usize,
        max_new_tokens: usize,
    ) -> Result<Generation> {
        let mut tokens = Vec::new();
        let mut token_probs = Vec::new();
        let mut stopped = false;
        while tokens.len() < max_new_tokens {
            let next = argmax(&logits);
            if self.stop_ids.contains(&(next as u32)) {
                stopped = true;
                break;
            }
            token_probs.push(log_softmax_at(&logits, next).exp());
            tokens.push(next as u32);
            if tokens.len() == max_new_tokens {
                break;
            }
            let pos = prompt_len + tokens.len() - 1;
            logits = forward(&mut self.model, &self.device, &[next as u32], pos)?;
        }
        Ok(Generation {
            text: self.tokenizer.decode(&tokens)?,
            tokens,
            token_probs,
            stopped,
        })
    }

    /// Log-probability scores of each label right after the prompt (see [`Teacher::classify`]).
    fn label_scores(&self, logits: &[f32], prompt_len: usize, labels: &[&str]) -> Result<Vec<f32>> {
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
        let mut scores = Vec::with_capacity(labels.len());
        for (i, seqs) in variants.iter().enumerate() {
            let others: Vec<&Vec<u32>> = variants
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .flat_map(|(_, s)| s)
                .collect();
            let mut logps = Vec::new();
            for seq in seqs {
                let k = distinguishing_len(seq, &others);
                logps.push(self.prefix_logprob(logits, prompt_len, &seq[..k])?);
            }
            scores.push(log_sum_exp(&logps));
        }
        Ok(scores)
    }

    /// Log-probability of `prefix` following the prompt, given the logits after the prompt. Extra
    /// tokens are scored on a copy of the model so the main KV cache is left as it is.
    fn prefix_logprob(&self, logits: &[f32], prompt_len: usize, prefix: &[u32]) -> Result<f32> {
        let mut total = log_softmax_at(logits, prefix[0] as usize);
        if prefix.len() > 1 {
            let mut model = self.model.clone();
            for (j, pair) in prefix.windows(2).enumerate() {
                let next = forward(&mut model, &self.device, &[pair[0]], prompt_len + j)?;
                total += log_softmax_at(&next, pair[1] as usize);
            }
        }
        Ok(total)
    }
}

/// Feeds `ids` at position `pos` and returns the logits for the next token.
fn forward(model: &mut ModelWeights, device: &Device, ids: &[u32], pos: usize) -> Result<Vec<f32>> {
    let ctx = || format!("teacher forward of {} tokens at position {pos}", ids.len());
    let input = Tensor::new(ids, device)
        .and_then(|t| t.unsqueeze(0))
        .ctx(ctx)?;
    model
        .forward(&input, pos)
        .and_then(|l| l.squeeze(0)?.to_dtype(DType::F32)?.to_vec1::<f32>())
        .ctx(ctx)
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
