//! Gloss machine learning: the models a worker runs, behind a small synchronous API.
//!
//! What lives here:
//! - [`encoder`]: a BERT-family sentence encoder (candle) that turns texts into L2-normalised
//!   embeddings, with length bucketing and attention-masked mean pooling;
//! - [`gguf_tokenizer`]: a byte-level BPE tokenizer rebuilt from a GGUF file's own metadata, so a
//!   GGUF model needs no separate `tokenizer.json`;
//! - [`teacher`]: an in-process LLM teacher (quantized llama from a GGUF file) that classifies texts
//!   and extracts entities with greedy decoding, a remote one for OpenAI-compatible servers
//!   ([`teacher::openai`]) asking the same prompts, an embedding-similarity zero-shot teacher
//!   ([`teacher::similarity`]), and the pure parsing that turns answers into labels and spans;
//! - [`student`]: small models trained on gold data (a hash-embedding CNN that needs no
//!   pretrained encoder, and a head over cached encoder embeddings), each as a text classifier
//!   and as an entity tagger, with [`train`] (a seeded, cancellable AdamW loop with early
//!   stopping), [`tagging`] (BIO alignment of character spans and constrained decoding),
//!   [`metrics`] (classification and exact-match span scores) and [`data`] (corpus loaders and
//!   hash-based train/dev/test splits).
//!
//! It depends on candle, `tokenizers` and `ureq` (blocking HTTP). It must never touch the network
//! except to call a model server the caller explicitly configured ([`OpenAiTeacher`]); models are
//! loaded from local paths the caller names and nothing is fetched from a hub. It must never be
//! async (callers run it on a dedicated thread and feed it through a channel), and never read
//! clocks or randomness inside model math: the same inputs and weights give the same outputs.

mod bert;
pub mod data;
pub mod encoder;
pub mod error;
mod fused;
pub mod gguf_tokenizer;
pub mod hash;
pub mod llama;
pub mod metrics;
pub mod student;
pub mod tagging;
pub mod teacher;
pub mod train;

pub use candle_core::Device;
pub use encoder::{Encoder, TokenStates};
pub use error::{Error, Result};
pub use gguf_tokenizer::GgufTokenizer;
pub use student::head::{HeadConfig, HeadStudent};
pub use student::head_tagger::{HeadTagger, HeadTaggerConfig};
pub use student::tiny::{TinyConfig, TinyStudent, TinyTask};
pub use student::tiny_tagger::TinyTagger;
pub use teacher::openai::{OpenAiConfig, OpenAiTeacher};
pub use teacher::similarity::{SimilarityConfig, SimilarityPrediction, SimilarityTeacher};
pub use teacher::{Entity, Generation, GenerationOptions, Prediction, Teacher};
pub use train::{fit, train, EpochReport, Objective, TrainConfig, TrainOutcome, Trainable};
