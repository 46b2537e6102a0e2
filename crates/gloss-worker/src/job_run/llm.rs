//! An LLM teacher inside a job: its questions asked with progress and ETA in the job's log, and
//! the figures (abstentions, cache hits, speed, prompt) recorded with the job's result.

use anyhow::Result;
use serde_json::{json, Value};

use super::Context;
use crate::teachers::{LlmTeacher, Outcome};

/// Runs an LLM teacher over `texts`, logging progress with its rate and ETA every few seconds;
/// returns the outcomes and the figures recorded with the job's result.
pub(super) fn run_llm(
    ctx: &Context,
    name: &str,
    teacher: &LlmTeacher,
    texts: &[&str],
) -> Result<(Vec<Outcome>, Value)> {
    let questions: Vec<(&str, usize)> = texts.iter().map(|&t| (t, 0)).collect();
    ask_llm(ctx, name, teacher, &questions)
}

/// Runs an LLM teacher over (text, label asked about) questions, as [`run_llm`] does.
pub(super) fn ask_llm(
    ctx: &Context,
    name: &str,
    teacher: &LlmTeacher,
    texts: &[(&str, usize)],
) -> Result<(Vec<Outcome>, Value)> {
    let started = std::time::Instant::now();
    let last = std::sync::Mutex::new(started);
    let total = texts.len();
    let progress = |done: usize, cached: usize| {
        let Ok(mut last) = last.lock() else { return };
        if done < total && last.elapsed() < std::time::Duration::from_secs(2) {
            return;
        }
        *last = std::time::Instant::now();
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 {
            (total - done) as f64 / rate
        } else {
            0.0
        };
        ctx.report(
            done as f64 / total.max(1) as f64,
            Vec::new(),
            vec![format!(
                "{name}: {done}/{total} examples, {rate:.1}/s, ETA {eta:.0} s ({cached} from cache)"
            )],
        );
    };
    let run = teacher.ask_each(texts, &ctx.cancel, &progress)?;
    ctx.cancelled()?;
    let asked = (total - run.cached).max(1) as f64;
    let figures = json!({
        "abstained": run.abstained(),
        "malformed": run.malformed(),
        "cached": run.cached,
        "seconds": run.seconds,
        "examples_per_second": total as f64 / run.seconds.max(1e-9),
        "tokens_per_second": run.tokens as f64 / run.seconds.max(1e-9),
        "tokens_per_example": run.tokens as f64 / asked,
        "batch": teacher.batch(),
        "prompt": {
            "system": teacher.prompt().system,
            "template": teacher.prompt().template,
            "max_chars": teacher.prompt().max_chars,
        },
    });
    ctx.report(
        1.0,
        Vec::new(),
        vec![format!(
            "{name}: {total} examples in {:.1} s, {} abstained ({} malformed replies), {} from cache",
            run.seconds,
            run.abstained(),
            run.malformed(),
            run.cached
        )],
    );
    Ok((run.outcomes, figures))
}

/// An evaluate job's result: the model, the test split's size, every metric, and an LLM
/// teacher's figures.
pub(super) fn evaluation_result(
    name: &str,
    test_examples: usize,
    metrics: std::collections::HashMap<String, f64>,
    llm: Option<Value>,
) -> Value {
    let mut result = json!({"model": name, "test_examples": test_examples});
    for (k, v) in metrics {
        result[k] = json!(v);
    }
    if let Some(llm) = llm {
        result["teacher"] = llm;
    }
    result
}

/// Sums the figures of the LLM runs over a predict job's batches.
pub(super) fn llm_totals(runs: &[Value], examples: u64, abstained: u64) -> Value {
    let sum = |key: &str| -> f64 { runs.iter().filter_map(|r| r[key].as_f64()).sum() };
    json!({
        "abstained": abstained,
        "malformed": sum("malformed"),
        "cached": sum("cached"),
        "seconds": sum("seconds"),
        "examples_per_second": examples as f64 / sum("seconds").max(1e-9),
        "prompt": runs.first().map(|r| r["prompt"].clone()).unwrap_or_default(),
    })
}
