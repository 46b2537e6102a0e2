//! Gloss ML bench: encoder throughput, teacher/student speed and size, and learning curves of
//! the students against the zero-shot teachers on the real corpora, printed as Markdown tables.
//!
//! `cargo run --release --example bench -- --help` for the flags. Models come from
//! scripts/fetch-test-models.sh, corpora from scripts/fetch-test-data.sh.

mod args;
mod classify;
mod entities;
mod speed;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use gloss_ml::data::{self, EntityDataset};
use gloss_ml::hash::SplitMix64;
use gloss_ml::{Device, Encoder, GenerationOptions, Teacher};

use args::{Args, Set};

/// Fixed seed for the shuffles that pick training subsets and the teacher's test sample.
const SHUFFLE_SEED: u64 = 0x6c05_5b3e;

/// What the bench shares between sections: models and flags.
pub struct Ctx {
    pub args: Args,
    pub encoder: std::sync::Arc<Encoder>,
    pub encoder_bytes: u64,
    pub teacher: Option<Teacher>,
    pub teacher_bytes: u64,
}

/// One row of the speed and size table.
pub struct SpeedRow {
    pub model: String,
    pub set: &'static str,
    pub rate: f64,
    pub artifact_bytes: u64,
    pub train_secs: Option<f64>,
    pub note: String,
}

fn cache_dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache")
                .join(default)
        })
}

/// Bytes of the files directly under `dir`.
pub fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

/// `items` in a fixed pseudo-random order.
pub fn shuffled<T: Clone>(items: &[T]) -> Vec<T> {
    let mut out = items.to_vec();
    SplitMix64::new(SHUFFLE_SEED).shuffle(&mut out);
    out
}

/// The first `n` of `pool` split 80/20 into train and dev (dev at least one example).
pub fn train_dev<T: Clone>(pool: &[T], n: usize) -> (Vec<T>, Vec<T>) {
    let n = n.min(pool.len());
    let dev = (n / 5).max(1);
    (pool[..n - dev].to_vec(), pool[n - dev..n].to_vec())
}

/// `(max_epochs, patience)` for `n` training examples in batches of `batch`: small sets get
/// more epochs and more patience, so that every run sees a few hundred optimiser steps before
/// early stopping can end it (taggers score 0 on dev until they first dare predict an entity).
pub fn schedule(n: usize, batch: usize) -> (usize, usize) {
    let steps = n.div_ceil(batch).max(1);
    ((1500 / steps).clamp(20, 200), (300 / steps).clamp(3, 40))
}

pub fn human_bytes(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    }
}

// Tensors are allocated and freed per operation; glibc hands large blocks back to the system
// each time (page faults, zeroing), mimalloc keeps them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let Some(args) = args::parse(std::env::args().skip(1))? else {
        println!("{}", args::USAGE);
        return Ok(());
    };
    // candle's CPU kernels size their pool from this; it must be set before the first tensor.
    std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string());
    let started = Instant::now();
    let models = cache_dir("GLOSS_TEST_MODELS", "gloss-test-models");
    let corpora = cache_dir("GLOSS_TEST_DATA", "gloss-test-data");
    let device = Device::Cpu;

    let encoder_dir = models.join("minilm");
    let encoder = std::sync::Arc::new(Encoder::load(&encoder_dir, &device)?);
    let gguf = models.join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let teacher = if args.teacher {
        let options = GenerationOptions {
            extract_max_new_tokens: args.teacher_max_new,
            ..GenerationOptions::default()
        };
        Some(Teacher::load(&gguf, &device)?.with_options(options))
    } else {
        None
    };
    println!(
        "# gloss-ml bench\n\n{} CPU threads; sets {:?}; sizes {:?}; teacher sample {} \
         (texts cut to {} chars, at most {} answer tokens for entities)\n",
        candle_core::utils::get_num_threads(),
        args.sets.iter().map(|s| s.name()).collect::<Vec<_>>(),
        args.sizes,
        if args.teacher {
            args.teacher_sample.to_string()
        } else {
            "none (--no-teacher)".into()
        },
        args.teacher_chars,
        args.teacher_max_new
    );
    let mut ctx = Ctx {
        encoder_bytes: dir_bytes(&encoder_dir)?,
        teacher_bytes: std::fs::metadata(&gguf)?.len(),
        args,
        encoder,
        teacher,
    };

    if ctx.args.speed {
        let t = Instant::now();
        speed::encoder_table(&ctx)?;
        println!("_encoder section: {:.0} s_\n", t.elapsed().as_secs_f64());
    }

    let mut speed_rows = Vec::new();
    for set in ctx.args.sets.clone() {
        let t = Instant::now();
        let rows = match set {
            Set::Polarity => {
                let ds = data::load_polarity(&corpora.join("polarity/sentences.csv"))?;
                classify::curve(&mut ctx, set, &ds, &classify::POLARITY)?
            }
            Set::Spam => {
                let ds = data::load_spam_assassin(&corpora.join("spam-assassin"))?;
                classify::curve(&mut ctx, set, &ds, &classify::SPAM)?
            }
            Set::Wnut => {
                let sentences = data::load_conll(&corpora.join("wnut16/ner.txt"))?;
                let ds = EntityDataset::from_tagged(&sentences)?;
                entities::curve(&mut ctx, &ds)?
            }
        };
        speed_rows.extend(rows);
        println!(
            "_{} section: {:.0} s_\n",
            set.name(),
            t.elapsed().as_secs_f64()
        );
    }
    speed::model_table(&speed_rows);
    println!(
        "_total wall time: {:.0} s_",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
