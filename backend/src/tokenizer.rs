//! Tokenisers for every model source, all as Hugging Face `tokenizers` objects
//! so that they tokenise exactly as `transformers` does.
//!
//! * A Hugging Face directory: `tokenizer.json` when present; else BERT's
//!   `vocab.txt` (WordPiece with BERT's normaliser and `[CLS] … [SEP]`), or
//!   GPT-2's `vocab.json` + `merges.txt` (byte-level BPE).
//! * A GGUF file: the byte-level BPE that llama.cpp's converter describes in the
//!   `tokenizer.ggml.*` metadata, with the pre-tokeniser named by
//!   `tokenizer.ggml.pre`.

use crate::gguf::GgufFile;
use crate::{Error, Result};
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// Llama 3's pre-tokeniser pattern (`tokenizer.ggml.pre = llama-bpe`).
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A tokeniser plus what the engine needs to know about it.
pub struct KnTokenizer {
    inner: Tokenizer,
    /// The mask token of a masked LM (`[MASK]`, `<mask>`), if the vocabulary has one.
    mask: Option<(String, u32)>,
    /// Prepend this id when encoding (GGUF files that ask for a BOS token).
    bos: Option<u32>,
}

fn tok_err(context: &str, e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(format!("{context}: {e}"))
}

impl KnTokenizer {
    fn new(inner: Tokenizer, mask_hint: Option<String>, bos: Option<u32>) -> Self {
        let candidates = mask_hint
            .into_iter()
            .chain(["[MASK]".to_string(), "<mask>".to_string()]);
        let mut mask = None;
        for c in candidates {
            if let Some(id) = inner.token_to_id(&c) {
                mask = Some((c, id));
                break;
            }
        }
        KnTokenizer { inner, mask, bos }
    }

