//! The crate's single error type.

use std::path::PathBuf;

/// Everything that can go wrong in `gloss-ml`; messages name the file or thing at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (model config) is not what we expect.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// The `tokenizers` crate rejected a tokenizer file or an input.
    #[error("tokenizer {what}: {message}")]
    Tokenizer { what: String, message: String },

    /// A GGUF file lacks metadata we need or holds it with the wrong type.
    #[error("{path}: GGUF metadata {key}: {message}")]
    GgufMetadata {
        path: PathBuf,
        key: String,
        message: String,
    },

    /// A tensor operation failed inside candle; `context` says which step.
    #[error("{context}: {source}")]
    Candle {
        context: String,
        #[source]
        source: candle_core::Error,
    },

    /// A remote model server answered with an HTTP error status.
    #[error("POST {url}: HTTP {status}: {body}")]
    HttpStatus {
        url: String,
        status: u16,
        /// The start of the response body (servers put the reason there).
        body: String,
    },

    /// A remote model server did not answer within the configured timeout.
    #[error("POST {url}: no answer within {timeout_ms} ms")]
    Timeout { url: String, timeout_ms: u128 },

    /// The request never got an HTTP answer (connection refused, reset, DNS, ...).
    #[error("POST {url}: {message}")]
    Transport { url: String, message: String },

    /// A remote model server answered 2xx with a body we cannot use (not JSON, no choices, ...).
    #[error("POST {url}: malformed response: {message}")]
    BadResponse { url: String, message: String },

    /// A model's answer names none of the labels it was offered.
    #[error("{source_name}: the answer {answer:?} names none of the labels {labels:?}")]
    NoLabel {
        source_name: String,
        answer: String,
        labels: Vec<String>,
    },

    /// The caller asked for something the model cannot do.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn tokenizer(what: impl Into<String>, message: impl ToString) -> Self {
        Error::Tokenizer {
            what: what.into(),
            message: message.to_string(),
        }
    }
}

/// Attaches a step description to candle errors: `model.forward().ctx("encoder forward")?`.
pub(crate) trait CandleContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> CandleContext<T> for candle_core::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Candle {
            context: context(),
            source,
        })
    }
}
