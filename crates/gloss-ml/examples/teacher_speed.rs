//! Speed of the in-process LLM teacher on the CPU, with and without batching, printed as a
//! table: the same movie-review sentences classified by SmolLM2 with its weights as stored
//! (quantized kernels, one prompt at a time) and expanded to f32, one at a time and in batches.
//!
//! `cargo run --release -p gloss-ml --example teacher_speed -- [N]` (N sentences, default 48;
//! the model from scripts/fetch-test-models.sh, the data from scripts/fetch-test-data.sh;
//! `GLOSS_TEST_MODELS` and `GLOSS_TEST_DATA` override their directories).

use std::path::PathBuf;
use std::time::Instant;

use gloss_ml::data::load_polarity;
use gloss_ml::llama::Weights;
use gloss_ml::teacher::prompt::{classify_user, CLASSIFY_SYSTEM};
use gloss_ml::{Device, Teacher};

fn dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(default),
        PathBuf::from,
    )
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map_or(Ok(48), |a| a.parse())?;
    let models = dir("GLOSS_TEST_MODELS", ".cache/gloss-test-models");
    let gguf = models.join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let data = dir("GLOSS_TEST_DATA", ".cache/gloss-test-data");
    let ds = load_polarity(&data.join("polarity/sentences.csv"))?;
    let labels: Vec<&str> = ds.labels.iter().map(String::as_str).collect();
    let users: Vec<String> = ds
        .examples
        .iter()
        .take(n)
        .map(|(text, _)| classify_user(text, &labels))
        .collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let threads = candle_core::utils::get_num_threads();
    println!("SmolLM2-135M-Instruct Q4_1, {n} movie-review sentences, {threads} CPU threads");
    println!(
        "| weights | batch | examples/s | tokens/s | seconds | same answers as quantized, one at a time |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let mut reference: Option<Vec<Option<usize>>> = None;
    for (weights, batch) in [
        (Weights::Quantized, 1),
        (Weights::F32, 1),
        (Weights::F32, 4),
        (Weights::F32, 8),
        (Weights::F32, 16),
    ] {
        let mut teacher = Teacher::load_with(&gguf, &Device::Cpu, weights)?;
        let started = Instant::now();
        let mut answers = Vec::with_capacity(n);
        let mut tokens = 0;
        for chunk in users.chunks(batch) {
            for a in teacher.classify_batch(CLASSIFY_SYSTEM, chunk, &labels)? {
                tokens += a.tokens;
                answers.push(a.label);
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let reference = reference.get_or_insert_with(|| answers.clone());
        let same = answers
            .iter()
            .zip(reference.iter())
            .filter(|(a, b)| a == b)
            .count();
        println!(
            "| {} | {batch} | {:.2} | {:.0} | {seconds:.1} | {same} of {n} |",
            match weights {
                Weights::Quantized => "quantized",
                _ => "f32",
            },
            n as f64 / seconds,
            tokens as f64 / seconds,
        );
    }
    Ok(())
}
