//! A reader for GGUF, llama.cpp's model container, and dequantisation of the
//! block formats that small published models use.
//!
//! Why our own: the format is small and stable (a header, typed key/value
//! metadata, tensor descriptors, aligned data), and the crates that read it either
//! pull in a whole inference framework or stop at parsing. What we need beyond
//! parsing is dequantisation to f32 of F32, F16, BF16, Q8_0, Q4_0 and Q4_1, which
//! is a few lines per format and easy to test against the `gguf` Python package.
//!
//! Every read is bounds-checked: a truncated or corrupt file gives
//! [`Error::Gguf`] naming what was wrong, never a panic.

use crate::{Error, Result};
use half::{bf16, f16};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// Refuse absurd counts before allocating for them (a corrupt header would
/// otherwise ask for terabytes).
const MAX_COUNT: u64 = 1 << 28;
/// Arrays of arrays nest at most this deep (real files use one level; a
/// corrupt one could otherwise recurse until the stack overflows).
const MAX_DEPTH: usize = 4;
/// Most elements reserved ahead of reading them: counts come from the file,
/// so memory is claimed as elements are actually read, not as promised.
const MAX_PREALLOC: usize = 4096;
/// Largest `general.alignment` accepted.
const MAX_ALIGNMENT: u64 = 1 << 20;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
}

/// The element types of ggml tensors that we can dequantise (others are named
/// in the error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q8_0,
    BF16,
    Other(u32),
}

impl GgmlType {
    fn from_u32(v: u32) -> Self {
        match v {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            8 => GgmlType::Q8_0,
            30 => GgmlType::BF16,
            other => GgmlType::Other(other),
        }
    }

    /// (elements per block, bytes per block)
    fn block(self) -> Option<(u64, u64)> {
        match self {
            GgmlType::F32 => Some((1, 4)),
            GgmlType::F16 | GgmlType::BF16 => Some((1, 2)),
            GgmlType::Q4_0 => Some((32, 18)),
            GgmlType::Q4_1 => Some((32, 20)),
            GgmlType::Q8_0 => Some((32, 34)),
            GgmlType::Other(_) => None,
        }
    }
}

/// One tensor's descriptor. `dims` are in ggml order: `dims[0]` is the
/// fastest-varying (a PyTorch `[out, in]` weight has `dims == [in, out]`).
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    offset: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Shape in PyTorch (row-major, slowest first) order.
    pub fn torch_shape(&self) -> Vec<i64> {
        self.dims.iter().rev().map(|&d| d as i64).collect()
    }
}

/// A GGUF file held in memory.
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    bytes: Vec<u8>,
    data_start: u64,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn err(&self, message: impl Into<String>) -> Error {
        Error::Gguf {
            path: self.path.to_path_buf(),
            message: message.into(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.err(format!(
                "file ends at byte {} while reading {what} (truncated?)",
                self.bytes.len()
            ))),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        Ok(self
            .take(N, what)?
            .try_into()
            .expect("take returned N bytes"))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn count(&mut self, what: &str) -> Result<u64> {
        let n = self.u64(what)?;
        if n > MAX_COUNT {
            return Err(self.err(format!(
                "{what} is {n}, which is not plausible (corrupt file?)"
            )));
        }
        Ok(n)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.count(what)? as usize;
        let raw = self.take(n, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.err(format!("{what} is not UTF-8")))
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>(key)?[0]),
            1 => Value::I8(self.array::<1>(key)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array(key)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(key)?)),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(i32::from_le_bytes(self.array(key)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(key)?)),
            7 => Value::Bool(self.array::<1>(key)?[0] != 0),
            8 => Value::String(self.string(key)?),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(self.err(format!(
                        "metadata `{key}` nests arrays more than {MAX_DEPTH} deep"
                    )));
                }
                let elem = self.u32(key)?;
                let n = self.count(key)?;
                // Each element takes at least one byte: a cheap plausibility check.
                if n as usize > self.bytes.len() - self.pos {
                    return Err(self.err(format!(
                        "array `{key}` claims {n} elements, more than the file holds"
                    )));
                }
                let mut items = Vec::with_capacity((n as usize).min(MAX_PREALLOC));
                for _ in 0..n {
                    items.push(self.value(elem, key, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(i64::from_le_bytes(self.array(key)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(key)?)),
            other => {
                return Err(self.err(format!("metadata `{key}` has unknown value type {other}")))
            }
        })
    }
}

