//! Choosing where the model runs: CUDA when there is a GPU, else the CPU.

use crate::{Error, Result};
use tch::Device;

/// The `--device` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DeviceChoice {
    /// CUDA if libtorch sees a GPU, otherwise the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl DeviceChoice {
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            DeviceChoice::Cuda => Err(Error::CudaUnavailable),
        }
    }
}

/// Human-readable device name for logs and API responses.
/// Whether f32 matrix products on CUDA may use TF32 (`kn --tf32`, or
/// TORCH_ALLOW_TF32_CUBLAS_OVERRIDE set in the environment).
pub fn tf32() -> bool {
    std::env::var("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE").is_ok_and(|v| v == "1")
}

pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Reset the kernel's peak-RSS counter (Linux), so a measurement's peak is its own.
pub fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// This process's peak resident memory since start or the last reset, in MiB
/// (Linux; 0 elsewhere).
pub fn peak_memory_mib() -> f64 {
    status_mib("VmHWM:")
}

/// This process's resident memory now, in MiB (Linux; 0 elsewhere).
pub fn memory_mib() -> f64 {
    status_mib("VmRSS:")
}

fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The dense f32 matrix-multiply throughput this process gets on `device`, in
/// FLOP/s: square products (2048 on the CPU, 8192 on a GPU) repeated for about
/// a second after a warm-up, the fastest one counted (a peak: the mean over
/// the second moved by a factor of two with whatever else the machine ran,
/// and put some runs above "100% of peak"). The honest ceiling for
/// attribution, which is nearly all matrix products.
pub fn matmul_peak(device: Device) -> f64 {
    matmul_peak_of(device, tch::Kind::Float)
}

/// [`matmul_peak`] for matrices of `kind` (bf16 and f16 have peaks of their own).
pub fn matmul_peak_of(device: Device, kind: tch::Kind) -> f64 {
    // f16 products on a CPU run without vector kernels (about 0.5 GFLOP/s
    // here): a smaller matrix keeps the measurement near a second.
    let n: i64 = match (device.is_cuda(), kind) {
        (true, _) => 8192,
        (false, tch::Kind::Half) => 512,
        (false, _) => 2048,
    };
    let opts = (kind, device);
    let (a, b) = (
        tch::Tensor::randn([n, n], opts),
        tch::Tensor::randn([n, n], opts),
    );
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    tch::no_grad(|| {
        let _ = a.matmul(&b);
        sync();
        let flop = 2.0 * (n as f64).powi(3);
        let t0 = std::time::Instant::now();
        let (mut runs, mut best) = (0u32, 0f64);
        while t0.elapsed().as_secs_f64() < 1.0 || runs < 3 {
            let t = std::time::Instant::now();
            let _ = a.matmul(&b);
            sync();
            best = best.max(flop / t.elapsed().as_secs_f64());
            runs += 1;
        }
        best
    })
}
