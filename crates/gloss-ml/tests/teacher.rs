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

#[test]
fn a_batch_answers_as_each_prompt_does_alone() {
    let mut t = teacher();
    let users = [
        "Text: I loved it, a wonderful film.\n\nWhich label fits this text: positive or negative? Answer with the label only.",
        "Text: Dull.\n\nWhich label fits this text: positive or negative? Answer with the label only.",
        "Text: The plot made no sense and the acting was wooden from start to finish.\n\nWhich label fits this text: positive or negative? Answer with the label only.",
    ];
    let system = "Reply with exactly one label from the list and nothing else.";
    let batch = t.classify_batch(system, &users, SENTIMENT).unwrap();
    assert_eq!(batch.len(), 3);
    for (user, together) in users.iter().zip(&batch) {
        let alone = t.classify_prompted(system, user, SENTIMENT).unwrap();
        assert_eq!(together.text, alone.text);
        assert_eq!(together.label, alone.label);
        assert_eq!(together.tokens, alone.tokens);
        for (a, b) in together.probabilities.iter().zip(&alone.probabilities) {
            assert!((a - b).abs() < 1e-3, "{together:?} {alone:?}");
        }
    }
    // Labels that share their first token are scored by looking ahead, in the batch too.
    let close = ["not spam", "not sure"];
    let batch = t.classify_batch(system, &users[..2], &close).unwrap();
    let alone = t.classify_prompted(system, users[1], &close).unwrap();
    assert!((batch[1].probabilities[0] - alone.probabilities[0]).abs() < 1e-3);

    let text = "Marie Curie worked in Paris.";
    let user = gloss_ml::teacher::prompt::extract_user(text, &["PERSON", "LOC"]);
    let items = [(user.as_str(), text), ("Say hello.", "hello")];
    let batch = t.extract_batch(None, &items, &["PERSON", "LOC"]).unwrap();
    let alone = t
        .extract_prompted(None, &user, text, &["PERSON", "LOC"])
        .unwrap();
    assert_eq!(batch[0].text, alone.text);
    assert_eq!(batch[0].entities.len(), alone.entities.len());
}
