//! Byte-level BPE tokenizer rebuilt from a GGUF file's metadata.
//!
//! GGUF files carry their tokenizer as metadata (`tokenizer.ggml.*`): the vocabulary in id order,
//! the merges in rank order, a type per token and the ids of the special tokens. For
//! `tokenizer.ggml.model = "gpt2"` this is a byte-level BPE, which we assemble from the
//! `tokenizers` crate's BPE model, a pre-tokenizer chosen by `tokenizer.ggml.pre` and the
//! byte-level decoder. Control and user-defined tokens (`<|im_start|>`, `<|im_end|>`, ...) become
//! special tokens: matched atomically by [`GgufTokenizer::encode`], never produced by BPE.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::error::{Error, Result};

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Regex of llama.cpp's `llama-bpe` pre-tokenizer (Llama 3 family).
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A byte-level BPE tokenizer read from GGUF metadata.
#[derive(Clone)]
pub struct GgufTokenizer {
    /// Splits special tokens out of the input before BPE.
    with_specials: Tokenizer,
    /// Same vocabulary, but special-token text is encoded as ordinary text (for untrusted input).
    plain: Tokenizer,
    tokens: Vec<String>,
    special_ids: Vec<u32>,
    bos_id: Option<u32>,
    eos_id: u32,
    unk_id: Option<u32>,
    add_bos: bool,
}

impl std::fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field("vocab_size", &self.tokens.len())
            .field("specials", &self.special_ids.len())
            .field("bos_id", &self.bos_id)
            .field("eos_id", &self.eos_id)
            .finish_non_exhaustive()
    }
}

impl GgufTokenizer {
    /// Reads the metadata of the GGUF file at `path` (not its tensors) and builds the tokenizer.
    pub fn from_file(path: &Path) -> Result<GgufTokenizer> {
        let content = read_gguf_content(path)?;
        GgufTokenizer::from_content(&content, path)
    }

    /// Builds the tokenizer from already-read GGUF content; `source` names the file in errors.
    pub fn from_content(content: &Content, source: &Path) -> Result<GgufTokenizer> {
        let meta = Meta { content, source };
        let model = meta.string("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(meta.error(
                "tokenizer.ggml.model",
                format!("unsupported tokenizer model {model:?} (only byte-level BPE \"gpt2\")"),
            ));
        }
        let tokens = meta.strings("tokenizer.ggml.tokens")?;
        let types = match content.metadata.get("tokenizer.ggml.token_type") {
            Some(_) => meta.ints("tokenizer.ggml.token_type")?,
            None => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(meta.error(
                "tokenizer.ggml.token_type",
                format!("{} types for {} tokens", types.len(), tokens.len()),
            ));
        }
        let merges = parse_merges(&meta, &meta.strings("tokenizer.ggml.merges")?)?;
        let eos_id = meta
            .id("tokenizer.ggml.eos_token_id", tokens.len())?
            .ok_or_else(|| {
                meta.error(
                    "tokenizer.ggml.eos_token_id",
                    "missing (needed to stop generation)",
                )
            })?;
        let bos_id = meta.id("tokenizer.ggml.bos_token_id", tokens.len())?;
        let unk_id = meta.id("tokenizer.ggml.unknown_token_id", tokens.len())?;
        let add_bos = match content.metadata.get("tokenizer.ggml.add_bos_token") {
            Some(v) => v
                .to_bool()
                .map_err(|e| meta.error("tokenizer.ggml.add_bos_token", e))?,
            None => false,
        };
        let pre = match content.metadata.get("tokenizer.ggml.pre") {
            Some(_) => meta.string("tokenizer.ggml.pre")?,
            None => "default".to_string(),
        };
        let pre_tokenizer =
            pre_tokenizer_for(&pre).map_err(|m| meta.error("tokenizer.ggml.pre", m))?;

        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(id, t)| (t.clone(), id as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| Error::tokenizer(format!("{}: BPE", source.display()), e))?;

        let mut with_specials = Tokenizer::new(bpe);
        with_specials.with_pre_tokenizer(Some(pre_tokenizer));
        with_specials.with_decoder(Some(ByteLevelDecoder::default()));

        let special_ids: Vec<u32> = types
            .iter()
            .enumerate()
            .filter(|(_, &t)| t == TOKEN_TYPE_CONTROL || t == TOKEN_TYPE_USER_DEFINED)
            .map(|(id, _)| id as u32)
            .collect();
        let added: Vec<AddedToken> = special_ids
            .iter()
            .map(|&id| AddedToken::from(tokens[id as usize].clone(), true))
            .collect();
        with_specials.add_special_tokens(&added);

        let mut plain = with_specials.clone();
        plain.set_encode_special_tokens(true);

        Ok(GgufTokenizer {
            with_specials,
            plain,
            tokens,
            special_ids,
            bos_id,
            eos_id,
            unk_id,
            add_bos,
        })
    }

    /// Encodes `text`, turning special-token strings such as `<|im_start|>` into their single ids.
    /// Use this for trusted template text; BOS is never added here.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        encode_with(&self.with_specials, text)
    }

    /// Encodes `text` as ordinary text: special-token strings are split like any other text, so
    /// user content cannot inject control tokens into a prompt.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        encode_with(&self.plain, text)
    }

    /// Decodes ids back to text; special tokens are rendered as their strings, so
    /// `decode(encode(s)) == s`.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.with_specials
            .decode(ids, false)
            .map_err(|e| Error::tokenizer("decoding GGUF tokens", e))
    }

    /// Number of raw bytes token `id` stands for (its byte-level characters, or the special
    /// token's text); lets callers map generated tokens to byte ranges of the decoded output.
    pub fn byte_len(&self, id: u32) -> usize {
        match self.tokens.get(id as usize) {
            Some(t) if self.is_special(id) => t.len(),
            Some(t) => t.chars().count(),
            None => 0,
        }
    }

    /// Id of a token string, if it is in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.with_specials.token_to_id(token)
    }

    /// Vocabulary string of `id` (byte-level alphabet for ordinary tokens).
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Whether `id` is a control or user-defined token.
    pub fn is_special(&self, id: u32) -> bool {
        self.special_ids.binary_search(&id).is_ok()
    }

    /// Size of the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Beginning-of-sequence id, if the model has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// End-of-sequence id.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Unknown-token id, if the model has one (byte-level BPE never produces it).
    pub fn unk_id(&self) -> Option<u32> {
        self.unk_id
    }

    /// Whether the model expects BOS at the start of a prompt (`tokenizer.ggml.add_bos_token`).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
}

