//! Throughput tables: the encoder on synthetic sentences of mixed length, and every model's
//! examples/s, artifact size and training time gathered from the learning curves.

use std::time::Instant;

use crate::{human_bytes, Ctx, SpeedRow};

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

/// `n` deterministic sentences of 3 to 90 words (a fixed LCG, no randomness source).
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

/// Encoder sentences/s at batch 1 and 32.
pub fn encoder_table(ctx: &Ctx) -> anyhow::Result<()> {
    let texts = sentences(ctx.args.encoder_sentences);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let words: usize = texts.iter().map(|t| t.split(' ').count()).sum();
    ctx.encoder.embed(&refs[..refs.len().min(16)], 16)?; // warm-up
    println!(
        "## Encoder throughput (all-MiniLM-L6-v2, {} sentences of 3-90 words, mean {:.0})\n",
        texts.len(),
        words as f64 / texts.len().max(1) as f64
    );
    println!("| batch | threads | seconds | sentences/s |");
    println!("|---:|---:|---:|---:|");
    for batch in [1, 32] {
        let start = Instant::now();
        let out = ctx.encoder.embed(&refs, batch)?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "| {batch} | {} | {secs:.1} | {:.1} |",
            candle_core::utils::get_num_threads(),
            out.len() as f64 / secs
        );
    }
    println!();
    Ok(())
}

/// Examples/s, artifact size and training time of every model measured in the curves.
pub fn model_table(rows: &[SpeedRow]) {
    println!("## Models: speed, size, training time\n");
    println!(
        "Rates are end to end from raw text on the set's test texts (the encoder+head rows \
         include running the encoder). Training time is for the largest size trained.\n"
    );
    println!("| model | set | examples/s | artifact | training time | note |");
    println!("|---|---|---:|---:|---:|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.model,
            r.set,
            if r.rate < 10.0 {
                format!("{:.3}", r.rate)
            } else {
                format!("{:.1}", r.rate)
            },
            human_bytes(r.artifact_bytes),
            r.train_secs.map_or("-".into(), |s| format!("{s:.1} s")),
            r.note
        );
    }
    println!();
    for set in ["polarity", "spam", "wnut"] {
        let rate = |prefix: &str| {
            rows.iter()
                .find(|r| r.set == set && r.model.starts_with(prefix))
                .map(|r| r.rate)
        };
        if let (Some(teacher), Some(tiny)) = (rate("teacher"), rate("tiny")) {
            println!(
                "- {set}: tiny student {:.0}x the teacher's examples/s",
                tiny / teacher
            );
        }
    }
    println!();
}
