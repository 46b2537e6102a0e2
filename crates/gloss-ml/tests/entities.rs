//! The entity students on WNUT-16 tweets: the tiny tagger and the MiniLM word-piece head each
//! learn entities clearly better than a gazetteer of the training entities, decode only
//! well-formed spans that are real character ranges of the text, and survive save/load
//! bit-for-bit.
//!
//! Data comes from scripts/fetch-test-data.sh, models from scripts/fetch-test-models.sh; a
//! missing file fails the test with a pointer to the script.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use gloss_ml::data::{self, EntityDataset, Splits};
use gloss_ml::metrics::{span_report, Span, SpanReport};
use gloss_ml::student::tiny::FeatureRows;
use gloss_ml::tagging::{entity_spans, Gazetteer};
use gloss_ml::{
    fit, Device, Encoder, Entity, HeadTagger, HeadTaggerConfig, TinyConfig, TinyTagger,
    TokenStates, TrainConfig,
};

type Example = (String, Vec<Span>);

fn wnut() -> (Vec<String>, Splits<Example>) {
    let sentences = data::load_conll(&common::require_data("wnut16/ner.txt")).unwrap();
    let ds = EntityDataset::from_tagged(&sentences).unwrap();
    assert_eq!(ds.labels.len(), 10, "{:?}", ds.labels);
    (ds.labels.clone(), ds.split())
}

fn report(gold: &[Example], predicted: &[Vec<Entity>]) -> SpanReport {
    let gold: Vec<Vec<Span>> = gold.iter().map(|(_, s)| s.clone()).collect();
    let predicted: Vec<Vec<Span>> = predicted.iter().map(|p| entity_spans(p)).collect();
    span_report(&gold, &predicted).unwrap()
}

fn print_report(name: &str, r: &SpanReport) {
    eprintln!(
        "{name}: micro P {:.3} R {:.3} F1 {:.3} ({} gold, {} predicted, {} correct)",
        r.micro.precision,
        r.micro.recall,
        r.micro.f1,
        r.micro.gold,
        r.micro.predicted,
        r.micro.correct
    );
    for (label, s) in &r.per_label {
        eprintln!(
            "  {label:<12} P {:.3} R {:.3} F1 {:.3} (gold {})",
            s.precision, s.recall, s.f1, s.gold
        );
    }
}

/// Every predicted entity is a non-empty character range of its text, sorted and disjoint.
fn assert_well_formed(texts: &[&str], predicted: &[Vec<Entity>], labels: &[String]) {
    for (text, entities) in texts.iter().zip(predicted) {
        let len = text.chars().count();
        for pair in entities.windows(2) {
            assert!(
                pair[0].end <= pair[1].start,
                "overlap in {text:?}: {pair:?}"
            );
        }
        for e in entities {
            assert!(e.start < e.end && e.end <= len, "{e:?} in {text:?}");
            assert!(labels.contains(&e.label), "{e:?}");
            assert!(e.confidence > 0.0 && e.confidence <= 1.0, "{e:?}");
            // Spans start and end on token boundaries of the space-joined text.
            let chars: Vec<char> = text.chars().collect();
            assert!(!chars[e.start].is_whitespace() && !chars[e.end - 1].is_whitespace());
        }
    }
}

fn gazetteer_f1(splits: &Splits<Example>) -> f64 {
    let g = Gazetteer::from_examples(&splits.train);
    let predicted: Vec<Vec<Entity>> = splits.test.iter().map(|(t, _)| g.tag(t)).collect();
    let r = report(&splits.test, &predicted);
    print_report("gazetteer baseline", &r);
    r.micro.f1
}

