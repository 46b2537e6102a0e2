//! The embedding-similarity zero-shot teacher on real polarity sentences with MiniLM: it beats
//! chance with plain descriptions and its scores are probability distributions.

mod common;

use std::sync::Arc;

use gloss_ml::{data, Device, Encoder, SimilarityConfig, SimilarityTeacher};

/// 100 negative and 100 positive test-split sentences.
fn sample() -> (Vec<String>, Vec<(String, usize)>) {
    let ds = data::load_polarity(&common::require_data("polarity/sentences.csv")).unwrap();
    let test = ds.split().test;
    let picked = (0..2)
        .flat_map(|label| test.iter().filter(move |(_, l)| *l == label).take(100))
        .cloned()
        .collect();
    (ds.labels, picked)
}

fn accuracy(teacher: &SimilarityTeacher, sample: &[(String, usize)]) -> f64 {
    let texts: Vec<&str> = sample.iter().map(|(t, _)| t.as_str()).collect();
    let predictions = teacher.classify_many(&texts).unwrap();
    for p in &predictions {
        let sum: f32 = p.probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "{p:?}");
        assert!(
            p.probabilities.iter().all(|&x| (0.0..=1.0).contains(&x)),
            "{p:?}"
        );
        assert_eq!(p.confidence, p.probabilities[p.index]);
        assert_eq!(teacher.labels()[p.index], p.label);
        assert!(
            p.cosines.iter().all(|c| (-1.001..=1.001).contains(c)),
            "{p:?}"
        );
    }
    let correct = predictions
        .iter()
        .zip(sample)
        .filter(|(p, (_, gold))| p.index == *gold)
        .count();
    correct as f64 / sample.len() as f64
}

#[test]
fn zero_shot_similarity_beats_chance_on_polarity() {
    let (labels, sample) = sample();
    let encoder = Arc::new(Encoder::load(&common::minilm_dir(), &Device::Cpu).unwrap());
    let started = std::time::Instant::now();
    let described = SimilarityTeacher::new(
        Arc::clone(&encoder),
        SimilarityConfig::new(labels.clone()).with_descriptions(vec![
            "a negative, unfavourable movie review: bad, boring, disappointing".into(),
            "a positive, favourable movie review: good, moving, enjoyable".into(),
        ]),
    )
    .unwrap();
    let with_descriptions = accuracy(&described, &sample);
    let elapsed = started.elapsed();
    let bare = SimilarityTeacher::new(Arc::clone(&encoder), SimilarityConfig::new(labels)).unwrap();
    let with_names = accuracy(&bare, &sample);
    eprintln!(
        "similarity teacher on 200 balanced polarity sentences: accuracy {with_descriptions:.3} \
         with descriptions ({:.1}s), {with_names:.3} with bare label names; chance 0.500",
        elapsed.as_secs_f64()
    );
    assert!(
        with_descriptions >= 0.58,
        "accuracy {with_descriptions:.3} with descriptions is not clearly above chance"
    );

    // One text alone scores exactly as it does inside a batch.
    let single = described.classify(&sample[0].0).unwrap();
    let batch = described
        .classify_many(&[sample[0].0.as_str(), sample[1].0.as_str()])
        .unwrap();
    assert_eq!(single, batch[0]);
    assert_eq!(single.prediction().label, single.label);
}
