//! How a model's numbers are held and computed.
//!
//! A checkpoint is held at the precision it is distributed in (a bf16 model
//! stays bf16: resident memory ≈ its files) while activations, probabilities
//! and IG sums are computed in f32: each large matrix is converted to the
//! compute dtype where it is used, one at a time. A bf16 file computed in f32
//! this way gives exactly what `transformers` gives loading it in f32. Small
//! tensors (norm gains, biases) are held in the compute dtype.

use tch::Kind;

/// What the large matrices of a checkpoint are held in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// The file's own dtype when the compute is f32 (f32, bf16 or f16);
    /// the compute dtype otherwise.
    AsDistributed,
    /// This dtype, whatever the file's.
    Held(Kind),
}

/// A model's storage and compute precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precision {
    pub storage: Storage,
    /// Activations, attention, probabilities, IG sums.
    pub compute: Kind,
}

impl Default for Precision {
    fn default() -> Self {
        Precision {
            storage: Storage::AsDistributed,
            compute: Kind::Float,
        }
    }
}

impl Precision {
    /// Everything in `kind`: weights and activations.
    pub fn uniform(kind: Kind) -> Precision {
        Precision {
            storage: Storage::Held(kind),
            compute: kind,
        }
    }

    /// The dtype a tensor of `dims` dimensions stored as `file` is held in.
    pub fn held(&self, file: Kind, dims: usize) -> Kind {
        if dims < 2 {
            return self.compute;
        }
        match self.storage {
            Storage::Held(k) => k,
            Storage::AsDistributed
                if self.compute == Kind::Float
                    && matches!(file, Kind::Float | Kind::BFloat16 | Kind::Half) =>
            {
                file
            }
            Storage::AsDistributed => self.compute,
        }
    }

    pub fn check(&self) -> crate::Result<()> {
        let ok = |k: Kind| matches!(k, Kind::Float | Kind::BFloat16 | Kind::Half);
        let storage_ok = match self.storage {
            Storage::Held(k) => ok(k),
            Storage::AsDistributed => true,
        };
        if ok(self.compute) && storage_ok {
            Ok(())
        } else {
            Err(crate::Error::InvalidArgument(format!(
                "precision {self:?}: use f32, bf16 or f16"
            )))
        }
    }
}

/// What a loaded model's weights are held in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The dtype of most of the bytes (the matrices).
    pub storage: Kind,
    /// Bytes of the weights held (a tied head counted once).
    pub bytes: u64,
    /// Whether some tensor is held in a narrower dtype than its file's, so
    /// that the numbers are not the checkpoint's own.
    pub rounded: bool,
}

/// Whether converting `from` to `to` can change a value.
pub fn rounds(from: Kind, to: Kind) -> bool {
    let rank = |k: Kind| match k {
        Kind::Double => 3,
        Kind::Float => 2,
        Kind::BFloat16 | Kind::Half => 1,
        _ => 0,
    };
    from != to && rank(to) <= rank(from)
}

pub fn bytes(kind: Kind) -> u64 {
    match kind {
        Kind::Double | Kind::Int64 => 8,
        Kind::Float | Kind::Int => 4,
        Kind::Half | Kind::BFloat16 | Kind::Int16 => 2,
        _ => 1,
    }
}

/// `f32`, `bf16`, `f16` (what the command line and the API call them).
pub fn name(kind: Kind) -> &'static str {
    match kind {
        Kind::Float => "f32",
        Kind::BFloat16 => "bf16",
        Kind::Half => "f16",
        Kind::Double => "f64",
        _ => "other",
    }
}
