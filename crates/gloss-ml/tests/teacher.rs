//! Teacher tests against the real SmolLM2-135M-Instruct GGUF (kept short: few new tokens).

mod common;

use std::sync::{Mutex, MutexGuard, OnceLock};

use gloss_ml::{Device, GenerationOptions, Teacher};

fn teacher() -> MutexGuard<'static, Teacher> {
    static TEACHER: OnceLock<Mutex<Teacher>> = OnceLock::new();
    TEACHER
        .get_or_init(|| {
            let teacher = Teacher::load(&common::smollm2_gguf(), &Device::Cpu)
                .expect("load teacher")
                .with_options(GenerationOptions {
                    classify_max_new_tokens: 8,
                    extract_max_new_tokens: 20,
                });
            Mutex::new(teacher)
        })
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const SENTIMENT: &[&str] = &["positive", "negative"];

#[test]
fn classifies_obvious_movie_reviews_into_the_label_set() {
    let mut t = teacher();
    let good = t
        .classify(
            "An absolute masterpiece: wonderful acting, a moving story, I loved every minute.",
            SENTIMENT,
        )
        .unwrap();
    let bad = t
        .classify(
            "A terrible, boring film. The worst two hours I have ever wasted; I hated it.",
            SENTIMENT,
        )
        .unwrap();
    for p in [&good, &bad] {
        assert!(SENTIMENT.contains(&p.label.as_str()), "{p:?}");
        assert!(p.confidence > 0.0 && p.confidence <= 1.0, "{p:?}");
    }
    eprintln!("positive review -> {good:?}\nnegative review -> {bad:?}");
    assert_eq!(good.label, "positive", "{good:?}");
    assert_eq!(bad.label, "negative", "{bad:?}");
}

#[test]
fn generation_is_greedy_bounded_and_deterministic() {
    let mut t = teacher();
    let prompt = t
        .chat_prompt(
            Some("You are a helpful assistant."),
            "Count from one to ten.",
        )
        .unwrap();
    let a = t.generate(&prompt, 12).unwrap();
    let b = t.generate(&prompt, 12).unwrap();
    assert_eq!(a, b);
    assert!(a.tokens.len() <= 12 && !a.tokens.is_empty());
    assert_eq!(a.tokens.len(), a.token_probs.len());
    assert!(a.token_probs.iter().all(|p| *p > 0.0 && *p <= 1.0));
    assert!(!a.text.contains("<|im_end|>"));
}

#[test]
fn generation_stops_at_im_end() {
    let mut t = teacher();
    let prompt = t.chat_prompt(None, "Say yes.").unwrap();
    let g = t.generate(&prompt, 20).unwrap();
    assert!(g.stopped, "{g:?}");
}

#[test]
fn extracted_entities_are_in_bounds_and_labelled() {
    let mut t = teacher();
    let text = "Marie Curie worked in Paris.";
    let labels = ["PERSON", "LOCATION"];
    let entities = t.extract_entities(text, &labels).unwrap();
    let len = text.chars().count();
    eprintln!("entities: {entities:?}");
    for e in &entities {
        assert!(e.start < e.end && e.end <= len, "{e:?}");
        assert!(labels.contains(&e.label.as_str()), "{e:?}");
        assert!(e.confidence > 0.0 && e.confidence <= 1.0, "{e:?}");
    }
}

#[test]
fn labels_are_validated() {
    let mut t = teacher();
    assert!(t.classify("text", &[]).is_err());
    assert!(t.classify("text", &["Yes", "yes"]).is_err());
}
