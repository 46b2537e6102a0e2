//! The tiny student on real data: it learns sentence polarity well above the majority baseline,
//! survives a save/load round trip bit-for-bit, and trains reproducibly from a seed.
//!
//! Data comes from scripts/fetch-test-data.sh; a missing corpus fails the test with a pointer
//! to the script.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use gloss_ml::data::{self, Splits};
use gloss_ml::metrics::classification_report;
use gloss_ml::student::tiny::FeatureRows;
use gloss_ml::train::{predict_labels, StopReason};
use gloss_ml::{train, Device, EpochReport, TinyConfig, TinyStudent, TrainConfig};

fn polarity() -> (Vec<String>, Splits<(String, usize)>) {
    let ds = data::load_polarity(&common::require_data("polarity/sentences.csv")).unwrap();
    assert_eq!(ds.examples.len(), 4000);
    assert_eq!(ds.label_counts(), [2000, 2000]);
    (ds.labels.clone(), ds.split())
}

fn small_config(labels: Vec<String>, seed: u64) -> TinyConfig {
    let mut config = TinyConfig::new(labels);
    config.seed = seed;
    config
}

fn train_config(seed: u64, max_epochs: usize) -> TrainConfig {
    TrainConfig {
        max_epochs,
        batch_size: 32,
        learning_rate: 2e-3,
        patience: 2,
        seed,
        ..TrainConfig::default()
    }
}

fn majority_accuracy(gold: &[usize], n_labels: usize) -> f64 {
    let mut counts = vec![0usize; n_labels];
    gold.iter().for_each(|&g| counts[g] += 1);
    *counts.iter().max().unwrap() as f64 / gold.len() as f64
}

#[test]
fn tiny_student_beats_majority_on_polarity_and_round_trips() {
    let (labels, splits) = polarity();
    let student = TinyStudent::new(small_config(labels.clone(), 7), &Device::Cpu).unwrap();
    let mut reports = Vec::new();
    let started = std::time::Instant::now();
    let outcome = train(
        &student,
        &splits.train,
        &splits.dev,
        &train_config(7, 6),
        &Arc::new(AtomicBool::new(false)),
        |r: EpochReport| reports.push(r),
    )
    .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(reports.len(), outcome.epochs_run);
    assert!(outcome.best_epoch >= 1);

    let texts: Vec<&String> = splits.test.iter().map(|(t, _)| t).collect();
    let gold: Vec<usize> = splits.test.iter().map(|(_, l)| *l).collect();
    let predicted: Vec<usize> = predict_labels(&student, &texts, 128)
        .unwrap()
        .into_iter()
        .map(|p| p[0])
        .collect();
    let report = classification_report(&labels, &gold, &predicted).unwrap();
    let baseline = majority_accuracy(&gold, labels.len());
    eprintln!(
        "polarity: train {} dev {} test {}; epochs {:?}; best epoch {} (dev {:.3}); \
         test accuracy {:.3} macro-F1 {:.3} vs majority {:.3}; training took {:.1}s",
        splits.train.len(),
        splits.dev.len(),
        splits.test.len(),
        reports,
        outcome.best_epoch,
        outcome.best_dev_score,
        report.accuracy,
        report.macro_f1,
        baseline,
        elapsed.as_secs_f64()
    );
    assert!(
        report.accuracy >= baseline + 0.12,
        "test accuracy {:.3} is not clearly above the majority baseline {baseline:.3}",
        report.accuracy
    );

    // Save, load, and get bit-identical scores.
    let dir = std::env::temp_dir().join(format!("gloss-tiny-{}", std::process::id()));
    student.save(&dir).unwrap();
    let size = std::fs::metadata(dir.join("model.safetensors"))
        .unwrap()
        .len();
    assert!(size <= 10 << 20, "artifact is {size} bytes, over 10 MiB");
    let loaded = TinyStudent::load(&dir, &Device::Cpu).unwrap();
    let sample: Vec<&str> = splits
        .test
        .iter()
        .take(200)
        .map(|(t, _)| t.as_str())
        .collect();
    let before = student.predict(&sample, 64).unwrap();
    let after = loaded.predict(&sample, 64).unwrap();
    assert_eq!(before, after, "scores changed across save/load");
    assert_eq!(loaded.config(), student.config());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn training_is_reproducible_with_the_same_seed() {
    let (labels, splits) = polarity();
    // A smaller model and a slice of the data keep this test quick; the point is determinism.
    let run = |seed: u64| {
        let mut config = small_config(labels.clone(), seed);
        config.rows = FeatureRows {
            norm: 4096,
            prefix: 1024,
            suffix: 1024,
            shape: 256,
        };
        config.embed_dim = 32;
        config.width = 64;
        let student = TinyStudent::new(config, &Device::Cpu).unwrap();
        let mut scores = Vec::new();
        train(
            &student,
            &splits.train[..1200],
            &splits.dev,
            &train_config(seed, 2),
            &Arc::new(AtomicBool::new(false)),
            |r| scores.push((r.train_loss, r.dev_score)),
        )
        .unwrap();
        let sample: Vec<&str> = splits
            .test
            .iter()
            .take(50)
            .map(|(t, _)| t.as_str())
            .collect();
        (scores, student.predict(&sample, 16).unwrap())
    };
    let first = run(3);
    assert_eq!(first, run(3), "same seed, same data, different result");
    assert_ne!(
        first.1,
        run(4).1,
        "a different seed should give different weights"
    );
}

#[test]
fn cancelling_stops_training_and_keeps_a_usable_model() {
    let (labels, splits) = polarity();
    let student = TinyStudent::new(small_config(labels, 1), &Device::Cpu).unwrap();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    let outcome = train(
        &student,
        &splits.train,
        &splits.dev,
        &train_config(1, 50),
        &cancel,
        // Cancel after the first epoch: the flag is polled between batches.
        move |_| flag.store(true, Ordering::Relaxed),
    )
    .unwrap();
    assert_eq!(outcome.stop, StopReason::Cancelled);
    assert_eq!((outcome.epochs_run, outcome.best_epoch), (1, 1));
    assert_eq!(student.predict(&["a fine film"], 1).unwrap()[0].len(), 2);
}

#[test]
fn spam_and_wnut_corpora_load() {
    let spam = data::load_spam_assassin(&common::require_data("spam-assassin")).unwrap();
    assert_eq!(spam.labels, ["ham", "spam"]);
    assert_eq!(spam.label_counts(), [4150, 1896]);
    let ner = data::load_conll(&common::require_data("wnut16/ner.txt")).unwrap();
    assert!(ner.len() > 2000, "{} sentences", ner.len());
    assert!(ner.iter().all(|s| s.tokens.len() == s.tags.len()));
    let entities: usize = ner
        .iter()
        .map(|s| gloss_ml::metrics::spans_from_bio(&s.tags).len())
        .sum();
    assert!(entities > 1000, "{entities} entities");
}
