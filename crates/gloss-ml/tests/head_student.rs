//! The encoder + head student on real data: MiniLM embeddings of polarity sentences, embedded
//! once and cached, train a head well above the majority baseline; the head round-trips through
//! save/load bit-for-bit and trains reproducibly from a seed.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use gloss_ml::data;
use gloss_ml::metrics::classification_report;
use gloss_ml::train::{predict_labels, Trainable};
use gloss_ml::{train, Device, Encoder, HeadConfig, HeadStudent, TrainConfig};

type Examples = Vec<(Vec<f32>, usize)>;

/// Labels and (train, dev, test) embeddings: 600/150/200 sentences of the hash split, balanced.
struct Cached {
    labels: Vec<String>,
    dim: usize,
    train: Examples,
    dev: Examples,
    test: Examples,
}

fn cached() -> &'static Cached {
    static CACHE: OnceLock<Cached> = OnceLock::new();
    CACHE.get_or_init(|| {
        let ds = data::load_polarity(&common::require_data("polarity/sentences.csv")).unwrap();
        let splits = ds.split();
        let encoder = Encoder::load(&common::minilm_dir(), &Device::Cpu).unwrap();
        let started = std::time::Instant::now();
        // The corpus file is sorted by label: take the first n/2 of each label, in split order.
        let embed = |part: &[(String, usize)], n: usize| -> Examples {
            let part: Vec<&(String, usize)> = (0..2)
                .flat_map(|label| part.iter().filter(move |(_, l)| *l == label).take(n / 2))
                .collect();
            let texts: Vec<&str> = part.iter().map(|(t, _)| t.as_str()).collect();
            let vectors = encoder.embed(&texts, 32).unwrap();
            vectors
                .into_iter()
                .zip(part.iter().map(|(_, l)| *l))
                .collect()
        };
        let cached = Cached {
            labels: ds.labels.clone(),
            dim: encoder.dim(),
            train: embed(&splits.train, 600),
            dev: embed(&splits.dev, 150),
            test: embed(&splits.test, 200),
        };
        eprintln!(
            "embedded 950 sentences in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        cached
    })
}

fn head(c: &Cached, hidden: usize, seed: u64) -> HeadStudent {
    let mut config = HeadConfig::new(c.labels.clone(), c.dim);
    config.hidden = hidden;
    config.seed = seed;
    config.encoder = "all-MiniLM-L6-v2".into();
    HeadStudent::new(config, &Device::Cpu).unwrap()
}

fn train_config(seed: u64) -> TrainConfig {
    TrainConfig {
        max_epochs: 30,
        batch_size: 32,
        learning_rate: 5e-3,
        patience: 5,
        seed,
        ..TrainConfig::default()
    }
}

fn fit(student: &HeadStudent, c: &Cached, seed: u64) -> Vec<(f64, f64)> {
    let mut reports = Vec::new();
    train(
        student,
        &c.train,
        &c.dev,
        &train_config(seed),
        &Arc::new(AtomicBool::new(false)),
        |r| reports.push((r.train_loss, r.dev_score)),
    )
    .unwrap();
    reports
}

fn test_accuracy(student: &HeadStudent, c: &Cached) -> (f64, f64) {
    let inputs: Vec<&Vec<f32>> = c.test.iter().map(|(x, _)| x).collect();
    let gold: Vec<usize> = c.test.iter().map(|(_, l)| *l).collect();
    let predicted: Vec<usize> = predict_labels(student, &inputs, 64)
        .unwrap()
        .into_iter()
        .map(|p| p[0])
        .collect();
    let report = classification_report(&c.labels, &gold, &predicted).unwrap();
    let mut counts = vec![0usize; c.labels.len()];
    gold.iter().for_each(|&g| counts[g] += 1);
    let majority = *counts.iter().max().unwrap() as f64 / gold.len() as f64;
    (report.accuracy, majority)
}

#[test]
fn head_student_beats_majority_on_polarity_and_round_trips() {
    let c = cached();
    for hidden in [0, 64] {
        let student = head(c, hidden, 11);
        let started = std::time::Instant::now();
        let reports = fit(&student, c, 11);
        let (accuracy, majority) = test_accuracy(&student, c);
        eprintln!(
            "head hidden={hidden}: {} epochs in {:.2}s, test accuracy {accuracy:.3} vs majority \
             {majority:.3}",
            reports.len(),
            started.elapsed().as_secs_f64()
        );
        assert!(
            accuracy >= majority + 0.15,
            "hidden={hidden}: test accuracy {accuracy:.3} is not clearly above the majority \
             baseline {majority:.3}"
        );

        let dir = std::env::temp_dir().join(format!("gloss-head-{}-{hidden}", std::process::id()));
        student.save(&dir).unwrap();
        let loaded = HeadStudent::load(&dir, &Device::Cpu).unwrap();
        let inputs: Vec<Vec<f32>> = c.test.iter().map(|(x, _)| x.clone()).collect();
        assert_eq!(
            student.predict(&inputs).unwrap(),
            loaded.predict(&inputs).unwrap(),
            "scores changed across save/load"
        );
        assert_eq!(loaded.config(), student.config());
        assert_eq!(loaded.num_labels(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn head_training_is_reproducible_with_the_same_seed() {
    let c = cached();
    let run = |seed: u64| {
        let student = head(c, 32, seed);
        let reports = fit(&student, c, seed);
        let inputs: Vec<Vec<f32>> = c.test.iter().take(50).map(|(x, _)| x.clone()).collect();
        (reports, student.predict(&inputs).unwrap())
    };
    let first = run(5);
    assert_eq!(first, run(5), "same seed, same data, different result");
    assert_ne!(
        first.1,
        run(6).1,
        "a different seed should give different weights"
    );
}