impl GgufFile {
    /// Read and parse a GGUF file (the tensor data is dequantised lazily, per tensor).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::parse(path, bytes)
    }

    pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        let mut c = Cursor {
            bytes: &bytes,
            pos: 0,
            path,
        };
        if c.take(4, "the magic number")? != MAGIC {
            return Err(c.err("it does not start with the magic bytes `GGUF`"));
        }
        let version = c.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(c.err(format!("version {version} is not supported (2 and 3 are)")));
        }
        let n_tensors = c.count("the tensor count")?;
        let n_kv = c.count("the metadata count")?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = c.string("a metadata key")?;
            let ty = c.u32(&key)?;
            let value = c.value(ty, &key, 0)?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::with_capacity((n_tensors as usize).min(MAX_PREALLOC));
        for _ in 0..n_tensors {
            let name = c.string("a tensor name")?;
            let n_dims = c.u32(&name)?;
            if n_dims == 0 || n_dims > 4 {
                return Err(c.err(format!("tensor `{name}` has {n_dims} dimensions")));
            }
            let dims = (0..n_dims)
                .map(|_| c.u64(&name))
                .collect::<Result<Vec<_>>>()?;
            if dims.iter().any(|&d| d == 0 || d > i64::MAX as u64) {
                return Err(c.err(format!("tensor `{name}` has dimensions {dims:?}")));
            }
            let ggml_type = GgmlType::from_u32(c.u32(&name)?);
            let offset = c.u64(&name)?;
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if (1..=MAX_ALIGNMENT).contains(&a) => a,
                _ => {
                    return Err(c.err(format!(
                        "general.alignment is {v:?}; it must be an integer in 1..={MAX_ALIGNMENT}"
                    )))
                }
            },
        };
        let pos = c.pos as u64;
        let data_start = pos
            .div_ceil(alignment)
            .checked_mul(alignment)
            .ok_or_else(|| c.err("the data section starts past any possible end"))?;
        let file = GgufFile {
            path: path.to_path_buf(),
            version,
            metadata,
            tensors,
            bytes,
            data_start,
        };
        for t in &file.tensors {
            file.tensor_bytes(t)?; // every tensor's extent lies inside the file
        }
        Ok(file)
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Gguf {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn require(&self, key: &str) -> Result<&Value> {
        self.get(key)
            .ok_or_else(|| self.err(format!("metadata `{key}` is missing")))
    }

    pub fn require_u64(&self, key: &str) -> Result<u64> {
        self.require(key)?
            .as_u64()
            .ok_or_else(|| self.err(format!("metadata `{key}` is not an integer")))
    }

    pub fn require_str(&self, key: &str) -> Result<&str> {
        self.require(key)?
            .as_str()
            .ok_or_else(|| self.err(format!("metadata `{key}` is not a string")))
    }

    pub fn f64_or(&self, key: &str, default: f64) -> f64 {
        self.get(key).and_then(Value::as_f64).unwrap_or(default)
    }

    /// A string array (`tokenizer.ggml.tokens`, `tokenizer.ggml.merges`).
    pub fn str_array(&self, key: &str) -> Result<Vec<&str>> {
        match self.require(key)? {
            Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| self.err(format!("`{key}` holds a non-string")))
                })
                .collect(),
            _ => Err(self.err(format!("metadata `{key}` is not an array"))),
        }
    }

    /// An integer array (`tokenizer.ggml.token_type`).
    pub fn int_array(&self, key: &str) -> Result<Vec<i64>> {
        match self.require(key)? {
            Value::Array(items) => items
                .iter()
                .map(|v| match *v {
                    Value::I32(x) => Ok(x.into()),
                    _ => v
                        .as_u64()
                        .map(|x| x as i64)
                        .ok_or_else(|| self.err(format!("`{key}` holds a non-integer"))),
                })
                .collect(),
            _ => Err(self.err(format!("metadata `{key}` is not an array"))),
        }
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    fn tensor_bytes(&self, t: &TensorInfo) -> Result<&[u8]> {
        let (per_block, block_bytes) = t.ggml_type.block().ok_or_else(|| {
            self.err(format!(
                "tensor `{}` has ggml type {:?}, which is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1 are)",
                t.name, t.ggml_type
            ))
        })?;
        let n = t
            .dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| self.err(format!("tensor `{}` has an impossible shape", t.name)))?;
        if !n.is_multiple_of(per_block) || !t.dims[0].is_multiple_of(per_block) {
            return Err(self.err(format!(
                "tensor `{}` has {} columns, not a multiple of its block size {per_block}",
                t.name, t.dims[0]
            )));
        }
        let size = (n / per_block)
            .checked_mul(block_bytes)
            .ok_or_else(|| self.err(format!("tensor `{}` has an impossible size", t.name)))?;
        let start = self.data_start.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(size));
        match (start, end) {
            (Some(s), Some(e)) if e <= self.bytes.len() as u64 => {
                Ok(&self.bytes[s as usize..e as usize])
            }
            _ => Err(self.err(format!(
                "tensor `{}` lies past the end of the file ({} bytes; truncated?)",
                t.name,
                self.bytes.len()
            ))),
        }
    }

    /// Dequantise a tensor to f32, in ggml's element order.
    pub fn dequantize(&self, t: &TensorInfo) -> Result<Vec<f32>> {
        let raw = self.tensor_bytes(t)?;
        Ok(dequantize(t.ggml_type, raw))
    }

    /// A tensor as a libtorch f32 tensor in PyTorch shape.
    pub fn tensor(&self, name: &str) -> Result<tch::Tensor> {
        let t = self
            .tensor_info(name)
            .ok_or_else(|| self.err(format!("tensor `{name}` is missing")))?;
        let data = self.dequantize(t)?;
        Ok(tch::Tensor::from_slice(&data).reshape(t.torch_shape()))
    }
}