/// Reads a GGUF file's header, metadata and tensor index (not the tensor data).
pub(crate) fn read_gguf_content(path: &Path) -> Result<Content> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = std::io::BufReader::new(file);
    Content::read(&mut reader).map_err(|e| Error::GgufMetadata {
        path: path.to_path_buf(),
        key: "header".into(),
        message: e.to_string(),
    })
}

fn encode_with(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    let encoding = tokenizer
        .encode(text, false)
        .map_err(|e| Error::tokenizer("encoding for GGUF model", e))?;
    Ok(encoding.get_ids().to_vec())
}

/// The pre-tokenizer llama.cpp uses for a `tokenizer.ggml.pre` name.
fn pre_tokenizer_for(pre: &str) -> std::result::Result<PreTokenizerWrapper, String> {
    let byte_level =
        |use_regex| PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, use_regex));
    match pre {
        "default" | "gpt2" | "gpt-2" => Ok(byte_level(true)),
        // SmolLM: every digit on its own, then the GPT-2 split.
        "smollm" | "starcoder" => Ok(PreTokenizerWrapper::Sequence(Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            byte_level(true),
        ]))),
        "llama3" | "llama-bpe" | "llama-v3" => {
            let split = Split::new(
                SplitPattern::Regex(LLAMA3_PATTERN.into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| format!("building the llama3 split: {e}"))?;
            Ok(PreTokenizerWrapper::Sequence(Sequence::new(vec![
                PreTokenizerWrapper::Split(split),
                byte_level(false),
            ])))
        }
        other => Err(format!("unsupported pre-tokenizer {other:?}")),
    }
}

fn parse_merges(meta: &Meta<'_>, merges: &[String]) -> Result<Merges> {
    merges
        .iter()
        .enumerate()
        .map(|(rank, m)| match m.split_once(' ') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
            _ => Err(meta.error(
                "tokenizer.ggml.merges",
                format!("merge {rank} ({m:?}) is not two tokens separated by a space"),
            )),
        })
        .collect()
}

/// Typed access to GGUF metadata with errors that name the file and key.
struct Meta<'a> {
    content: &'a Content,
    source: &'a Path,
}

impl Meta<'_> {
    fn error(&self, key: &str, message: impl ToString) -> Error {
        Error::GgufMetadata {
            path: PathBuf::from(self.source),
            key: key.to_string(),
            message: message.to_string(),
        }
    }

    fn get(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| self.error(key, "missing"))
    }

    fn string(&self, key: &str) -> Result<String> {
        let v = self.get(key)?;
        v.to_string().cloned().map_err(|e| self.error(key, e))
    }

    fn array(&self, key: &str) -> Result<&Vec<Value>> {
        self.get(key)?.to_vec().map_err(|e| self.error(key, e))
    }

    fn strings(&self, key: &str) -> Result<Vec<String>> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.to_string()
                    .cloned()
                    .map_err(|e| self.error(key, format!("element {i}: {e}")))
            })
            .collect()
    }

    fn ints(&self, key: &str) -> Result<Vec<i64>> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                as_i64(v).ok_or_else(|| self.error(key, format!("element {i} is not an integer")))
            })
            .collect()
    }

    /// An optional token id, checked against the vocabulary size.
    fn id(&self, key: &str, vocab_size: usize) -> Result<Option<u32>> {
        let Some(v) = self.content.metadata.get(key) else {
            return Ok(None);
        };
        match as_i64(v) {
            Some(id) if (0..vocab_size as i64).contains(&id) => Ok(Some(id as u32)),
            Some(id) => Err(self.error(key, format!("id {id} outside vocabulary of {vocab_size}"))),
            None => Err(self.error(key, "not an integer")),
        }
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match *v {
        Value::U8(x) => Some(x.into()),
        Value::I8(x) => Some(x.into()),
        Value::U16(x) => Some(x.into()),
        Value::I16(x) => Some(x.into()),
        Value::U32(x) => Some(x.into()),
        Value::I32(x) => Some(x.into()),
        Value::U64(x) => i64::try_from(x).ok(),
        Value::I64(x) => Some(x),
        _ => None,
    }
}
