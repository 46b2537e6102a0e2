//! A zero-shot teacher from a sentence encoder alone: a text gets the label whose description it
//! is most similar to.
//!
//! Each label has a description (the caller's, or the label name itself), embedded once when the
//! teacher is built. A text is embedded, compared with every description by cosine similarity, and
//! the similarities divided by a temperature go through a softmax to give a probability per label.
//! Cosines of one sentence encoder against a few descriptions differ by hundredths, so the
//! temperature is small (default [`DEFAULT_TEMPERATURE`]); it only sharpens or flattens the
//! probabilities and never changes which label wins.
//!
//! Descriptions matter more than anything else here: "a negative movie review" does much better
//! than the bare label "negative".

use std::sync::Arc;

use super::{check_labels, softmax, Prediction};
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::train::argmax;

/// Temperature used unless the caller picks another.
pub const DEFAULT_TEMPERATURE: f32 = 0.05;

/// Labels, their descriptions and the softmax temperature.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarityConfig {
    /// Output labels, in score order.
    pub labels: Vec<String>,
    /// One description per label; an empty list means "use the label names".
    pub descriptions: Vec<String>,
    /// Divides the cosine similarities before the softmax; must be positive.
    pub temperature: f32,
    /// Texts per encoder batch.
    pub batch_size: usize,
}

impl SimilarityConfig {
    /// Labels described by their own names, [`DEFAULT_TEMPERATURE`], batches of 32.
    pub fn new(labels: Vec<String>) -> SimilarityConfig {
        SimilarityConfig {
            labels,
            descriptions: Vec::new(),
            temperature: DEFAULT_TEMPERATURE,
            batch_size: 32,
        }
    }

    /// Replaces the descriptions (one per label, in label order).
    pub fn with_descriptions(mut self, descriptions: Vec<String>) -> SimilarityConfig {
        self.descriptions = descriptions;
        self
    }

    fn validate(&self) -> Result<()> {
        let labels: Vec<&str> = self.labels.iter().map(String::as_str).collect();
        check_labels(&labels)?;
        let problem =
            if !self.descriptions.is_empty() && self.descriptions.len() != self.labels.len() {
                Some(format!(
                    "{} descriptions for {} labels",
                    self.descriptions.len(),
                    self.labels.len()
                ))
            } else if let Some(i) = self.descriptions.iter().position(|d| d.trim().is_empty()) {
                Some(format!(
                    "description of label {:?} is empty",
                    self.labels[i]
                ))
            } else if !(self.temperature.is_finite() && self.temperature > 0.0) {
                Some(format!("temperature {} must be positive", self.temperature))
            } else if self.batch_size == 0 {
                Some("batch_size must be at least 1".into())
            } else {
                None
            };
        problem.map_or(Ok(()), |p| {
            Err(Error::InvalidInput(format!("similarity teacher: {p}")))
        })
    }
}

/// One text's zero-shot result: the winning label and every label's score.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarityPrediction {
    /// The label with the highest similarity.
    pub label: String,
    /// Its probability (`probabilities[index]`).
    pub confidence: f32,
    /// Index of `label` in the configured labels.
    pub index: usize,
    /// Softmax of `cosines / temperature`, in label order; sums to 1.
    pub probabilities: Vec<f32>,
    /// Raw cosine similarity to each label's description, in label order.
    pub cosines: Vec<f32>,
}

impl SimilarityPrediction {
    /// The label and confidence alone, as the LLM teachers report them.
    pub fn prediction(&self) -> Prediction {
        Prediction {
            label: self.label.clone(),
            confidence: self.confidence,
        }
    }
}

/// The embedding-similarity zero-shot teacher.
#[derive(Debug)]
pub struct SimilarityTeacher {
    encoder: Arc<Encoder>,
    config: SimilarityConfig,
    /// Unit-length description embeddings, one per label.
    prototypes: Vec<Vec<f32>>,
}

impl SimilarityTeacher {
    /// Embeds the label descriptions with `encoder`; the encoder is shared, not copied.
    pub fn new(encoder: Arc<Encoder>, config: SimilarityConfig) -> Result<SimilarityTeacher> {
        config.validate()?;
        let descriptions: Vec<&str> = if config.descriptions.is_empty() {
            config.labels.iter().map(String::as_str).collect()
        } else {
            config.descriptions.iter().map(String::as_str).collect()
        };
        let prototypes = encoder
            .embed(&descriptions, config.batch_size)?
            .into_iter()
            .map(unit)
            .collect();
        Ok(SimilarityTeacher {
            encoder,
            config,
            prototypes,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &SimilarityConfig {
        &self.config
    }

    /// Label names in score order.
    pub fn labels(&self) -> &[String] {
        &self.config.labels
    }

    /// Classifies each text (embedding them in batches).
    pub fn classify_many(&self, texts: &[&str]) -> Result<Vec<SimilarityPrediction>> {
        let embeddings = self.encoder.embed(texts, self.config.batch_size)?;
        Ok(embeddings
            .into_iter()
            .map(|e| self.classify_embedding(&e))
            .collect())
    }

    /// Classifies one text.
    pub fn classify(&self, text: &str) -> Result<SimilarityPrediction> {
        let mut all = self.classify_many(&[text])?;
        all.pop().ok_or_else(|| {
            Error::InvalidInput("similarity teacher: the encoder returned no embedding".into())
        })
    }

    /// Classifies a text already embedded by the same encoder (e.g. a cached student input).
    pub fn classify_embedding(&self, embedding: &[f32]) -> SimilarityPrediction {
        let text = unit(embedding.to_vec());
        let cosines: Vec<f32> = self
            .prototypes
            .iter()
            .map(|p| p.iter().zip(&text).map(|(a, b)| a * b).sum())
            .collect();
        let scaled: Vec<f32> = cosines
            .iter()
            .map(|c| c / self.config.temperature)
            .collect();
        let probabilities = softmax(&scaled);
        let index = argmax(&cosines);
        SimilarityPrediction {
            label: self.config.labels[index].clone(),
            confidence: probabilities[index],
            index,
            probabilities,
            cosines,
        }
    }
}

/// `v` scaled to unit length (left as is when it is all zeros).
fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_validated() {
        let labels = vec!["yes".to_string(), "no".to_string()];
        assert!(SimilarityConfig::new(labels.clone()).validate().is_ok());
        let short = SimilarityConfig::new(labels.clone()).with_descriptions(vec!["x".into()]);
        let err = short.validate().unwrap_err();
        assert!(
            err.to_string().contains("1 descriptions for 2 labels"),
            "{err}"
        );
        let mut cold = SimilarityConfig::new(labels.clone());
        cold.temperature = 0.0;
        assert!(cold.validate().is_err());
        assert!(SimilarityConfig::new(vec!["a".into(), "A".into()])
            .validate()
            .is_err());
        let blank = SimilarityConfig::new(labels).with_descriptions(vec!["x".into(), " ".into()]);
        assert!(blank.validate().is_err());
    }

    #[test]
    fn unit_vectors() {
        assert_eq!(unit(vec![3.0, 4.0]), vec![0.6, 0.8]);
        assert_eq!(unit(vec![0.0, 0.0]), vec![0.0, 0.0]);
    }
}