    /// Load the tokeniser of a Hugging Face model directory.
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        let config = read_json_opt(&dir.join("tokenizer_config.json"))?;
        let mask_hint = config
            .as_ref()
            .and_then(|c| c.get("mask_token"))
            .and_then(|m| {
                m.as_str()
                    .or_else(|| m.get("content").and_then(|c| c.as_str()))
            })
            .map(str::to_string);
        let json = dir.join("tokenizer.json");
        if json.exists() {
            let inner = Tokenizer::from_file(&json)
                .map_err(|e| tok_err(&format!("{}", json.display()), e))?;
            return Ok(Self::new(inner, mask_hint, None));
        }
        let vocab = dir.join("vocab.txt");
        if vocab.exists() {
            let lowercase = config
                .as_ref()
                .and_then(|c| c.get("do_lower_case"))
                .and_then(|v| v.as_bool())
                .unwrap_or_else(|| guess_lowercase(dir, &vocab));
            return Self::bert_wordpiece(&vocab, lowercase);
        }
        let (vj, mt) = (dir.join("vocab.json"), dir.join("merges.txt"));
        if vj.exists() && mt.exists() {
            let bpe = BPE::from_file(&vj.to_string_lossy(), &mt.to_string_lossy())
                .build()
                .map_err(|e| tok_err(&format!("{}", vj.display()), e))?;
            let mut inner = Tokenizer::new(bpe);
            inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
            inner.with_decoder(Some(ByteLevelDecoder::default()));
            return Ok(Self::new(inner, mask_hint, None));
        }
        Err(Error::bad_model(
            dir,
            "no tokenizer found: expected tokenizer.json, vocab.txt, or vocab.json with merges.txt",
        ))
    }

    /// BERT's tokeniser from a bare `vocab.txt`, as `transformers`' `BertTokenizer` builds it.
    pub fn bert_wordpiece(vocab: &Path, lowercase: bool) -> Result<Self> {
        let wp = WordPiece::from_file(&vocab.to_string_lossy())
            .unk_token("[UNK]".into())
            .build()
            .map_err(|e| tok_err(&format!("{}", vocab.display()), e))?;
        let id = |t: &str| {
            wp_lookup(&wp, t)
                .ok_or_else(|| Error::bad_model(vocab, format!("vocab.txt has no `{t}` token")))
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        let mut inner = Tokenizer::new(wp);
        inner.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)));
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        inner.with_post_processor(Some(BertProcessing::new(
            ("[SEP]".into(), sep),
            ("[CLS]".into(), cls),
        )));
        inner.with_decoder(Some(WordPieceDecoder::default()));
        let specials: Vec<AddedToken> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .iter()
            .filter(|t| inner.token_to_id(t).is_some())
            .map(|t| AddedToken::from(t.to_string(), true))
            .collect();
        inner.add_special_tokens(&specials);
        Ok(Self::new(inner, Some("[MASK]".into()), None))
    }

    /// The byte-level BPE tokeniser described by a GGUF file's metadata.
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let model = g.require_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(Error::Tokenizer(format!(
                "{}: tokenizer.ggml.model is `{model}`; only byte-level BPE (`gpt2`) GGUF tokenizers are supported",
                g.path.display()
            )));
        }
        let tokens = g.str_array("tokenizer.ggml.tokens")?;
        let merges = g.str_array("tokenizer.ggml.merges")?;
        let types = g.int_array("tokenizer.ggml.token_type").unwrap_or_default();
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        let merges = merges
            .iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| {
                        Error::Tokenizer(format!("malformed merge `{m}` in {}", g.path.display()))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| tok_err("GGUF vocabulary", e))?;
        let mut inner = Tokenizer::new(bpe);
        let byte_level: PreTokenizerWrapper = ByteLevel::new(false, true, true).into();
        let pre = g
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let pre_tokenizer: PreTokenizerWrapper = match pre {
            "smollm" => Sequence::new(vec![Digits::new(true).into(), byte_level]).into(),
            "llama-bpe" | "llama3" => {
                let split = Split::new(
                    SplitPattern::Regex(LLAMA3_PATTERN.into()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .map_err(|e| tok_err("llama-bpe pattern", e))?;
                Sequence::new(vec![
                    split.into(),
                    ByteLevel::new(false, true, false).into(),
                ])
                .into()
            }
            "default" | "gpt-2" | "gpt2" => byte_level,
            other => {
                tracing::warn!("GGUF pre-tokenizer `{other}` is not known; using GPT-2's");
                byte_level
            }
        };
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        // Control and user-defined tokens (types 3 and 4) are matched whole.
        let specials: Vec<AddedToken> = types
            .iter()
            .enumerate()
            .filter(|(_, &t)| t == 3 || t == 4)
            .filter_map(|(i, &t)| {
                tokens
                    .get(i)
                    .map(|s| AddedToken::from(s.to_string(), t == 3))
            })
            .collect();
        inner.add_special_tokens(&specials);
        let add_bos = g
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let bos = g
            .get("tokenizer.ggml.bos_token_id")
            .and_then(|v| v.as_u64())
            .map(|v| v as u32)
            .filter(|_| add_bos);
        Ok(Self::new(inner, None, bos))
    }

    /// Token ids of `text`, with the model's special tokens (BERT's `[CLS]`/`[SEP]`, a BOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| tok_err("encoding", e))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        ids.extend(self.bos);
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Token ids of `text` without any special tokens (for answers).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| tok_err("encoding", e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// A token as a person reads it: ` Paris` for byte-level BPE, `##ing` for
    /// WordPiece. A token that is not whole UTF-8 characters (a byte-level
    /// piece of `é`, a byte-fallback token) shows its bytes as `<0xC3>`,
    /// never as `�`.
    pub fn token_text(&self, id: u32) -> String {
        let raw = self.inner.id_to_token(id).unwrap_or_default();
        if raw.starts_with("##") || raw.starts_with('[') {
            return raw;
        }
        match self.inner.decode(&[id], false) {
            Ok(s) if s.contains('\u{FFFD}') => match byte_level_bytes(&raw) {
                Some(bytes) => show_bytes(&bytes),
                None => raw,
            },
            Ok(s) if !s.is_empty() => s,
            _ => raw,
        }
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn mask(&self) -> Option<(&str, u32)> {
        self.mask.as_ref().map(|(s, id)| (s.as_str(), *id))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

/// The bytes a byte-level BPE token stands for (GPT-2's alphabet: printable
/// bytes as themselves, the others as U+0100 onwards in byte order); `None`
/// for a token outside that alphabet.
fn byte_level_bytes(token: &str) -> Option<Vec<u8>> {
    let printable = |b: u8| matches!(b, 33..=126 | 161..=172 | 174..=255);
    let mut shifted = [0u8; 68];
    let mut n = 0;
    for b in 0..=255u8 {
        if !printable(b) {
            shifted[n] = b;
            n += 1;
        }
    }
    token
        .chars()
        .map(|c| match u32::from(c) {
            x @ 0..=255 if printable(x as u8) => Some(x as u8),
            x @ 256..=323 => Some(shifted[(x - 256) as usize]),
            _ => None,
        })
        .collect()
}

/// Bytes as text: whole UTF-8 characters as themselves, other bytes as `<0xNN>`.
fn show_bytes(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("<0x{b:02X}>"));
        }
    }
    out
}

fn wp_lookup(wp: &WordPiece, token: &str) -> Option<u32> {
    use tokenizers::Model;
    wp.token_to_id(token)
}

/// Without a `tokenizer_config.json`, a vocabulary with no capitalised word is an
/// uncased model's.
fn guess_lowercase(dir: &Path, vocab: &Path) -> bool {
    if dir.to_string_lossy().contains("uncased") {
        return true;
    }
    match std::fs::read_to_string(vocab) {
        Ok(v) => !v
            .lines()
            .filter(|l| !l.starts_with('[') && !l.starts_with("##"))
            .any(|l| l.chars().next().is_some_and(char::is_uppercase)),
        Err(_) => false,
    }
}

pub(crate) fn read_json_opt(path: &Path) -> Result<Option<serde_json::Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::bad_model(path, format!("not valid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_tokens_map_back_to_their_bytes() {
        // `Ġ` is the space, `Ã` and `©` are the two bytes of `é`.
        assert_eq!(byte_level_bytes("ĠParis").unwrap(), b" Paris");
        assert_eq!(byte_level_bytes("Ã©").unwrap(), "é".as_bytes());
        assert_eq!(byte_level_bytes("Ċ").unwrap(), b"\n");
        assert!(byte_level_bytes("日").is_none());
    }

    #[test]
    fn partial_characters_show_as_bytes() {
        assert_eq!(show_bytes("é".as_bytes()), "é");
        assert_eq!(show_bytes(&[0xC3]), "<0xC3>");
        assert_eq!(show_bytes(&[b' ', 0xE2, 0x80]), " <0xE2><0x80>");
    }
}
