//! Reads from the device to the host, counted.
//!
//! On a GPU every read of a result (`.to(Cpu)`, `double_value`, `Vec::try_from`
//! of a CUDA tensor) is a copy across the bus and a synchronisation that stalls
//! the queue of kernels behind it: a few large reads keep the device busy where
//! many small ones leave it idle. The engine's hot paths read through
//! [`to_host`], and `kn bench` reports the count per fact, so the number is
//! measured rather than guessed. On the CPU the copy is free but counted all the
//! same: the count is a property of the code path, the same on every device.

use std::sync::atomic::{AtomicU64, Ordering};
use tch::{Device, Tensor};

static READS: AtomicU64 = AtomicU64::new(0);

/// `t` on the host (one counted read).
pub fn to_host(t: &Tensor) -> Tensor {
    READS.fetch_add(1, Ordering::Relaxed);
    t.to_device(Device::Cpu)
}

/// Reads so far in this process (all threads).
pub fn reads() -> u64 {
    READS.load(Ordering::Relaxed)
}
