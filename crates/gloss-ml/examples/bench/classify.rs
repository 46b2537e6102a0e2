//! Learning curves on a text-classification corpus: both zero-shot teachers against the tiny
//! student and the encoder+head student trained on growing numbers of gold examples.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use gloss_ml::data::TextDataset;
use gloss_ml::metrics::classification_report;
use gloss_ml::train::{argmax, predict_labels};
use gloss_ml::{
    train, HeadConfig, HeadStudent, SimilarityConfig, SimilarityTeacher, TinyConfig, TinyStudent,
    TrainConfig,
};

use crate::args::Set;
use crate::{dir_bytes, schedule, shuffled, train_dev, Ctx, SpeedRow};

/// How the teachers see a corpus's labels (index order matches the dataset's labels).
pub struct Spec {
    /// Labels offered to the LLM teacher.
    pub prompt_labels: &'static [&'static str],
    /// Label descriptions for the similarity teacher.
    pub descriptions: &'static [&'static str],
}

pub const POLARITY: Spec = Spec {
    prompt_labels: &["negative", "positive"],
    descriptions: &[
        "a negative movie review: the film is bad, boring or disappointing",
        "a positive movie review: the film is good, moving or entertaining",
    ],
};

pub const SPAM: Spec = Spec {
    prompt_labels: &["not spam", "spam"],
    descriptions: &[
        "a normal email: a discussion, newsletter or message between colleagues or friends",
        "a spam email: an unsolicited advertisement, offer, scam or marketing message",
    ],
};

/// Accuracy and macro-F1 on the full test split and macro-F1 on the teacher's sample.
struct Score {
    accuracy: f64,
    macro_f1: f64,
    sample_f1: f64,
}

fn score(
    labels: &[String],
    gold: &[usize],
    predicted: &[usize],
    sample: usize,
) -> anyhow::Result<Score> {
    let full = classification_report(labels, gold, predicted)?;
    let k = sample.min(gold.len());
    let part = classification_report(labels, &gold[..k], &predicted[..k])?;
    Ok(Score {
        accuracy: full.accuracy,
        macro_f1: full.macro_f1,
        sample_f1: part.macro_f1,
    })
}

fn row(model: &str, n: &str, s: &Score, secs: Option<f64>) {
    println!(
        "| {model} | {n} | {:.3} | {:.3} | {:.3} | {} |",
        s.accuracy,
        s.macro_f1,
        s.sample_f1,
        secs.map_or("-".into(), |s| format!("{s:.1}"))
    );
}

