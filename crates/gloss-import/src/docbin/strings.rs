//! How spaCy turns strings into the 64-bit ids stored in a `DocBin`'s token array.
//!
//! A string that is one of spaCy's reserved symbols (`spacy/symbols.pxd`: attribute names,
//! universal POS tags, the OntoNotes entity labels, dependency labels) is stored as the symbol's
//! small id; any other string as MurmurHash64A (seed 1) of its UTF-8 bytes
//! (`spacy/strings.pyx`). Writing the hash of a symbol would leave spaCy unable to resolve it.

use std::borrow::Cow;
use std::collections::HashMap;

/// Symbols 0..=18.
const FIRST: [&str; 19] = [
    "",
    "IS_ALPHA",
    "IS_ASCII",
    "IS_DIGIT",
    "IS_LOWER",
    "IS_PUNCT",
    "IS_SPACE",
    "IS_TITLE",
    "IS_UPPER",
    "LIKE_URL",
    "LIKE_NUM",
    "LIKE_EMAIL",
    "IS_STOP",
    "IS_OOV_DEPRECATED",
    "IS_BRACKET",
    "IS_QUOTE",
    "IS_LEFT_PUNCT",
    "IS_RIGHT_PUNCT",
    "IS_CURRENCY",
];

/// Symbols 19..=63 are `FLAG19`..`FLAG63`.
const FLAGS: std::ops::RangeInclusive<u64> = 19..=63;

/// Symbols 64..=103.
const MIDDLE: [&str; 40] = [
    "ID",
    "ORTH",
    "LOWER",
    "NORM",
    "SHAPE",
    "PREFIX",
    "SUFFIX",
    "LENGTH",
    "CLUSTER",
    "LEMMA",
    "POS",
    "TAG",
    "DEP",
    "ENT_IOB",
    "ENT_TYPE",
    "HEAD",
    "SENT_START",
    "SPACY",
    "PROB",
    "LANG",
    "ADJ",
    "ADP",
    "ADV",
    "AUX",
    "CONJ",
    "CCONJ",
    "DET",
    "INTJ",
    "NOUN",
    "NUM",
    "PART",
    "PRON",
    "PROPN",
    "PUNCT",
    "SCONJ",
    "SYM",
    "VERB",
    "X",
    "EOL",
    "SPACE",
];

/// Symbols 104..=379 are `DEPRECATED001`..`DEPRECATED276`.
const DEPRECATED: std::ops::RangeInclusive<u64> = 104..=379;

/// Symbols 380..=456.
const LAST: [&str; 77] = [
    "PERSON",
    "NORP",
    "FACILITY",
    "ORG",
    "GPE",
    "LOC",
    "PRODUCT",
    "EVENT",
    "WORK_OF_ART",
    "LANGUAGE",
    "LAW",
    "DATE",
    "TIME",
    "PERCENT",
    "MONEY",
    "QUANTITY",
    "ORDINAL",
    "CARDINAL",
    "acomp",
    "advcl",
    "advmod",
    "agent",
    "amod",
    "appos",
    "attr",
    "aux",
    "auxpass",
    "cc",
    "ccomp",
    "complm",
    "conj",
    "cop",
    "csubj",
    "csubjpass",
    "dep",
    "det",
    "dobj",
    "expl",
    "hmod",
    "hyph",
    "infmod",
    "intj",
    "iobj",
    "mark",
    "meta",
    "neg",
    "nmod",
    "nn",
    "npadvmod",
    "nsubj",
    "nsubjpass",
    "num",
    "number",
    "oprd",
    "obj",
    "obl",
    "parataxis",
    "partmod",
    "pcomp",
    "pobj",
    "poss",
    "possessive",
    "preconj",
    "prep",
    "prt",
    "punct",
    "quantmod",
    "relcl",
    "rcmod",
    "root",
    "xcomp",
    "acl",
    "ENT_KB_ID",
    "MORPH",
    "ENT_ID",
    "IDX",
    "_",
];

/// Every reserved symbol with its id, in id order.
pub(super) fn symbols() -> impl Iterator<Item = (u64, Cow<'static, str>)> {
    let fixed = |start: u64, names: &'static [&'static str]| {
        (start..).zip(names.iter().map(|n| Cow::Borrowed(*n)))
    };
    fixed(0, &FIRST)
        .chain(FLAGS.map(|i| (i, Cow::Owned(format!("FLAG{i}")))))
        .chain(fixed(64, &MIDDLE))
        .chain(DEPRECATED.map(|i| (i, Cow::Owned(format!("DEPRECATED{:03}", i - 103)))))
        .chain(fixed(380, &LAST))
}

/// Maps strings to the ids spaCy stores for them.
pub(super) struct Interner {
    symbols: HashMap<Cow<'static, str>, u64>,
}

impl Interner {
    pub(super) fn new() -> Self {
        Self {
            symbols: symbols().map(|(id, name)| (name, id)).collect(),
        }
    }

    /// The id spaCy's `StringStore` gives `s`.
    pub(super) fn id(&self, s: &str) -> u64 {
        self.symbols.get(s).copied().unwrap_or_else(|| hash(s))
    }
}

/// spaCy's `hash_string`: MurmurHash64A of the UTF-8 bytes with seed 1.
pub(super) fn hash(s: &str) -> u64 {
    murmur64a(s.as_bytes(), 1)
}

/// Austin Appleby's MurmurHash64A, reading 8-byte blocks little-endian (as spaCy does on the
/// little-endian machines it ships wheels for).
fn murmur64a(data: &[u8], seed: u32) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let len = data.len() as u64;
    let mut h = u64::from(seed) ^ len.wrapping_mul(M);
    let mut blocks = data.chunks_exact(8);
    for block in &mut blocks {
        let mut k = u64::from_le_bytes(block.try_into().unwrap_or([0; 8]));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_spacy_hash_string() {
        // Values printed by `spacy.strings.hash_string` (spaCy 3.8).
        assert_eq!(hash("PERSON"), 11_121_653_176_597_302_729);
        assert_eq!(hash(""), 14_313_749_767_032_693_980);
        assert_eq!(hash("Zoë"), 16_948_573_035_762_911_534);
    }

    /// `len(spacy.symbols.NAMES)` in spaCy 3.8.
    const SYMBOL_COUNT: u64 = 457;

    #[test]
    fn symbol_ids_are_dense_and_match_spacy() {
        let all: Vec<_> = symbols().collect();
        assert_eq!(all.len() as u64, SYMBOL_COUNT);
        assert!(all.iter().enumerate().all(|(i, (id, _))| *id == i as u64));
        let interner = Interner::new();
        assert_eq!(
            interner.symbols.len() as u64,
            SYMBOL_COUNT,
            "names are unique"
        );
        for (name, id) in [
            ("", 0),
            ("FLAG19", 19),
            ("ORTH", super::super::ORTH),
            ("ENT_IOB", super::super::ENT_IOB),
            ("ENT_TYPE", super::super::ENT_TYPE),
            ("SPACE", 103),
            ("DEPRECATED001", 104),
            ("DEPRECATED276", 379),
            ("PERSON", 380),
            ("ORG", 383),
            ("_", 456),
        ] {
            assert_eq!(interner.id(name), id, "{name}");
        }
        assert_eq!(interner.id("Zoë"), hash("Zoë"));
    }
}
