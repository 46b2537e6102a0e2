//! Throughput of the tiny student on the CPU (prediction and training), printed as a table.
//!
//! `cargo run --release --example tiny_throughput` (data from scripts/fetch-test-data.sh;
//! `GLOSS_TEST_DATA` overrides its directory).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use gloss_ml::data::load_polarity;
use gloss_ml::{train, Device, TinyConfig, TinyStudent, TrainConfig};

fn main() -> anyhow::Result<()> {
    let dir = std::env::var_os("GLOSS_TEST_DATA").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/gloss-test-data")
        },
        PathBuf::from,
    );
    let ds = load_polarity(&dir.join("polarity/sentences.csv"))?;
    let splits = ds.split();
    let texts: Vec<&str> = ds.examples.iter().map(|(t, _)| t.as_str()).collect();
    println!(
        "{:<8} {:>14} {:>16} {:>16}",
        "batch", "predict ex/s", "train ex/s", "artifact bytes"
    );
    for batch in [32, 64] {
        let student = TinyStudent::new(TinyConfig::new(ds.labels.clone()), &Device::Cpu)?;
        let started = Instant::now();
        let config = TrainConfig {
            max_epochs: 1,
            batch_size: batch,
            ..TrainConfig::default()
        };
        train(
            &student,
            &splits.train,
            &splits.dev,
            &config,
            &Arc::new(AtomicBool::new(false)),
            |_| {},
        )?;
        let train_rate = splits.train.len() as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        student.predict(&texts, 128)?;
        let predict_rate = texts.len() as f64 / started.elapsed().as_secs_f64();
        let out = std::env::temp_dir().join(format!("gloss-tiny-bench-{}", std::process::id()));
        student.save(&out)?;
        let bytes = std::fs::metadata(out.join("model.safetensors"))?.len();
        std::fs::remove_dir_all(&out)?;
        println!("{batch:<8} {predict_rate:>14.0} {train_rate:>16.0} {bytes:>16}");
    }
    Ok(())
}
