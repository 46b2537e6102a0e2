//! Speed of the in-process LLM teacher's batched generation on the CPU: the same chat prompts
//! answered greedily (at most 128 new tokens each) one at a time and in batches of 8, 16 and 32,
//! with SmolLM2's weights expanded to f32. Prints a table, and how many answers match the
//! one-at-a-time ones word for word.
//!
//! `cargo run --release -p gloss-ml --example generation_speed -- [N]` (N prompts, default 32;
//! the model from scripts/fetch-test-models.sh, or `GLOSS_TEST_MODELS`).

use std::path::PathBuf;
use std::time::Instant;

use gloss_ml::llama::Weights;
use gloss_ml::{Device, Teacher};

/// Requests of the kinds an entity or labelling teacher gets, some answered in a few tokens and
/// some running to the limit.
const REQUESTS: [&str; 8] = [
    "List every person and place in: Bob met Alice in Rome on Friday.",
    "Write a short story about a cat in Paris.",
    "Explain rain.",
    "Name three colours.",
    "Describe the sea at night in detail.",
    "What is 2+2?",
    "Tell me about Lisbon and its history.",
    "List the organisations in: Acme Corp hired two engineers from Globex.",
];

const MAX_NEW_TOKENS: usize = 128;

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map_or(Ok(32), |a| a.parse())?;
    let models = std::env::var_os("GLOSS_TEST_MODELS").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/gloss-test-models")
        },
        PathBuf::from,
    );
    let gguf = models.join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut teacher = Teacher::load_with(&gguf, &Device::Cpu, Weights::F32)?;
    let prompts = REQUESTS
        .iter()
        .cycle()
        .take(n)
        .map(|r| teacher.chat_prompt(None, r))
        .collect::<Result<Vec<_>, _>>()?;
    let threads = candle_core::utils::get_num_threads();
    println!("SmolLM2-135M-Instruct as f32, {n} prompts, at most {MAX_NEW_TOKENS} new tokens each, {threads} CPU threads");
    println!("| batch | new tokens/s | seconds | same answers as one at a time |");
    println!("| ---: | ---: | ---: | ---: |");
    let mut reference: Option<Vec<String>> = None;
    for batch in [1, 8, 16, 32] {
        let started = Instant::now();
        let mut answers = Vec::with_capacity(n);
        let mut tokens = 0;
        for chunk in prompts.chunks(batch) {
            for g in teacher.generate_batch(chunk, MAX_NEW_TOKENS)? {
                tokens += g.tokens.len();
                answers.push(g.text);
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let same = reference.as_ref().map_or(n, |r| {
            r.iter().zip(&answers).filter(|(a, b)| a == b).count()
        });
        println!(
            "| {batch} | {:.1} | {secs:.1} | {same} of {n} |",
            tokens as f64 / secs
        );
        reference.get_or_insert(answers);
    }
    Ok(())
}
