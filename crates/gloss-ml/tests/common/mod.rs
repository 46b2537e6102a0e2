//! Locating the reference models; see `scripts/fetch-test-models.sh`.

#![allow(dead_code)]

use std::path::PathBuf;

/// `$GLOSS_TEST_MODELS`, or `$HOME/.cache/gloss-test-models`.
pub fn models_dir() -> PathBuf {
    match std::env::var_os("GLOSS_TEST_MODELS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home =
                std::env::var_os("HOME").expect("HOME is not set and GLOSS_TEST_MODELS is empty");
            PathBuf::from(home).join(".cache/gloss-test-models")
        }
    }
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
