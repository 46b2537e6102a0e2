//! Students: small, fast models trained on gold/corrected data to replace the teacher.
//!
//! - [`tiny`]: a hash-embedding CNN over raw text, no pretrained encoder needed;
//! - [`head`]: a linear/MLP head over cached [`Encoder`](crate::Encoder) embeddings;
//! - [`tiny_tagger`] and [`head_tagger`]: the same two models as entity taggers (BIO tags per
//!   word token or per word piece, decoded to character-offset spans, see
//!   [`tagging`](crate::tagging)).

mod entities;
pub mod head;
pub mod head_tagger;
pub mod tiny;
pub mod tiny_tagger;

/// A student on disk: `config.json` (its configuration) beside `model.safetensors` (its weights).
mod artifact {
    use std::path::Path;

    use candle_nn::VarMap;
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use crate::error::{CandleContext, Error, Result};

    const CONFIG_FILE: &str = "config.json";
    const WEIGHTS_FILE: &str = "model.safetensors";

    /// Reads the configuration of the student saved in `dir`.
    pub fn read_config<C: DeserializeOwned>(dir: &Path) -> Result<C> {
        let path = dir.join(CONFIG_FILE);
        let raw = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_slice(&raw).map_err(|source| Error::Json { path, source })
    }

    /// Loads the saved weights into `vars` (built from the same configuration).
    pub fn read_weights(dir: &Path, vars: &mut VarMap) -> Result<()> {
        let weights = dir.join(WEIGHTS_FILE);
        vars.load(&weights)
            .ctx(|| format!("{}: loading weights", weights.display()))
    }

    /// Writes the configuration and the weights into `dir` (created if missing).
    pub fn write(dir: &Path, config: &impl Serialize, vars: &VarMap) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(CONFIG_FILE);
        let json = serde_json::to_vec_pretty(config).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
        let weights = dir.join(WEIGHTS_FILE);
        vars.save(&weights)
            .ctx(|| format!("{}: saving weights", weights.display()))
    }
}
