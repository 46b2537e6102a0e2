//! Embeds texts read from stdin (one JSON string per line) and writes one JSON array per line.
//!
//! Used by `scripts/compare_encoder_reference.py`: `embed_jsonl MODEL_DIR [BATCH] < texts.jsonl`.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use gloss_ml::{Device, Encoder};

// Tensors are allocated and freed per operation; glibc hands large blocks back to the system
// each time (page faults, zeroing), mimalloc keeps them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: embed_jsonl MODEL_DIR [BATCH]"))?,
    );
    let batch: usize = args.next().map_or(Ok(32), |b| b.parse())?;
    let texts: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(&line?).map_err(|e| anyhow::anyhow!("stdin line {}: {e}", i + 1))
        })
        .collect::<anyhow::Result<_>>()?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let encoder = Encoder::load(&dir, &Device::Cpu)?;
    let mut out = std::io::stdout().lock();
    for v in encoder.embed(&refs, batch)? {
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
    }
    Ok(())
}
