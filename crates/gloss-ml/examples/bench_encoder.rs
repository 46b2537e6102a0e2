//! Throughput of the encoder and the teacher on the CPU, printed as a table.
//!
//! `cargo run --release --example bench_encoder` (models from scripts/fetch-test-models.sh;
//! `GLOSS_TEST_MODELS` overrides their directory). Uses 2 threads unless `RAYON_NUM_THREADS` says
//! otherwise.

use std::path::PathBuf;
use std::time::Instant;

use gloss_ml::{Device, Encoder, Teacher};

const WORDS: &[&str] = &[
    "the",
    "annotation",
    "model",
    "quickly",
    "reviewed",
    "patient",
    "records",
    "and",
    "found",
    "several",
    "invoices",
    "contract",
    "clauses",
    "were",
    "ambiguous",
    "but",
    "reviewers",
    "agreed",
    "on",
    "labels",
    "for",
    "most",
    "examples",
    "in",
    "dataset",
    "während",
    "café",
    "résumé",
    "42",
    "2024",
    "teacher",
    "student",
    "distilled",
    "slowly",
    "network",
    "never",
    "leaves",
    "cluster",
];

/// ~500 deterministic sentences of 3 to 90 words (a simple LCG, no randomness source).
fn sentences(n: usize) -> Vec<String> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    (0..n)
        .map(|_| {
            let len = 3 + next() % 88;
            let mut s: Vec<&str> = (0..len).map(|_| WORDS[next() % WORDS.len()]).collect();
            s[0] = "This";
            format!("{}.", s.join(" "))
        })
        .collect()
}

fn models_dir() -> PathBuf {
    std::env::var_os("GLOSS_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/gloss-test-models")
        })
}

fn main() -> anyhow::Result<()> {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "2");
    }
    let threads = candle_core::utils::get_num_threads();
    let dir = models_dir();
    let device = Device::Cpu;

    let encoder = Encoder::load(&dir.join("minilm"), &device)?;
    let texts = sentences(500);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    encoder.embed(&refs[..16], 16)?; // warm-up

    println!("| benchmark | setting | items | seconds | rate |");
    println!("|---|---|---|---|---|");
    for batch in [1, 32] {
        let start = Instant::now();
        let out = encoder.embed(&refs, batch)?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "| encoder all-MiniLM-L6-v2 | batch {batch}, {threads} threads | {} sentences | {secs:.2} | {:.1} sentences/s |",
            out.len(),
            out.len() as f64 / secs
        );
    }

    let mut teacher = Teacher::load(
        &dir.join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        &device,
    )?;
    let prompt = teacher.chat_prompt(
        None,
        "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    )?;
    teacher.generate(&prompt, 4)?; // warm-up
    let start = Instant::now();
    let g = teacher.generate(&prompt, 1)?;
    let prefill = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let g2 = teacher.generate(&prompt, 128)?;
    let total = start.elapsed().as_secs_f64();
    let decode_tokens = g2.tokens.len().saturating_sub(g.tokens.len());
    println!(
        "| teacher SmolLM2-135M Q4_1 prefill | {threads} threads | {} prompt tokens | {prefill:.2} | {:.1} tokens/s |",
        prompt.len(),
        prompt.len() as f64 / prefill
    );
    println!(
        "| teacher SmolLM2-135M Q4_1 greedy decode | {threads} threads | {decode_tokens} new tokens | {:.2} | {:.1} tokens/s |",
        total - prefill,
        decode_tokens as f64 / (total - prefill)
    );
    Ok(())
}
