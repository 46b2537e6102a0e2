#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and the CUDA toolkit: builds the tests with the `cuda`
# feature (release) and runs one train job and one LLM teacher job on the GPU and on the CPU,
# printing the wall times and the speed-up. Usage: tests/gpu/run.sh [GOLD_RECORDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v nvidia-smi >/dev/null || { echo "no nvidia-smi: this script needs an NVIDIA GPU" >&2; exit 1; }
command -v nvcc >/dev/null || { echo "no nvcc: the cuda feature needs the CUDA toolkit" >&2; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gloss-target}"
export GLOSS_GPU_GOLD="${1:-400}"
crates/gloss-ml/scripts/fetch-test-models.sh
cargo test --release -p gloss-tests --features cuda --test gpu_jobs -- --ignored --nocapture
