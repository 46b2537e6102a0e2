//! Learning curve on WNUT-16 entities: the GGUF teacher's zero-shot extraction and a gazetteer
//! against the tiny tagger and the encoder+head tagger, exact-match span P/R/F1.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use gloss_ml::data::EntityDataset;
use gloss_ml::metrics::{span_report, Span, SpanReport};
use gloss_ml::student::tiny::FeatureRows;
use gloss_ml::tagging::{entity_spans, Gazetteer};
use gloss_ml::{
    fit, Device, Entity, HeadTagger, HeadTaggerConfig, TinyConfig, TinyTagger, TrainConfig,
};

use crate::{dir_bytes, schedule, shuffled, train_dev, Ctx, SpeedRow};

/// How the LLM teacher is asked for each WNUT label: plain words a small model knows.
const PROMPT_LABELS: &[(&str, &str)] = &[
    ("company", "company"),
    ("facility", "facility"),
    ("geo-loc", "location"),
    ("movie", "movie"),
    ("musicartist", "music artist"),
    ("other", "other"),
    ("person", "person"),
    ("product", "product"),
    ("sportsteam", "sports team"),
    ("tvshow", "tv show"),
];

fn report(gold: &[Vec<Span>], predicted: &[Vec<Entity>]) -> anyhow::Result<SpanReport> {
    let predicted: Vec<Vec<Span>> = predicted.iter().map(|p| entity_spans(p)).collect();
    Ok(span_report(gold, &predicted)?)
}

/// Micro scores on the full test split and F1 on the teacher's sample.
fn row(
    model: &str,
    n: &str,
    gold: &[Vec<Span>],
    predicted: &[Vec<Entity>],
    k: usize,
    secs: Option<f64>,
) -> anyhow::Result<SpanReport> {
    let full = report(gold, predicted)?;
    let part = report(&gold[..k], &predicted[..k])?;
    println!(
        "| {model} | {n} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
        full.micro.precision,
        full.micro.recall,
        full.micro.f1,
        part.micro.f1,
        secs.map_or("-".into(), |s| format!("{s:.1}"))
    );
    Ok(full)
}

