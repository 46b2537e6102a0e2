//! `gloss predict`: run an exported student over JSON Lines without a cluster.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use gloss_ml::student::tiny::TinyStudent;
use gloss_ml::train::argmax;
use serde_json::{json, Map, Value};

/// Runs the tiny student in `model_dir` (an exported artifact, unpacked) over JSONL from `input`
/// (standard input without one), `batch_size` examples at a time; writes each record to
/// standard output with `label`, `score` and per-label `scores` added.
pub fn run(model_dir: &Path, input: Option<&Path>, batch_size: usize) -> Result<()> {
    let batch_size = batch_size.max(1);
    if model_dir.join("encoder.json").exists() {
        bail!(
            "{} holds an encoder student, which needs its base encoder; `gloss predict` runs tiny \
             students (use a predict job for the others)",
            model_dir.display()
        );
    }
    let model = TinyStudent::load(model_dir, &gloss_ml::Device::Cpu)
        .with_context(|| format!("loading the model in {}", model_dir.display()))?;
    let reader: Box<dyn BufRead> = match input {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut batch: Vec<(Map<String, Value>, String)> = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading line {}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Value =
            serde_json::from_str(&line).with_context(|| format!("line {}: not JSON", i + 1))?;
        let Value::Object(record) = record else {
            bail!("line {}: expected a JSON object", i + 1);
        };
        let Some(text) = record
            .get("text")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            bail!("line {}, field `text`: is missing or not a string", i + 1);
        };
        batch.push((record, text));
        if batch.len() >= batch_size {
            flush(&model, &mut batch, &mut out)?;
        }
    }
    flush(&model, &mut batch, &mut out)?;
    out.flush()?;
    Ok(())
}

fn flush(
    model: &TinyStudent,
    batch: &mut Vec<(Map<String, Value>, String)>,
    out: &mut impl Write,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let texts: Vec<&str> = batch.iter().map(|(_, t)| t.as_str()).collect();
    let scores = model.predict(&texts, texts.len())?;
    for ((mut record, _), s) in batch.drain(..).zip(scores) {
        let best = argmax(&s);
        let labels = model.labels();
        record.insert("label".into(), json!(labels[best]));
        record.insert("score".into(), json!(s[best]));
        let per: Map<String, Value> = labels
            .iter()
            .zip(&s)
            .map(|(l, p)| (l.clone(), json!(p)))
            .collect();
        record.insert("scores".into(), Value::Object(per));
        writeln!(out, "{}", Value::Object(record))?;
    }
    Ok(())
}
