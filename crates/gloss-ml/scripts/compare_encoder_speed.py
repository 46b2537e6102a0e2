#!/usr/bin/env python3
"""Encoder throughput and agreement: gloss-ml (candle) against sentence-transformers (PyTorch).

In one run, on the same model files (all-MiniLM-L6-v2 under $GLOSS_TEST_MODELS/minilm) and the
same sentences (the bench's synthetic set: 3-90 words, regenerated here with its LCG and word
list, read from examples/bench/speed.rs):

  * gloss-ml sentences/s at batch 1 and 32: the `bench` example's own encoder table
    (`--no-teacher --sets ''`): model load excluded, a warm-up batch first, tokenisation included;
  * PyTorch sentences/s: SentenceTransformer.encode with torch.set_num_threads(THREADS),
    max_seq_length 128, L2-normalised: model load excluded, a warm-up batch first, tokenisation
    included;
  * cosine of gloss-ml's embeddings (`embed_jsonl` example, batch 1 and 32) to PyTorch's
    (batch 32) over every sentence: min and mean.

The two sides run one after the other, never at once; with --rounds R they alternate R times,
each round's rates and load average are printed, and the best rate of each side is kept (both
sides slow down badly when other work shares the cores: use --rounds 3 on a busy machine).
Prints Markdown tables and exits 1 if the ratio at either batch is below 1.0 or the worst cosine
is below 0.9999.

From the repository root (the binaries are this crate's release examples; CARGO_TARGET_DIR
defaults to target):

    python3 -m venv ~/.venv-torch
    ~/.venv-torch/bin/pip install torch sentence-transformers numpy
    cargo build --release -p gloss-ml --example bench --example embed_jsonl
    GLOSS_BENCH_BIN=$CARGO_TARGET_DIR/release/examples/bench \\
    GLOSS_EMBED_BIN=$CARGO_TARGET_DIR/release/examples/embed_jsonl \\
      ~/.venv-torch/bin/python crates/gloss-ml/scripts/compare_encoder_speed.py \\
      [--sentences 2000] [--threads 2] [--rounds 1]

Without GLOSS_BENCH_BIN / GLOSS_EMBED_BIN the script uses `cargo run --release --example ...`
(which builds first, but the build is not timed).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path(os.environ.get("GLOSS_TEST_MODELS", Path.home() / ".cache/gloss-test-models"))
MODEL_DIR = MODELS / "minilm"
MASK64 = (1 << 64) - 1


def bench_sentences(n):
    """The bench's `sentences(n)`: a fixed 64-bit LCG picks lengths 3-90 and words."""
    src = (ROOT / "examples/bench/speed.rs").read_text()
    words = re.findall(r'"([^"]*)"', re.search(r"const WORDS[^=]*= &\[(.*?)\];", src, re.S).group(1))
    state = 0x2545_F491_4F6C_DD1D

    def nxt():
        nonlocal state
        state = (state * 6_364_136_223_846_793_005 + 1_442_695_040_888_963_407) & MASK64
        return state >> 33

    out = []
    for _ in range(n):
        length = 3 + nxt() % 88
        s = [words[nxt() % len(words)] for _ in range(length)]
        s[0] = "This"
        out.append(" ".join(s) + ".")
    return out


def example_cmd(env_var, name, args):
    binary = os.environ.get(env_var)
    if binary:
        return [binary, *args]
    return ["cargo", "run", "--quiet", "--release", "-p", "gloss-ml", "--example", name, "--", *args]


def gloss_rates(n, threads):
    """Sentences/s per batch from the bench's encoder table, and its header's word statistics."""
    cmd = example_cmd("GLOSS_BENCH_BIN", "bench",
                      ["--no-teacher", "--sets", "", "--encoder-sentences", str(n), "--threads", str(threads)])
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True).stdout
    header = re.search(r"\((?:[^,]*), (\d+) sentences of 3-90 words, mean (\d+)\)", out)
    rates = {int(b): float(r) for b, t, r in re.findall(r"^\| (\d+) \| (\d+) \| [\d.]+ \| ([\d.]+) \|$", out, re.M)}
    if not header or set(rates) != {1, 32}:
        sys.exit(f"could not read the bench's encoder table:\n{out}")
    return rates, int(header.group(1)), int(header.group(2))


