//! Reading a checkpoint: `config.json` with errors that name the key, and the
//! named tensors with their shapes checked as each architecture takes them.

use super::precision::{self, Held, Precision};
use super::shards::{Entry, Shards};
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

pub(crate) fn read_config(dir: &Path) -> Result<serde_json::Value> {
    crate::tokenizer::read_json_opt(&dir.join("config.json"))?
        .ok_or_else(|| Error::bad_model(dir, "no config.json: not a Hugging Face model directory"))
}

/// `config.json` read into an architecture's typed config; a key of the wrong
/// type is an error that names it.
pub(crate) fn parse_config<T: serde::de::DeserializeOwned>(
    json: &serde_json::Value,
    path: &Path,
) -> Result<T> {
    serde_path_to_error::deserialize(json).map_err(|e| {
        // A missing top-level key has the path `.`: the message names it.
        let at = e.path().to_string();
        let message = if at == "." {
            e.inner().to_string()
        } else {
            format!("`{at}`: {}", e.inner())
        };
        Error::bad_model(path, format!("config.json: {message}"))
    })
}

/// `d / heads`, the width of a head; an error naming both keys when `d` is
/// not a multiple of `heads` (or `heads` is 0).
pub(crate) fn head_dim(
    path: &Path,
    (d, d_key): (i64, &str),
    (heads, heads_key): (i64, &str),
) -> Result<i64> {
    if heads <= 0 || d % heads != 0 {
        return Err(Error::bad_model(
            path,
            format!("{d_key} is not a multiple of {heads_key}"),
        ));
    }
    Ok(d / heads)
}

/// Typed access to `config.json` with errors that name the key.
pub(crate) struct Config<'a> {
    pub json: &'a serde_json::Value,
    pub path: &'a Path,
}

impl Config<'_> {
    pub fn usize(&self, keys: &[&str]) -> Result<usize> {
        keys.iter()
            .find_map(|k| self.json.get(k).and_then(|v| v.as_u64()))
            .map(|v| v as usize)
            .filter(|&v| v > 0)
            .ok_or_else(|| {
                Error::bad_model(
                    self.path,
                    format!(
                        "config.json: `{}` is missing or not a positive integer",
                        keys[0]
                    ),
                )
            })
    }

    pub fn usize_or(&self, keys: &[&str], default: usize) -> usize {
        keys.iter()
            .find_map(|k| self.json.get(k).and_then(|v| v.as_u64()))
            .map_or(default, |v| v as usize)
    }

    pub fn f64_or(&self, key: &str, default: f64) -> f64 {
        self.json
            .get(key)
            .and_then(|v| v.as_f64())
            .unwrap_or(default)
    }

    pub fn str_or<'b>(&'b self, key: &str, default: &'b str) -> &'b str {
        self.json
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or(default)
    }
}

/// A tensor not yet taken: where it lies in a shard, or (GGUF, already
/// dequantised) in memory.
enum Stored {
    InFile(Entry),
    InMemory(Tensor),
}

impl Stored {
    fn shape(&self) -> Vec<i64> {
        match self {
            Stored::InFile(e) => e.shape.clone(),
            Stored::InMemory(t) => t.size(),
        }
    }
    fn kind(&self) -> Kind {
        match self {
            Stored::InFile(e) => e.kind,
            Stored::InMemory(t) => t.kind(),
        }
    }
}

/// Named tensors of a checkpoint, handed out once each with a shape check, in
/// the precision [`Precision`] says, on the device. Shards are read a tensor at
/// a time as the runtime takes them ([`Shards`]).
pub(crate) struct Weights {
    map: HashMap<String, Stored>,
    shards: Shards,
    path: PathBuf,
    device: Device,
    precision: Precision,
    /// Bytes held, by dtype, of what has been taken.
    held: HashMap<Kind, u64>,
    /// Whether a tensor was taken in a narrower dtype than its file's.
    rounded: bool,
}