pub fn curve(
    ctx: &mut Ctx,
    set: Set,
    ds: &TextDataset,
    spec: &Spec,
) -> anyhow::Result<Vec<SpeedRow>> {
    let splits = ds.split();
    let pool = shuffled(&splits.train);
    let test = shuffled(&splits.test);
    let texts: Vec<&str> = test.iter().map(|(t, _)| t.as_str()).collect();
    let gold: Vec<usize> = test.iter().map(|(_, l)| *l).collect();
    let k = ctx.args.teacher_sample.min(test.len());
    let mut speed = Vec::new();
    println!(
        "## Learning curve: {} ({} examples; labels {:?} with {:?}; test split {}, train pool {})\n",
        set.name(),
        ds.examples.len(),
        ds.labels,
        ds.label_counts(),
        test.len(),
        pool.len()
    );
    println!(
        "Scores on the fixed test split; the last score column is macro-F1 on the teacher's \
         fixed sample (the first {k} test examples in a seeded shuffle). Students get n gold \
         examples, 80% to train on and 20% for early stopping.\n"
    );
    println!("| model | gold n | test accuracy | test macro-F1 | macro-F1 on teacher sample (n={k}) | train s |");
    println!("|---|---:|---:|---:|---:|---:|");

    let mut majority = vec![0usize; ds.labels.len()];
    pool.iter().for_each(|(_, l)| majority[*l] += 1);
    let majority = argmax(&majority.iter().map(|&c| c as f32).collect::<Vec<_>>());
    row(
        "majority class (of train)",
        "-",
        &score(&ds.labels, &gold, &vec![majority; gold.len()], k)?,
        None,
    );

    let teacher_chars = ctx.args.teacher_chars;
    if let Some(teacher) = ctx.teacher.as_mut() {
        let started = Instant::now();
        let mut predicted = Vec::with_capacity(k);
        for text in &texts[..k] {
            let short: String = text.chars().take(teacher_chars).collect();
            let p = teacher.classify(&short, spec.prompt_labels)?;
            let index = spec.prompt_labels.iter().position(|l| *l == p.label);
            predicted.push(index.ok_or_else(|| {
                anyhow::anyhow!("teacher answered {:?}, not an offered label", p.label)
            })?);
        }
        let secs = started.elapsed().as_secs_f64();
        let part = classification_report(&ds.labels, &gold[..k], &predicted)?;
        println!(
            "| teacher SmolLM2-135M Q4_1 zero-shot | 0 | - | - | {:.3} (accuracy {:.3}) | - |",
            part.macro_f1, part.accuracy
        );
        speed.push(SpeedRow {
            model: "teacher SmolLM2-135M (GGUF, in-process)".into(),
            set: set.name(),
            rate: k as f64 / secs,
            artifact_bytes: ctx.teacher_bytes,
            train_secs: None,
            note: format!(
                "zero-shot classify, {k} texts cut to {} chars",
                teacher_chars
            ),
        });
    }

    // Encoder embeddings of the test split and the training pool, computed once.
    let started = Instant::now();
    let test_vecs = ctx.encoder.embed(&texts, 32)?;
    let embed_secs = started.elapsed().as_secs_f64();
    let max_n = ctx
        .args
        .sizes
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .min(pool.len());
    let pool_texts: Vec<&str> = pool[..max_n].iter().map(|(t, _)| t.as_str()).collect();
    let pool_vecs = ctx.encoder.embed(&pool_texts, 32)?;

    let sim = SimilarityTeacher::new(
        Arc::clone(&ctx.encoder),
        SimilarityConfig::new(ds.labels.clone())
            .with_descriptions(spec.descriptions.iter().map(|d| d.to_string()).collect()),
    )?;
    let predicted: Vec<usize> = test_vecs
        .iter()
        .map(|v| sim.classify_embedding(v).index)
        .collect();
    row(
        "teacher MiniLM similarity zero-shot",
        "0",
        &score(&ds.labels, &gold, &predicted, k)?,
        None,
    );

    let cancel = Arc::new(AtomicBool::new(false));
    let mut sizes: Vec<usize> = ctx.args.sizes.iter().map(|&n| n.min(pool.len())).collect();
    sizes.dedup();
    for &n in &sizes {
        let (train_set, dev_set) = train_dev(&pool, n);
        let mut config = TinyConfig::new(ds.labels.clone());
        config.seed = 1;
        let tiny = TinyStudent::new(config, &gloss_ml::Device::Cpu)?;
        let (max_epochs, patience) = schedule(train_set.len(), 16);
        let tc = TrainConfig {
            max_epochs,
            batch_size: 16,
            learning_rate: 2e-3,
            patience,
            seed: 1,
            dev_metric: gloss_ml::train::DevMetric::MacroF1,
            ..TrainConfig::default()
        };
        let started = Instant::now();
        train(&tiny, &train_set, &dev_set, &tc, &cancel, |_| {})?;
        let train_secs = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let probs = tiny.predict(&texts, 64)?;
        let predict_secs = started.elapsed().as_secs_f64();
        let predicted: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
        row(
            "tiny student",
            &n.to_string(),
            &score(&ds.labels, &gold, &predicted, k)?,
            Some(train_secs),
        );
        if n == *sizes.last().unwrap_or(&0) {
            let dir = std::env::temp_dir().join(format!("gloss-bench-tiny-{}", std::process::id()));
            tiny.save(&dir)?;
            speed.push(SpeedRow {
                model: "tiny student (hash CNN)".into(),
                set: set.name(),
                rate: texts.len() as f64 / predict_secs,
                artifact_bytes: dir_bytes(&dir)?,
                train_secs: Some(train_secs),
                note: format!("{} test texts, batch 64; trained on {n}", texts.len()),
            });
            std::fs::remove_dir_all(&dir)?;
        }

        let (train_vecs, dev_vecs) = train_dev(
            &pool_vecs
                .iter()
                .cloned()
                .zip(pool.iter().map(|(_, l)| *l))
                .collect::<Vec<_>>(),
            n,
        );
        let mut config = HeadConfig::new(ds.labels.clone(), ctx.encoder.dim());
        config.hidden = 64;
        config.seed = 1;
        config.encoder = "all-MiniLM-L6-v2".into();
        let head = HeadStudent::new(config, &gloss_ml::Device::Cpu)?;
        let tc = TrainConfig {
            learning_rate: 5e-3,
            ..tc
        };
        let started = Instant::now();
        train(&head, &train_vecs, &dev_vecs, &tc, &cancel, |_| {})?;
        let train_secs = started.elapsed().as_secs_f64();
        let refs: Vec<&Vec<f32>> = test_vecs.iter().collect();
        let started = Instant::now();
        let predicted: Vec<usize> = predict_labels(&head, &refs, 256)?
            .into_iter()
            .map(|p| p[0])
            .collect();
        let head_secs = started.elapsed().as_secs_f64();
        row(
            "encoder+head student",
            &n.to_string(),
            &score(&ds.labels, &gold, &predicted, k)?,
            Some(train_secs),
        );
        if n == *sizes.last().unwrap_or(&0) {
            let dir = std::env::temp_dir().join(format!("gloss-bench-head-{}", std::process::id()));
            head.save(&dir)?;
            let head_bytes = dir_bytes(&dir)?;
            speed.push(SpeedRow {
                model: "encoder+head student (MiniLM + MLP)".into(),
                set: set.name(),
                rate: texts.len() as f64 / (embed_secs + head_secs),
                artifact_bytes: head_bytes + ctx.encoder_bytes,
                train_secs: Some(train_secs),
                note: format!(
                    "head {} KiB + encoder; training time excludes embedding the {n} texts once",
                    head_bytes / 1024
                ),
            });
            std::fs::remove_dir_all(&dir)?;
        }
    }
    println!();
    Ok(speed)
}
