#!/usr/bin/env python3
"""Compare gloss-ml's encoder with an independent reference implementation.

Reference, in order of preference:
  1. sentence-transformers (PyTorch), when importable;
  2. otherwise a float64 NumPy implementation of BERT written here from the published architecture
     (HF `tokenizers` for tokenisation, `safetensors` for the weights), with the same
     attention-masked mean pooling and L2 normalisation sentence-transformers applies.

Rust embeddings come from the `embed_jsonl` example: the binary named by $GLOSS_EMBED_BIN when
set, else `cargo run --release --example embed_jsonl`. Prints cosine similarity and max abs
difference per sentence and fails (exit 1) if any cosine is below 0.9999.

    pip install numpy tokenizers safetensors      # NumPy reference (small)
    CARGO_TARGET_DIR=$HOME/.cache/ml-target python3 scripts/compare_encoder_reference.py
    # or, with a prebuilt binary (no cargo):
    GLOSS_EMBED_BIN=$HOME/.cache/ml-target/release/examples/embed_jsonl \
      python3 scripts/compare_encoder_reference.py
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path(os.environ.get("GLOSS_TEST_MODELS", Path.home() / ".cache/gloss-test-models"))
MODEL_DIR = MODELS / "minilm"

SENTENCES = [
    "A man is playing a guitar.",
    "Someone strums an acoustic guitar.",
    "The central bank raised interest rates again.",
    "",
    "ok",
    "Crème brûlée, naïve café, Ångström, Straße. 🎉",
    "Quarterly revenue grew by 12% compared with the same period last year, driven by strong demand.",
    "the quick brown fox jumps over the lazy dog " * 40,  # > 128 tokens: truncated
]


def rust_embeddings(batch):
    stdin = "".join(json.dumps(s) + "\n" for s in SENTENCES)
    binary = os.environ.get("GLOSS_EMBED_BIN")
    cmd = [binary] if binary else ["cargo", "run", "--quiet", "--release", "--example", "embed_jsonl", "--"]
    cmd += [str(MODEL_DIR), str(batch)]
    out = subprocess.run(cmd, input=stdin, capture_output=True, text=True, cwd=ROOT, check=True).stdout
    return np.array([json.loads(line) for line in out.splitlines()], dtype=np.float64)


def torch_reference():
    from sentence_transformers import SentenceTransformer  # noqa: import only if available

    model = SentenceTransformer(str(MODEL_DIR), device="cpu")
    model.max_seq_length = 128
    return model.encode(SENTENCES, normalize_embeddings=True).astype(np.float64), "sentence-transformers"


def numpy_reference():
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    cfg = json.loads((MODEL_DIR / "config.json").read_text())
    tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    tok.no_padding()
    w = {k.removeprefix("bert."): v.astype(np.float64) for k, v in load_file(str(MODEL_DIR / "model.safetensors")).items()}
    heads, eps = cfg["num_attention_heads"], cfg["layer_norm_eps"]
    erf = np.frompyfunc(math.erf, 1, 1)

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    def embed(text):
        ids = np.array(tok.encode(text).ids)
        n = len(ids)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
        x = ln(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        for l in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{l}."
            d = x.shape[1] // heads
            q, k, v = (lin(x, p + f"attention.self.{m}").reshape(n, heads, d).transpose(1, 0, 2) for m in ("query", "key", "value"))
            s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
            s = np.exp(s - s.max(-1, keepdims=True))
            ctx = ((s / s.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(n, -1)
            h = ln(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            i = lin(h, p + "intermediate.dense")
            i = 0.5 * i * (1.0 + erf(i / math.sqrt(2.0)).astype(np.float64))
            x = ln(lin(i, p + "output.dense") + h, p + "output.LayerNorm")
        m = x.mean(0)
        return m / np.linalg.norm(m)

    return np.stack([embed(s) for s in SENTENCES]), "numpy float64 BERT (independent)"


def main():
    try:
        ref, name = torch_reference()
    except ImportError:
        ref, name = numpy_reference()
    worst = 1.0
    print(f"reference: {name}")
    for batch in (1, 32):
        got = rust_embeddings(batch)
        print(f"gloss-ml batch {batch}:")
        for i, s in enumerate(SENTENCES):
            cos = float(got[i] @ ref[i] / (np.linalg.norm(got[i]) * np.linalg.norm(ref[i])))
            diff = float(np.abs(got[i] - ref[i]).max())
            worst = min(worst, cos)
            print(f"  cos {cos:.7f}  max|diff| {diff:.2e}  {s[:50]!r}")
    print(f"worst cosine: {worst:.7f}")
    sys.exit(0 if worst >= 0.9999 else 1)


if __name__ == "__main__":
    main()