def gloss_embeddings(texts, batch, threads):
    import numpy as np

    cmd = example_cmd("GLOSS_EMBED_BIN", "embed_jsonl", [str(MODEL_DIR), str(batch)])
    env = {**os.environ, "RAYON_NUM_THREADS": str(threads)}
    stdin = "".join(json.dumps(t) + "\n" for t in texts)
    out = subprocess.run(cmd, input=stdin, capture_output=True, text=True, cwd=ROOT, env=env, check=True).stdout
    return np.array([json.loads(line) for line in out.splitlines()], dtype=np.float64)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sentences", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    a = p.parse_args()
    # The tokenizers on both sides use a rayon pool; keep it to the same thread count.
    os.environ["RAYON_NUM_THREADS"] = os.environ["RAYON_RS_NUM_CPUS"] = str(a.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    load_before = os.getloadavg()
    texts = bench_sentences(a.sentences)
    mean_words = sum(len(t.split(" ")) for t in texts) / len(texts)

    torch.set_num_threads(a.threads)
    model = SentenceTransformer(str(MODEL_DIR), device="cpu")
    model.max_seq_length = 128

    def encode(batch):
        return model.encode(texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False)

    model.encode(texts[:16], batch_size=16)  # warm-up, as the bench does
    best_gloss, best_torch, ref = {1: 0.0, 32: 0.0}, {1: 0.0, 32: 0.0}, None
    for r in range(a.rounds):
        rates, n, bench_mean = gloss_rates(a.sentences, a.threads)
        if n != len(texts) or bench_mean != round(mean_words):
            sys.exit(f"sentence sets differ: bench {n} sentences mean {bench_mean}, here mean {mean_words:.2f}")
        torch_rates = {}
        for b in (1, 32):
            t = time.perf_counter()
            emb = encode(b)
            torch_rates[b] = len(texts) / (time.perf_counter() - t)
            best_gloss[b] = max(best_gloss[b], rates[b])
            best_torch[b] = max(best_torch[b], torch_rates[b])
            if b == 32:
                ref = emb.astype(np.float64)
        print(f"round {r + 1}: gloss-ml {rates[1]:.1f} / {rates[32]:.1f}, PyTorch {torch_rates[1]:.1f} / "
              f"{torch_rates[32]:.1f} sentences/s at batch 1 / 32; load {os.getloadavg()[0]:.2f}", flush=True)

    print("\n## Encoder throughput: gloss-ml vs PyTorch sentence-transformers\n")
    print(f"all-MiniLM-L6-v2, {len(texts)} sentences of 3-90 words (mean {mean_words:.1f}), "
          f"max 128 tokens; torch {torch.__version__}, best of {a.rounds} round(s)\n")
    print("| batch | threads | gloss-ml sentences/s | PyTorch sentences/s | ratio |")
    print("|---:|---:|---:|---:|---:|")
    ratios = []
    for b in (1, 32):
        ratios.append(best_gloss[b] / best_torch[b])
        print(f"| {b} | {a.threads} | {best_gloss[b]:.1f} | {best_torch[b]:.1f} | {ratios[-1]:.2f}x |")

    print("\n## Embedding agreement (cosine to PyTorch, batch 32)\n")
    print("| gloss-ml batch | min cosine | mean cosine | max abs diff |")
    print("|---:|---:|---:|---:|")
    worst = 1.0
    for b in (1, 32):
        got = gloss_embeddings(texts, b, a.threads)
        cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
        worst = min(worst, float(cos.min()))
        print(f"| {b} | {cos.min():.9f} | {cos.mean():.9f} | {np.abs(got - ref).max():.2e} |")

    load_after = os.getloadavg()
    print(f"\n_load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); "
          f"wall time {time.perf_counter() - started:.0f} s_")
    ok = min(ratios) >= 1.0 and worst >= 0.9999
    print(f"targets (ratio >= 1.0x, cosine >= 0.9999): {'met' if ok else 'NOT met'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
