//! Locating the reference models and data sets; see `crates/gloss-ml/scripts/fetch-test-*.sh`.

#![allow(dead_code)]

use std::path::PathBuf;

/// `$VAR`, or `$HOME/.cache/DEFAULT` when it is unset or empty.
fn cache_dir(var: &str, default: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = std::env::var_os("HOME")
                .unwrap_or_else(|| panic!("HOME is not set and {var} is empty"));
            PathBuf::from(home).join(".cache").join(default)
        }
    }
}

/// `$GLOSS_TEST_MODELS`, or `$HOME/.cache/gloss-test-models`.
pub fn models_dir() -> PathBuf {
    cache_dir("GLOSS_TEST_MODELS", "gloss-test-models")
}

/// Path of a model file under the models directory; fails the test (never skips) when missing.
pub fn require(relative: &str) -> PathBuf {
    let path = models_dir().join(relative);
    assert!(
        path.is_file(),
        "test model file {} is missing: run crates/gloss-ml/scripts/fetch-test-models.sh \
         (it honours GLOSS_TEST_MODELS) before cargo test",
        path.display()
    );
    path
}

/// The all-MiniLM-L6-v2 directory, with all three files checked.
pub fn minilm_dir() -> PathBuf {
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        require(&format!("minilm/{file}"));
    }
    models_dir().join("minilm")
}

/// The SmolLM2-135M-Instruct GGUF file.
pub fn smollm2_gguf() -> PathBuf {
    require("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// `$GLOSS_TEST_DATA`, or `$HOME/.cache/gloss-test-data`.
pub fn data_dir() -> PathBuf {
    cache_dir("GLOSS_TEST_DATA", "gloss-test-data")
}

/// Path of a corpus file or directory under the data directory; fails (never skips) when missing.
pub fn require_data(relative: &str) -> PathBuf {
    let path = data_dir().join(relative);
    assert!(
        path.exists(),
        "test data {} is missing: run crates/gloss-ml/scripts/fetch-test-data.sh \
         (it honours GLOSS_TEST_DATA) before cargo test",
        path.display()
    );
    path
}
