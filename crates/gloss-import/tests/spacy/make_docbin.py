"""Writes a spaCy DocBin for gloss-import's docbin test, plus a JSON sidecar of what spaCy sees.

Usage: python3 make_docbin.py OUT.spacy OUT.json

Uses a blank English pipeline (its rule-based tokenizer only; no model download). The sidecar
lists, per doc, `text`, `ents` as [start_char, end_char, label] (code points, as Python indexes
strings) and `cats` as label -> score, all read back from the docs spaCy deserialises.
"""

import json
import sys

import numpy
import spacy
from spacy.symbols import NAMES
from spacy.tokens import Doc, DocBin


def char_span(doc, start, end, label):
    span = doc.char_span(start, end, label=label)
    assert span is not None, (doc.text, start, end, label)
    return span


def main(out_spacy, out_json):
    nlp = spacy.blank("en")
    docs = []

    # Multi-token entity at the start, single-token entity at the end, non-ASCII text.
    doc = nlp("Zoë Müller visited Zürich")
    doc.ents = [char_span(doc, 0, 10, "PERSON"), char_span(doc, 19, 25, "GPE")]
    doc.cats = {"travel": 0.9, "sports": 0.1}
    docs.append(doc)

    # Astral-plane characters (one code point, two UTF-16 units, four UTF-8 bytes), an entity
    # after them, a custom label and a doubled space (spaCy makes it a whitespace token).
    doc = nlp("😀 naïve café  in São Paulo opened 🎉")
    start = doc.text.index("São")
    doc.ents = [char_span(doc, start, start + len("São Paulo"), "CITY_LOC")]
    doc.cats = {"food": numpy.float32(0.75), "travel": 0.5, "sports": 0.49}
    docs.append(doc)

    # The empty doc.
    doc = nlp("")
    docs.append(doc)

    # Adjacent entities with the same label, tokens that are spaCy symbol names, a newline.
    doc = nlp("Apple Google ORG _ nsubj\nend")
    doc.ents = [char_span(doc, 0, 5, "ORG"), char_span(doc, 6, 12, "ORG")]
    docs.append(doc)

    # Trailing whitespace and no entities, with user data.
    doc = nlp("No entities here. ")
    doc.cats = {"travel": 0.0}
    doc.user_data["source"] = "unit-test"
    doc.user_data["n"] = 3
    docs.append(doc)

    # Every reserved symbol as a token: spaCy stores these as small ids, not hashes.
    docs.append(Doc(nlp.vocab, words=[name for name in NAMES if name]))

    DocBin(docs=docs, store_user_data=True).to_disk(out_spacy)

    expected = []
    for doc in DocBin().from_disk(out_spacy).get_docs(nlp.vocab):
        expected.append(
            {
                "text": doc.text,
                "ents": [[e.start_char, e.end_char, e.label_] for e in doc.ents],
                "cats": {k: float(v) for k, v in doc.cats.items()},
                "user_data": {k: v for k, v in doc.user_data.items() if isinstance(k, str)},
            }
        )
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