/// Per-label scores of several models; `gold` counts the full test split's spans per label
/// (a teacher column scored on its sample has fewer).
fn per_label_table(gold: &[Vec<Span>], reports: &[(String, SpanReport)]) {
    if reports.is_empty() {
        return;
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for span in gold.iter().flatten() {
        *counts.entry(span.label.as_str()).or_default() += 1;
    }
    println!("Per label, exact-match P / R / F1; gold = spans in the full test split:\n");
    let names: Vec<&str> = reports.iter().map(|(n, _)| n.as_str()).collect();
    println!("| label | gold | {} |", names.join(" | "));
    println!("|---|---:|{}", "---|".repeat(names.len()));
    let mut labels: Vec<&str> = counts.keys().copied().collect();
    labels.extend(
        reports
            .iter()
            .flat_map(|(_, r)| r.per_label.keys().map(String::as_str)),
    );
    labels.sort_unstable();
    labels.dedup();
    for label in labels {
        let cells: Vec<String> = reports
            .iter()
            .map(|(_, r)| {
                r.per_label.get(label).map_or("-".into(), |s| {
                    format!("{:.2} / {:.2} / {:.2}", s.precision, s.recall, s.f1)
                })
            })
            .collect();
        println!(
            "| {label} | {} | {} |",
            counts.get(label).copied().unwrap_or(0),
            cells.join(" | ")
        );
    }
    println!();
}

pub fn curve(ctx: &mut Ctx, ds: &EntityDataset) -> anyhow::Result<Vec<SpeedRow>> {
    let splits = ds.split();
    let pool = shuffled(&splits.train);
    let test = shuffled(&splits.test);
    let texts: Vec<&str> = test.iter().map(|(t, _)| t.as_str()).collect();
    let gold: Vec<Vec<Span>> = test.iter().map(|(_, s)| s.clone()).collect();
    let k = ctx.args.teacher_sample.min(test.len());
    let mut speed = Vec::new();
    let mut per_label = Vec::new();
    println!(
        "## Learning curve: wnut ({} tweets, {} entities over {} labels; test split {} tweets \
         with {} entities, train pool {})\n",
        ds.examples.len(),
        ds.label_counts().iter().sum::<usize>(),
        ds.labels.len(),
        test.len(),
        gold.iter().map(Vec::len).sum::<usize>(),
        pool.len()
    );
    println!(
        "Exact-match span scores (micro) on the fixed test split; the F1 column before the last \
         is on the teacher's fixed sample (the first {k} test tweets in a seeded shuffle). \
         Students get n gold tweets, 80% to train on and 20% for early stopping.\n"
    );
    println!(
        "| model | gold n | test P | test R | test F1 | F1 on teacher sample (n={k}) | train s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");

    if let Some(teacher) = ctx.teacher.as_mut() {
        let prompt: Vec<&str> = PROMPT_LABELS.iter().map(|(_, p)| *p).collect();
        let started = Instant::now();
        let mut predicted = Vec::with_capacity(test.len());
        for text in &texts[..k] {
            let mut found = teacher.extract_entities(text, &prompt)?;
            for e in &mut found {
                let (name, _) = PROMPT_LABELS
                    .iter()
                    .find(|(_, p)| *p == e.label)
                    .ok_or_else(|| anyhow::anyhow!("teacher label {:?} not offered", e.label))?;
                e.label = (*name).to_string();
            }
            predicted.push(found);
        }
        let secs = started.elapsed().as_secs_f64();
        let part = report(&gold[..k], &predicted)?;
        println!(
            "| teacher SmolLM2-135M Q4_1 zero-shot | 0 | - | - | - | {:.3} (P {:.3} R {:.3}) | - |",
            part.micro.f1, part.micro.precision, part.micro.recall
        );
        per_label.push((format!("teacher (sample n={k})"), part));
        speed.push(SpeedRow {
            model: "teacher SmolLM2-135M (GGUF, in-process)".into(),
            set: "wnut",
            rate: k as f64 / secs,
            artifact_bytes: ctx.teacher_bytes,
            train_secs: None,
            note: format!("zero-shot entity extraction, {k} tweets"),
        });
    }

    let started = Instant::now();
    let test_states = ctx.encoder.token_states(&texts, 32)?;
    let encode_secs = started.elapsed().as_secs_f64();
    let max_n = ctx
        .args
        .sizes
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .min(pool.len());
    let pool_texts: Vec<&str> = pool[..max_n].iter().map(|(t, _)| t.as_str()).collect();
    let pool_states: Vec<_> = ctx
        .encoder
        .token_states(&pool_texts, 32)?
        .into_iter()
        .zip(pool.iter().map(|(_, s)| s.clone()))
        .collect();

    let cancel = Arc::new(AtomicBool::new(false));
    let mut sizes: Vec<usize> = ctx.args.sizes.iter().map(|&n| n.min(pool.len())).collect();
    sizes.dedup();
    let largest = *sizes.last().unwrap_or(&0);
    for &n in &sizes {
        let (train_set, dev_set) = train_dev(&pool, n);
        let gazetteer = Gazetteer::from_examples(&pool[..n]);
        let predicted: Vec<Vec<Entity>> = texts.iter().map(|t| gazetteer.tag(t)).collect();
        let r = row(
            "gazetteer of the gold entities",
            &n.to_string(),
            &gold,
            &predicted,
            k,
            None,
        )?;
        if n == largest {
            per_label.push((format!("gazetteer n={n}"), r));
        }

        let mut config = TinyConfig::entities(ds.labels.clone());
        config.seed = 5;
        config.rows = FeatureRows {
            norm: 8192,
            prefix: 2048,
            suffix: 2048,
            shape: 512,
        };
        let tiny = TinyTagger::new(config, &Device::Cpu)?;
        let (max_epochs, patience) = schedule(train_set.len(), 16);
        let tc = TrainConfig {
            max_epochs,
            batch_size: 16,
            learning_rate: 3e-3,
            patience,
            seed: 5,
            ..TrainConfig::default()
        };
        let started = Instant::now();
        fit(&tiny, &train_set, &dev_set, &tc, &cancel, |_| {})?;
        let train_secs = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let predicted = tiny.predict(&texts, 64)?;
        let predict_secs = started.elapsed().as_secs_f64();
        let r = row(
            "tiny tagger",
            &n.to_string(),
            &gold,
            &predicted,
            k,
            Some(train_secs),
        )?;
        if n == largest {
            per_label.push((format!("tiny tagger n={n}"), r));
            let dir = std::env::temp_dir().join(format!("gloss-bench-tt-{}", std::process::id()));
            tiny.save(&dir)?;
            speed.push(SpeedRow {
                model: "tiny tagger (hash CNN)".into(),
                set: "wnut",
                rate: texts.len() as f64 / predict_secs,
                artifact_bytes: dir_bytes(&dir)?,
                train_secs: Some(train_secs),
                note: format!("{} test tweets, batch 64; trained on {n}", texts.len()),
            });
            std::fs::remove_dir_all(&dir)?;
        }

        let (train_states, dev_states) = train_dev(&pool_states, n);
        let mut config = HeadTaggerConfig::new(ds.labels.clone(), ctx.encoder.dim())?;
        config.hidden = 128;
        config.seed = 3;
        config.encoder = "all-MiniLM-L6-v2".into();
        let head = HeadTagger::new(config, &Device::Cpu)?;
        let tc = TrainConfig {
            learning_rate: 2e-3,
            seed: 3,
            ..tc
        };
        let started = Instant::now();
        fit(&head, &train_states, &dev_states, &tc, &cancel, |_| {})?;
        let train_secs = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let predicted = head.predict(&test_states)?;
        let head_secs = started.elapsed().as_secs_f64();
        let r = row(
            "encoder+head tagger",
            &n.to_string(),
            &gold,
            &predicted,
            k,
            Some(train_secs),
        )?;
        if n == largest {
            per_label.push((format!("encoder+head n={n}"), r));
            let dir = std::env::temp_dir().join(format!("gloss-bench-ht-{}", std::process::id()));
            head.save(&dir)?;
            let head_bytes = dir_bytes(&dir)?;
            speed.push(SpeedRow {
                model: "encoder+head tagger (MiniLM + MLP)".into(),
                set: "wnut",
                rate: texts.len() as f64 / (encode_secs + head_secs),
                artifact_bytes: head_bytes + ctx.encoder_bytes,
                train_secs: Some(train_secs),
                note: format!(
                    "head {} KiB + encoder; training time excludes encoding the {n} tweets once",
                    head_bytes / 1024
                ),
            });
            std::fs::remove_dir_all(&dir)?;
        }
    }
    println!();
    per_label_table(&gold, &per_label);
    Ok(speed)
}