/// Dequantise raw ggml data whose length has been checked against its type.
pub fn dequantize(ty: GgmlType, raw: &[u8]) -> Vec<f32> {
    let f16_at = |b: &[u8], i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
    match ty {
        GgmlType::F32 => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        GgmlType::F16 => raw.chunks_exact(2).map(|b| f16_at(b, 0)).collect(),
        GgmlType::BF16 => raw
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        GgmlType::Q8_0 => {
            let mut out = Vec::with_capacity(raw.len() / 34 * 32);
            for block in raw.chunks_exact(34) {
                let d = f16_at(block, 0);
                out.extend(block[2..].iter().map(|&q| (q as i8) as f32 * d));
            }
            out
        }
        // 4-bit blocks: byte j holds element j in its low nibble and element
        // j + 16 in its high nibble.
        GgmlType::Q4_0 => {
            let mut out = vec![0f32; raw.len() / 18 * 32];
            for (block, dst) in raw.chunks_exact(18).zip(out.chunks_exact_mut(32)) {
                let d = f16_at(block, 0);
                for (j, &q) in block[2..].iter().enumerate() {
                    dst[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
                    dst[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
                }
            }
            out
        }
        GgmlType::Q4_1 => {
            let mut out = vec![0f32; raw.len() / 20 * 32];
            for (block, dst) in raw.chunks_exact(20).zip(out.chunks_exact_mut(32)) {
                let d = f16_at(block, 0);
                let m = f16_at(block, 2);
                for (j, &q) in block[4..].iter().enumerate() {
                    dst[j] = (q & 0x0f) as f32 * d + m;
                    dst[j + 16] = (q >> 4) as f32 * d + m;
                }
            }
            out
        }
        GgmlType::Other(_) => unreachable!("unsupported types are refused in tensor_bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_1_block_layout() {
        // d = 0.5, m = -1.0, nibbles: low j, high 15 - j.
        let mut block = Vec::new();
        block.extend(f16::from_f32(0.5).to_le_bytes());
        block.extend(f16::from_f32(-1.0).to_le_bytes());
        block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let out = dequantize(GgmlType::Q4_1, &block);
        assert_eq!(out[0], -1.0);
        assert_eq!(out[15], 15.0 * 0.5 - 1.0);
        assert_eq!(out[16], 15.0 * 0.5 - 1.0);
        assert_eq!(out[31], -1.0);
    }

    #[test]
    fn q8_0_is_signed() {
        let mut block = Vec::new();
        block.extend(f16::from_f32(0.25).to_le_bytes());
        block.extend((0..32).map(|j: i32| (j - 16) as i8 as u8));
        let out = dequantize(GgmlType::Q8_0, &block);
        assert_eq!(out[0], -4.0);
        assert_eq!(out[31], 3.75);
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        let p = Path::new("x.gguf");
        let e = GgufFile::parse(p, b"NOPE".to_vec()).err().unwrap();
        assert!(e.to_string().contains("magic"), "{e}");
        let e = GgufFile::parse(p, b"GGUF\x03\0\0\0".to_vec())
            .err()
            .unwrap();
        assert!(e.to_string().contains("truncated"), "{e}");
        let mut huge = b"GGUF\x03\0\0\0".to_vec();
        huge.extend(u64::MAX.to_le_bytes());
        huge.extend(0u64.to_le_bytes());
        let e = GgufFile::parse(p, huge).err().unwrap();
        assert!(e.to_string().contains("not plausible"), "{e}");
    }

    /// A small but complete GGUF file: metadata of every type (nested arrays
    /// too) and one tensor of every supported ggml type.
    fn sample_file() -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s.as_bytes());
        }
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        let tensors: [(&str, u32, u64); 6] = [
            ("f32", 0, 4),
            ("f16", 1, 2),
            ("q4_0", 2, 18),
            ("q4_1", 3, 20),
            ("q8_0", 8, 34),
            ("bf16", 30, 2),
        ];
        b.extend((tensors.len() as u64).to_le_bytes());
        b.extend(5u64.to_le_bytes());
        string(&mut b, "general.architecture");
        b.extend(8u32.to_le_bytes());
        string(&mut b, "llama");
        string(&mut b, "llama.block_count");
        b.extend(4u32.to_le_bytes());
        b.extend(2u32.to_le_bytes());
        string(&mut b, "f");
        b.extend(12u32.to_le_bytes());
        b.extend(1.5f64.to_le_bytes());
        string(&mut b, "tokens");
        b.extend(9u32.to_le_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        string(&mut b, "a");
        string(&mut b, "bc");
        string(&mut b, "nested");
        b.extend(9u32.to_le_bytes());
        b.extend(9u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(5u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend(7i32.to_le_bytes());
        b.extend((-7i32).to_le_bytes());
        let mut offset = 0u64;
        let mut sizes = Vec::new();
        for (name, ty, block) in tensors {
            string(&mut b, name);
            b.extend(2u32.to_le_bytes());
            b.extend(32u64.to_le_bytes());
            b.extend(2u64.to_le_bytes());
            b.extend(ty.to_le_bytes());
            b.extend(offset.to_le_bytes());
            let per_block = if block == 4 || block == 2 { 1 } else { 32 };
            let size = 64 / per_block * block;
            sizes.push(size);
            offset += size.div_ceil(32) * 32;
        }
        while !b.len().is_multiple_of(32) {
            b.push(0);
        }
        for size in sizes {
            let start = b.len();
            b.extend((0..size).map(|i| (i * 7 % 251) as u8));
            b.resize(start + (size.div_ceil(32) * 32) as usize, 0);
        }
        b
    }

    fn read_everything(bytes: Vec<u8>) -> Result<usize> {
        let f = GgufFile::parse(Path::new("fuzz.gguf"), bytes)?;
        let mut n = 0;
        for t in &f.tensors {
            n += f.dequantize(t)?.len();
            let _ = t.torch_shape();
        }
        let _ = (
            f.str_array("tokens"),
            f.int_array("nested"),
            f.require_u64("llama.block_count"),
        );
        Ok(n)
    }

    #[test]
    fn deep_arrays_and_huge_counts_are_refused_without_recursing_or_allocating() {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(4u64.to_le_bytes());
        b.extend(b"deep");
        b.extend(9u32.to_le_bytes());
        for _ in 0..100_000 {
            b.extend(9u32.to_le_bytes());
            b.extend(1u64.to_le_bytes());
        }
        let e = GgufFile::parse(Path::new("deep.gguf"), b).err().unwrap();
        assert!(e.to_string().contains("nests arrays"), "{e}");
        // 2^28 tensors promised, none there: an error, not 16 GiB reserved.
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend((1u64 << 28).to_le_bytes());
        b.extend(0u64.to_le_bytes());
        let e = GgufFile::parse(Path::new("many.gguf"), b).err().unwrap();
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn the_sample_file_reads_back() {
        let n = read_everything(sample_file()).unwrap();
        assert_eq!(n, 6 * 64);
    }

    /// The reader's promise, held over mutated files: whatever the bytes, an
    /// error or a result, never a panic, an abort or a runaway allocation.
    #[test]
    fn mutated_headers_never_panic() {
        use rand::{Rng, SeedableRng};
        let base = sample_file();
        let header_end = base.len() - 6 * 64;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut ok, mut refused) = (0, 0);
        for round in 0..20_000 {
            let mut b = base.clone();
            let at = rng.random_range(4..header_end);
            match round % 6 {
                // Flip a few bits in the header.
                0 => {
                    for _ in 0..rng.random_range(1..4) {
                        let i = rng.random_range(4..header_end);
                        b[i] ^= 1 << rng.random_range(0..8);
                    }
                }
                // A big or boundary number where a count, length or type may be.
                1 | 2 => {
                    let v: u64 = *[
                        u64::MAX,
                        1 << 28,
                        (1 << 28) + 1,
                        1 << 40,
                        0,
                        9,
                        12,
                        13,
                        i64::MAX as u64,
                    ]
                    .get(rng.random_range(0..9))
                    .unwrap();
                    let end = (at + 8).min(b.len());
                    b[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
                }
                // Truncated anywhere.
                3 => b.truncate(rng.random_range(0..base.len())),
                // Arrays of arrays, very deep.
                4 => {
                    let mut deep = b[..at].to_vec();
                    for _ in 0..10_000 {
                        deep.extend(9u32.to_le_bytes());
                        deep.extend(1u64.to_le_bytes());
                    }
                    b = deep;
                }
                // A random byte string after the magic.
                _ => {
                    let n = rng.random_range(0..200);
                    b.truncate(8);
                    b.extend((0..n).map(|_| rng.random::<u8>()));
                }
            }
            match std::panic::catch_unwind(|| read_everything(b)) {
                Ok(Ok(_)) => ok += 1,
                Ok(Err(_)) => refused += 1,
                Err(_) => panic!("round {round}: the reader panicked"),
            }
        }
        assert!(refused > 10_000 && ok > 0, "{ok} read, {refused} refused");
    }
}