#[test]
fn tiny_tagger_beats_a_gazetteer_on_wnut16_and_round_trips() {
    let (labels, splits) = wnut();
    let baseline = gazetteer_f1(&splits);
    let mut config = TinyConfig::entities(labels.clone());
    config.seed = 5;
    config.rows = FeatureRows {
        norm: 8192,
        prefix: 2048,
        suffix: 2048,
        shape: 512,
    };
    let tagger = TinyTagger::new(config, &Device::Cpu).unwrap();
    let train_config = TrainConfig {
        max_epochs: 12,
        batch_size: 16,
        learning_rate: 3e-3,
        patience: 3,
        seed: 5,
        ..TrainConfig::default()
    };
    let started = std::time::Instant::now();
    let mut epochs = Vec::new();
    let outcome = fit(
        &tagger,
        &splits.train,
        &splits.dev,
        &train_config,
        &Arc::new(AtomicBool::new(false)),
        |r| epochs.push((r.train_loss, r.dev_score)),
    )
    .unwrap();
    eprintln!(
        "tiny tagger: train {} dev {} test {}; epochs {epochs:?}; best {} (dev F1 {:.3}); {:.1}s",
        splits.train.len(),
        splits.dev.len(),
        splits.test.len(),
        outcome.best_epoch,
        outcome.best_dev_score,
        started.elapsed().as_secs_f64()
    );

    let texts: Vec<&str> = splits.test.iter().map(|(t, _)| t.as_str()).collect();
    let predicted = tagger.predict(&texts, 64).unwrap();
    assert_well_formed(&texts, &predicted, &labels);
    let r = report(&splits.test, &predicted);
    print_report("tiny tagger", &r);
    assert!(
        r.micro.f1 >= baseline + 0.05,
        "tiny tagger test F1 {:.3} is not clearly above the gazetteer's {baseline:.3}",
        r.micro.f1
    );

    let dir = std::env::temp_dir().join(format!("gloss-tiny-tagger-{}", std::process::id()));
    tagger.save(&dir).unwrap();
    let loaded = TinyTagger::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(loaded.config(), tagger.config());
    assert_eq!(
        loaded.predict(&texts, 64).unwrap(),
        predicted,
        "entities or scores changed across save/load"
    );
    // A tagger artifact is not a classifier.
    assert!(gloss_ml::TinyStudent::load(&dir, &Device::Cpu).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// (train, dev, test) word-piece states of all of WNUT-16's splits, with gold spans.
fn encode(encoder: &Encoder, part: &[Example]) -> Vec<(TokenStates, Vec<Span>)> {
    let texts: Vec<&str> = part.iter().map(|(t, _)| t.as_str()).collect();
    let states = encoder.token_states(&texts, 32).unwrap();
    states
        .into_iter()
        .zip(part.iter().map(|(_, s)| s.clone()))
        .collect()
}

#[test]
fn head_tagger_beats_a_gazetteer_on_wnut16_and_round_trips() {
    let (labels, splits) = wnut();
    let baseline = gazetteer_f1(&splits);
    let encoder = Encoder::load(&common::minilm_dir(), &Device::Cpu).unwrap();
    let started = std::time::Instant::now();
    let train_set = encode(&encoder, &splits.train);
    let dev_set = encode(&encoder, &splits.dev);
    let test_set = encode(&encoder, &splits.test);
    eprintln!(
        "encoded {} tweets in {:.1}s",
        train_set.len() + dev_set.len() + test_set.len(),
        started.elapsed().as_secs_f64()
    );
    // Word pieces point at real characters of their text.
    for ((states, _), (text, _)) in test_set.iter().zip(&splits.test).take(50) {
        let chars: Vec<char> = text.chars().collect();
        assert_eq!(states.states.len(), states.offsets.len() * encoder.dim());
        for r in &states.offsets {
            assert!(r.start < r.end && r.end <= chars.len());
            assert!(
                chars[r.clone()].iter().all(|c| !c.is_whitespace()),
                "{text}"
            );
        }
    }

    let mut config = HeadTaggerConfig::new(labels.clone(), encoder.dim()).unwrap();
    config.hidden = 128;
    config.seed = 3;
    config.encoder = "all-MiniLM-L6-v2".into();
    let tagger = HeadTagger::new(config, &Device::Cpu).unwrap();
    let train_config = TrainConfig {
        max_epochs: 30,
        batch_size: 16,
        learning_rate: 2e-3,
        patience: 4,
        seed: 3,
        ..TrainConfig::default()
    };
    let started = std::time::Instant::now();
    let mut epochs = Vec::new();
    let outcome = fit(
        &tagger,
        &train_set,
        &dev_set,
        &train_config,
        &Arc::new(AtomicBool::new(false)),
        |r| epochs.push((r.train_loss, r.dev_score)),
    )
    .unwrap();
    eprintln!(
        "head tagger: epochs {epochs:?}; best {} (dev F1 {:.3}); {:.1}s",
        outcome.best_epoch,
        outcome.best_dev_score,
        started.elapsed().as_secs_f64()
    );

    let states: Vec<TokenStates> = test_set.iter().map(|(s, _)| s.clone()).collect();
    let predicted = tagger.predict(&states).unwrap();
    let texts: Vec<&str> = splits.test.iter().map(|(t, _)| t.as_str()).collect();
    assert_well_formed(&texts, &predicted, &labels);
    let r = report(&splits.test, &predicted);
    print_report("head tagger", &r);
    assert!(
        r.micro.f1 >= baseline + 0.05,
        "head tagger test F1 {:.3} is not clearly above the gazetteer's {baseline:.3}",
        r.micro.f1
    );

    let dir = std::env::temp_dir().join(format!("gloss-head-tagger-{}", std::process::id()));
    tagger.save(&dir).unwrap();
    let loaded = HeadTagger::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(loaded.config(), tagger.config());
    assert_eq!(
        loaded.predict(&states).unwrap(),
        predicted,
        "entities or scores changed across save/load"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
