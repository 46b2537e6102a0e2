//! The prompts every LLM teacher sends, in-process or remote, so that their answers parse the
//! same way (with [`parse_label`](super::parse_label) and
//! [`entities_from_answer`](super::entities_from_answer)).

// Wording tuned on SmolLM2-135M-Instruct: tiny models follow short, concrete prompts best.
/// System turn of a classification prompt.
pub const CLASSIFY_SYSTEM: &str = "Reply with exactly one label from the list and nothing else.";

/// The user turn of a classification prompt: `{text}` is the example, `{labels}` the labels
/// as `a, b or c`. Jobs may replace it with their own template using the same two fields.
pub const CLASSIFY_TEMPLATE: &str =
    "Text: {text}\n\nWhich label fits this text: {labels}? Answer with the label only.";

/// User turn asking which of `labels` fits `text`.
pub fn classify_user(text: &str, labels: &[&str]) -> String {
    render_classify(CLASSIFY_TEMPLATE, text, labels)
}

/// `template` with `{labels}` replaced by the labels (`a, b or c`) and `{text}` by `text`. The
/// labels go in first, so a text that itself contains `{labels}` is left as written.
pub fn render_classify(template: &str, text: &str, labels: &[&str]) -> String {
    template
        .replace("{labels}", &or_list(labels))
        .replace("{text}", text)
}

/// Checks a prompt template: it must place the text.
pub fn check_template(template: &str) -> Result<(), String> {
    if template.contains("{text}") {
        Ok(())
    } else {
        Err(format!(
            "prompt template {template:?} has no {{text}} field for the example"
        ))
    }
}

/// The user turn of an extraction prompt (no system turn by default): `{text}` is the example,
/// `{labels}` the labels as `a, b, c` and `{first_label}` the first one, shown in the example
/// answer. Jobs may replace it with their own template using the same fields.
pub const EXTRACT_TEMPLATE: &str =
    "Text: {text}\n\nList the entities in this text as a JSON list like \
     [{\"text\": \"...\", \"label\": \"{first_label}\"}]. Labels: {labels}.";

/// User turn asking for the entities of `labels` in `text` as a JSON list (no system turn).
pub fn extract_user(text: &str, labels: &[&str]) -> String {
    render_extract(EXTRACT_TEMPLATE, text, labels)
}

/// `template` with `{first_label}`, `{labels}` (`a, b, c`) and then `{text}` filled in.
pub fn render_extract(template: &str, text: &str, labels: &[&str]) -> String {
    template
        .replace("{first_label}", labels.first().copied().unwrap_or("LABEL"))
        .replace("{labels}", &labels.join(", "))
        .replace("{text}", text)
}

/// System turn of a yes/no question about one label (binary tasks, and each label of a
/// multi-choice task).
pub const DECIDE_SYSTEM: &str = "Reply with yes or no and nothing else.";

/// The user turn of a yes/no question: `{text}` is the example and `{label}` the label asked
/// about. Jobs may replace it with their own template using the same two fields.
pub const DECIDE_TEMPLATE: &str =
    "Text: {text}\n\nDoes the label \"{label}\" fit this text? Answer yes or no.";

/// The two answers of a yes/no question, in the order their probabilities are reported.
pub const DECIDE_ANSWERS: [&str; 2] = ["yes", "no"];

/// `template` with `{label}` and then `{text}` filled in.
pub fn render_decide(template: &str, text: &str, label: &str) -> String {
    template.replace("{label}", label).replace("{text}", text)
}

/// Checks a yes/no template: it must place the text and the label asked about.
pub fn check_decide_template(template: &str) -> Result<(), String> {
    check_template(template)?;
    if template.contains("{label}") {
        Ok(())
    } else {
        Err(format!(
            "prompt template {template:?} has no {{label}} field for the label asked about"
        ))
    }
}

/// `a, b or c`: how the labels are offered in prompts.
pub(crate) fn or_list(labels: &[&str]) -> String {
    match labels {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_template_renders_the_classification_prompt() {
        assert_eq!(
            classify_user("Great film", &["POS", "NEG"]),
            "Text: Great film\n\nWhich label fits this text: POS or NEG? Answer with the label only."
        );
        assert_eq!(
            render_classify("{labels} | {text}", "a {labels} text", &["x", "y", "z"]),
            "x, y or z | a {labels} text"
        );
        assert!(check_template("Label: {labels}").is_err());
    }

    #[test]
    fn the_decision_template_asks_about_one_label() {
        assert_eq!(
            render_decide(DECIDE_TEMPLATE, "Buy now {label}", "spam"),
            "Text: Buy now {label}\n\nDoes the label \"spam\" fit this text? Answer yes or no."
        );
        assert!(check_decide_template(DECIDE_TEMPLATE).is_ok());
        assert!(check_decide_template("Text: {text}. Yes or no?").is_err());
        assert!(check_decide_template("Is it {label}?").is_err());
    }

    #[test]
    fn the_extraction_template_renders_the_extraction_prompt() {
        assert_eq!(
            extract_user("Bob in Paris", &["PER", "LOC"]),
            "Text: Bob in Paris\n\nList the entities in this text as a JSON list like \
             [{\"text\": \"...\", \"label\": \"PER\"}]. Labels: PER, LOC."
        );
    }
}
