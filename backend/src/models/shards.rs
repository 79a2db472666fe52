//! Safetensors shards read one tensor at a time, when a runtime takes it.
//!
//! libtorch's reader (`Tensor::read_safetensors`) reads a whole file into
//! memory and then copies every tensor out of it, so loading peaked at twice
//! the weights (measured: 5.0 GB for a 2.5 GB bf16 checkpoint). Here only the
//! header is parsed up front; a tensor's bytes are read with positioned reads,
//! a bounded chunk at a time, straight into the tensor that keeps them (in the
//! dtype it is held in), so loading peaks at the weights held plus one chunk.
//! Nothing is memory-mapped: mapped pages would count as the process's
//! resident memory on top of the copies.

use super::precision::bytes;
use crate::{Error, Result};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// The most bytes read into the staging buffer at once. Small on purpose:
/// glibc raises its mmap threshold to the size of a freed mapped block, so
/// large staging blocks would send the weights' own smaller tensors to the
/// heap between their freed holes (measured on a 2.4 GB checkpoint: 16 MiB
/// chunks peaked 0.2–0.5 GB above the weights and runtime, 1 MiB 0.05–0.1).
const CHUNK: usize = 1 << 20;

/// A tensor's place in a shard.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    shard: usize,
    /// Byte offset of its first element in the file.
    start: u64,
    pub kind: Kind,
    pub shape: Vec<i64>,
}

/// The open shards and where each tensor lies in them.
pub(crate) struct Shards {
    files: Vec<(PathBuf, File)>,
}

/// One tensor as a safetensors header describes it.
#[derive(serde::Deserialize)]
struct Described {
    dtype: String,
    shape: Vec<i64>,
    data_offsets: [u64; 2],
}

impl Shards {
    /// No files (tensors handed over in memory).
    pub fn none() -> Shards {
        Shards { files: Vec::new() }
    }

    /// Open `files` and read their headers.
    pub fn open(files: &[PathBuf]) -> Result<(Shards, HashMap<String, Entry>)> {
        let mut opened = Vec::with_capacity(files.len());
        let mut index = HashMap::new();
        for (shard, path) in files.iter().enumerate() {
            let file = File::open(path).map_err(|e| {
                let what = if path.exists() {
                    format!("cannot open: {e}")
                } else {
                    "weight shard listed in the index is missing".to_string()
                };
                Error::bad_model(path, what)
            })?;
            for (name, entry) in header(path, &file, shard)? {
                index.insert(name, entry);
            }
            opened.push((path.clone(), file));
        }
        Ok((Shards { files: opened }, index))
    }

    /// Read `e` into a new CPU tensor of `kind` (converted chunk by chunk).
    pub fn read(&self, name: &str, e: &Entry, kind: Kind) -> Result<Tensor> {
        let (path, file) = self.files.get(e.shard).ok_or_else(|| {
            Error::bad_model(
                "safetensors",
                format!("tensor `{name}`: no shard {}", e.shard),
            )
        })?;
        let fail = |m: String| Error::bad_model(path, format!("tensor `{name}`: {m}"));
        let size = bytes(e.kind) as usize;
        let numel: i64 = e.shape.iter().product();
        let out = Tensor::f_empty(&e.shape[..], (kind, tch::Device::Cpu))
            .map_err(|x| fail(x.to_string()))?;
        let flat = out.view([numel]);
        let per_chunk = (CHUNK / size).max(1) as i64;
        let mut buf = Vec::new();
        let mut done = 0i64;
        while done < numel {
            let n = per_chunk.min(numel - done);
            buf.resize(n as usize * size, 0u8);
            file.read_exact_at(&mut buf, e.start + (done as u64) * size as u64)
                .map_err(|x| fail(format!("cannot read: {x}")))?;
            let part =
                Tensor::f_from_data_size(&buf, &[n], e.kind).map_err(|x| fail(x.to_string()))?;
            flat.narrow(0, done, n)
                .f_copy_(&part)
                .map_err(|x| fail(x.to_string()))?;
            done += n;
        }
        Ok(out)
    }
}

/// The tensors of one shard's header, checked against the file's length.
fn header(path: &Path, file: &File, shard: usize) -> Result<Vec<(String, Entry)>> {
    let bad = |m: String| Error::bad_model(path, format!("not a safetensors file: {m}"));
    let len = file.metadata().map_err(|e| bad(e.to_string()))?.len();
    let mut n = [0u8; 8];
    file.read_exact_at(&mut n, 0)
        .map_err(|e| bad(format!("no header ({e})")))?;
    let n = u64::from_le_bytes(n);
    if n > (100 << 20) || 8 + n > len {
        return Err(bad(format!("a header of {n} bytes in a file of {len}")));
    }
    let mut text = vec![0u8; n as usize];
    file.read_exact_at(&mut text, 8)
        .map_err(|e| bad(e.to_string()))?;
    let mut described: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&text).map_err(|e| bad(format!("header: {e}")))?;
    described.remove("__metadata__");
    let data = 8 + n;
    described
        .into_iter()
        .map(|(name, v)| {
            let d: Described =
                serde_json::from_value(v).map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
            let kind = kind_of(&d.dtype)
                .ok_or_else(|| bad(format!("tensor `{name}`: dtype {} is not read", d.dtype)))?;
            let [s, e] = d.data_offsets;
            let numel = d.shape.iter().try_fold(1u64, |a, &x| {
                u64::try_from(x).ok().and_then(|x| a.checked_mul(x))
            });
            let fits = numel
                .and_then(|k| k.checked_mul(bytes(kind)))
                .is_some_and(|bytes| e >= s && e - s == bytes && data + e <= len);
            if !fits {
                return Err(bad(format!(
                    "tensor `{name}`: offsets {s}..{e} do not hold {:?} {}",
                    d.shape, d.dtype
                )));
            }
            let entry = Entry {
                shard,
                start: data + s,
                kind,
                shape: d.shape,
            };
            Ok((name, entry))
        })
        .collect()
}

fn kind_of(dtype: &str) -> Option<Kind> {
    Some(match dtype {
        "F64" => Kind::Double,
        "F32" => Kind::Float,
        "F16" => Kind::Half,
        "BF16" => Kind::BFloat16,
        "I64" => Kind::Int64,
        "I32" => Kind::Int,
        "I16" => Kind::Int16,
        "I8" => Kind::Int8,
        "U8" => Kind::Uint8,
        "BOOL" => Kind::Bool,
        _ => return None,
    })
}