impl Weights {
    /// The weight files of a Hugging Face directory: `model.safetensors`, or
    /// the shards of its index in name order.
    pub fn files(dir: &Path) -> Result<Vec<PathBuf>> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if single.exists() {
            vec![single.clone()]
        } else if index.exists() {
            let idx = crate::tokenizer::read_json_opt(&index)?.unwrap_or_default();
            let mut shards: Vec<PathBuf> = idx
                .get("weight_map")
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.values()
                        .filter_map(|v| v.as_str())
                        .map(|s| dir.join(s))
                        .collect()
                })
                .unwrap_or_default();
            shards.sort();
            shards.dedup();
            shards
        } else if dir.join("pytorch_model.bin").exists() {
            return Err(Error::bad_model(
                dir,
                "only pytorch_model.bin is present; kn reads safetensors (convert with transformers: model.save_pretrained(dir, safe_serialization=True))",
            ));
        } else {
            return Err(Error::bad_model(
                dir,
                "no model.safetensors (or sharded index) found",
            ));
        };
        if files.is_empty() {
            return Err(Error::bad_model(&index, "the index lists no weight files"));
        }
        Ok(files)
    }

    /// The tensors of `files` (safetensors), read when taken.
    pub fn from_files(files: &[PathBuf], device: Device, precision: Precision) -> Result<Self> {
        let (shards, index) = Shards::open(files)?;
        let map = index
            .into_iter()
            .map(|(n, e)| (n, Stored::InFile(e)))
            .collect();
        Ok(Self::new(
            map,
            shards,
            files.first().cloned().unwrap_or_default(),
            device,
            precision,
        ))
    }

    pub fn from_map(
        map: HashMap<String, Tensor>,
        path: PathBuf,
        device: Device,
        precision: Precision,
    ) -> Self {
        let map = map
            .into_iter()
            .map(|(n, t)| (n, Stored::InMemory(t)))
            .collect();
        Self::new(map, Shards::none(), path, device, precision)
    }

    fn new(
        map: HashMap<String, Stored>,
        shards: Shards,
        path: PathBuf,
        device: Device,
        precision: Precision,
    ) -> Self {
        Weights {
            map,
            shards,
            path,
            device,
            precision,
            held: HashMap::new(),
            rounded: false,
        }
    }

    /// The dtype activations are computed in (and small tensors held in).
    pub fn kind(&self) -> Kind {
        self.precision.compute
    }

    /// What was held, once every tensor is taken.
    pub fn held(&self) -> Held {
        let storage = self
            .held
            .iter()
            .max_by_key(|(_, &b)| b)
            .map_or(self.precision.compute, |(&k, _)| k);
        Held {
            storage,
            bytes: self.held.values().sum(),
            rounded: self.rounded,
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Take tensor `name`, checking its shape.
    pub fn take(&mut self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let stored = self
            .map
            .remove(name)
            .ok_or_else(|| Error::bad_model(&self.path, format!("tensor `{name}` is missing")))?;
        if stored.shape() != shape {
            return Err(Error::bad_model(
                &self.path,
                format!(
                    "tensor `{name}` has shape {:?}, expected {shape:?}",
                    stored.shape()
                ),
            ));
        }
        let kind = self.precision.held(stored.kind(), shape.len());
        self.rounded |= precision::rounds(stored.kind(), kind);
        let numel: i64 = shape.iter().product();
        *self.held.entry(kind).or_default() += numel as u64 * precision::bytes(kind);
        let t = match stored {
            Stored::InFile(e) => self.shards.read(name, &e, kind)?,
            Stored::InMemory(t) => t.to_kind(kind),
        };
        Ok(t.to(self.device).detach())
    }

    /// Take the first of `names` that exists.
    pub fn take_any(&mut self, names: &[String], shape: &[i64]) -> Result<Tensor> {
        let found = names
            .iter()
            .find(|n| self.map.contains_key(n.as_str()))
            .cloned();
        self.take(found.as_deref().unwrap_or(&names[0]), shape)
    }

    /// Take tensor `name` if it exists (optional biases, tied heads).
    pub fn take_opt(&mut self, name: &str, shape: &[i64]) -> Result<Option<Tensor>> {
        if self.contains(name) {
            self.take(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The unembedding: tensor `name`, or `embed` when the config ties the
    /// two (`tied`); missing and untied is an error naming both.
    pub fn head_or_tied(
        &mut self,
        name: &str,
        shape: &[i64],
        tied: bool,
        embed: &Tensor,
    ) -> Result<Tensor> {
        match self.take_opt(name, shape)? {
            Some(w) => Ok(w),
            None if tied => Ok(embed.shallow_clone()),
            None => Err(Error::bad_model(
                "config.json",
                format!("`{name}` is missing and tie_word_embeddings is false"),
            )),
        }
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Fail on a tensor no layer took: a checkpoint holding weights this
    /// runtime does not read (a bias, a norm, a layer more than the config
    /// says) would otherwise run without them and give other numbers.
    /// `ignored` names what the architecture knowingly leaves: buffers, and
    /// heads the method does not use.
    pub fn finish(&self, ignored: impl Fn(&str) -> bool) -> Result<()> {
        let mut left: Vec<&String> = self.map.keys().filter(|n| !ignored(n)).collect();
        if left.is_empty() {
            return Ok(());
        }
        left.sort();
        let more = if left.len() > 5 {
            format!(" and {} more", left.len() - 5)
        } else {
            String::new()
        };
        let names: Vec<String> = left.iter().take(5).map(|n| format!("`{n}`")).collect();
        Err(Error::bad_model(
            &self.path,
            format!(
                "the checkpoint holds tensors this architecture does not use: {}{more}; \
                 its config may name a variant that is not supported",
                names.join(", ")
            ),
        ))
    }
}
