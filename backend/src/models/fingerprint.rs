//! The identity of a model's weights, the same on every device.
//!
//! Results, edit sets and experiment runs are keyed by it, so it must not
//! depend on where or how the model runs: a permalink made on a laptop must
//! reopen on a GPU server. It is therefore a SHA-256 of the checkpoint's bytes
//! (every weight file, and the files that define the tokenizer and the
//! architecture), read from disk at load, never a sum computed on the model's
//! device (whose order of additions differs between CUDA and CPU thread
//! counts). What we do with those bytes (dequantising GGUF blocks, renaming
//! tensors) is deterministic code; [`LOADER_VERSION`] names it, and changing
//! that code in a way that changes the weights must bump it.
//!
//! Paths and file names are not hashed (a renamed or moved copy of the same
//! checkpoint is the same model); each file is hashed under its role.

use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bump when the loaders turn the same bytes into other weights.
pub const LOADER_VERSION: &str = "kn-weights-1";

/// Files of a Hugging Face directory that decide tokens or architecture.
const DIR_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
];

/// What the fingerprint covers: `(role, file)` pairs in a fixed order.
pub fn parts(weights: &[PathBuf], dir: Option<&Path>) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = weights
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("weights[{i}]"), p.clone()))
        .collect();
    if let Some(dir) = dir {
        for name in DIR_FILES {
            let p = dir.join(name);
            if p.is_file() {
                out.push(((*name).to_string(), p));
            }
        }
    }
    out
}

/// SHA-256 over the loader version and every part's role, length and bytes.
pub fn digest(parts: &[(String, PathBuf)]) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(LOADER_VERSION.as_bytes());
    h.update([0]);
    let mut buf = vec![0u8; 1 << 20];
    for (role, path) in parts {
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        h.update(role.as_bytes());
        h.update([0]);
        h.update(len.to_le_bytes());
        loop {
            let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(h.finalize().into())
}

/// The fingerprint's text: the shapes a reader recognises, then 16 bytes of
/// the digest (`llama-30x1536-d576-v49152-sha256:…`).
pub fn format(config: &super::ModelConfig, digest: &[u8; 32]) -> String {
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{:?}-{}x{}-d{}-v{}-sha256:{hex}",
        config.arch, config.n_layers, config.d_ff, config.d_model, config.vocab_size
    )
    .to_lowercase()
}
