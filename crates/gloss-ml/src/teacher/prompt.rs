//! The prompts every LLM teacher sends, in-process or remote, so that their answers parse the
//! same way (with [`parse_label`](super::parse_label) and
//! [`entities_from_answer`](super::entities_from_answer)).

// Wording tuned on SmolLM2-135M-Instruct: tiny models follow short, concrete prompts best.
/// System turn of a classification prompt.
pub const CLASSIFY_SYSTEM: &str = "Reply with exactly one label from the list and nothing else.";

/// User turn asking which of `labels` fits `text`.
pub fn classify_user(text: &str, labels: &[&str]) -> String {
    format!(
        "Text: {text}\n\nWhich label fits this text: {}? Answer with the label only.",
        or_list(labels)
    )
}

/// User turn asking for the entities of `labels` in `text` as a JSON list (no system turn).
pub fn extract_user(text: &str, labels: &[&str]) -> String {
    format!(
        "Text: {text}\n\nList the entities in this text as a JSON list like \
         [{{\"text\": \"...\", \"label\": \"{}\"}}]. Labels: {}.",
        labels.first().copied().unwrap_or("LABEL"),
        labels.join(", ")
    )
}

/// `a, b or c`: how the labels are offered in prompts.
pub(crate) fn or_list(labels: &[&str]) -> String {
    match labels {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
