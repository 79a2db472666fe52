//! Link-time settings that `torch-sys` leaves to the application.
//!
//! * An rpath to libtorch's `lib` folder, so `kn` runs without `LD_LIBRARY_PATH`
//!   (libtorch's own rpaths then find the CUDA runtime wheels beside it).
//! * With `KN_CUDA=1`, force a real dependency on `libtorch_cuda`: nothing in
//!   our code names a symbol from it, so `--as-needed` linkers drop it and
//!   `tch::Cuda::is_available()` would then say no even on a GPU machine.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=KN_CUDA");
    if let Ok(libtorch) = std::env::var("LIBTORCH") {
        let mut dir = PathBuf::from(libtorch);
        if dir.is_relative() {
            // `.cargo/config.toml` gives it relative to the workspace root.
            dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
                .join("..")
                .join(dir);
        }
        let lib = dir.join("lib");
        let lib = lib.canonicalize().unwrap_or(lib);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
    if std::env::var("KN_CUDA").as_deref() == Ok("1") {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
