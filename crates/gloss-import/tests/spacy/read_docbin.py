"""Loads a DocBin with spaCy and prints what spaCy sees, for gloss-import's docbin test.

Usage: python3 read_docbin.py IN.spacy

Prints a JSON list with, per doc, `text`, `ents` as [start_char, end_char, label] (code points)
and `cats` as label -> score.
"""

import json
import sys

import spacy
from spacy.tokens import DocBin


def main(path):
    nlp = spacy.blank("en")
    with open(path, "rb") as f:
        doc_bin = DocBin().from_bytes(f.read())
    out = []
    for doc in doc_bin.get_docs(nlp.vocab):
        out.append(
            {
                "text": doc.text,
                "ents": [[e.start_char, e.end_char, e.label_] for e in doc.ents],
                "cats": {k: float(v) for k, v in doc.cats.items()},
            }
        )
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main(sys.argv[1])
