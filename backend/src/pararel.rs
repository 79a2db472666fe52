//! ParaRel as the paper uses it (SPEC: "The data"): the 34 relations with at
//! least four templates, facts from the authors' `query_pairs.json`, templates
//! from `raw_data/patterns/`, labels and types from LAMA's `relations.jsonl`.
//! A prompt is a template with `[X]` replaced by the subject and `[Y]` by the
//! blank (`[MASK]`).

use crate::cloze::BLANK;
use crate::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
pub struct Fact {
    pub subject: String,
    pub object: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Relation {
    /// Wikidata id, e.g. `P36`.
    pub id: String,
    /// E.g. `capital`.
    pub label: String,
    /// `1-1`, `N-1` or `N-M`.
    pub kind: String,
    pub templates: Vec<String>,
    pub facts: Vec<Fact>,
}

impl Relation {
    /// The fact's prompts, one per template.
    pub fn prompts(&self, fact: &Fact) -> Vec<String> {
        self.templates
            .iter()
            .map(|t| fill(t, &fact.subject))
            .collect()
    }

    /// Templates a causal model can use: the blank ends the sentence.
    pub fn causal_templates(&self) -> Vec<&String> {
        self.templates.iter().filter(|t| blank_ends(t)).collect()
    }
}

/// `[X]` → subject, `[Y]` → `[MASK]`.
pub fn fill(template: &str, subject: &str) -> String {
    template.replace("[X]", subject).replace("[Y]", BLANK)
}

/// Whether only whitespace and a final `.`, `!` or `?` follow `[Y]`.
pub fn blank_ends(template: &str) -> bool {
    template
        .split_once("[Y]")
        .is_some_and(|(_, after)| matches!(after.trim(), "" | "." | "!" | "?"))
}

pub struct ParaRel {
    pub dir: PathBuf,
    pub relations: Vec<Relation>,
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

fn data_err(path: &Path, line: Option<usize>, message: impl std::fmt::Display) -> Error {
    match line {
        Some(l) => Error::Data(format!("{}:{l}: {message}", path.display())),
        None => Error::Data(format!("{}: {message}", path.display())),
    }
}

/// Lines of a JSON-lines file, parsed, with errors naming file and line.
fn jsonl(path: &Path) -> Result<Vec<serde_json::Value>> {
    read(path)?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| data_err(path, Some(i + 1), format!("not valid JSON: {e}")))
        })
        .collect()
}

impl ParaRel {
    /// The data folder: `--data DIR`, else `KN_DATA`, else the repository's
    /// own `data/` (found from the working directory or from where `kn` was
    /// built).
    pub fn default_dir() -> PathBuf {
        if let Ok(d) = std::env::var("KN_DATA") {
            return PathBuf::from(d);
        }
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data");
        [PathBuf::from("data"), repo.clone()]
            .into_iter()
            .find(|p| p.join("kn-official").is_dir())
            .unwrap_or(repo)
    }

    /// Load from a data folder holding `kn-official/`.
    pub fn load(dir: &Path) -> Result<Self> {
        let root = dir.join("kn-official");
        if !root.is_dir() {
            return Err(Error::Data(format!(
                "{}: no kn-official/ folder here; give the ParaRel data folder with --data DIR (the repository's data/ folder, or KN_DATA)",
                dir.display()
            )));
        }
        let pairs_path = root.join("PARAREL/query_pairs.json");
        let pairs: BTreeMap<String, Vec<Vec<String>>> = serde_json::from_str(&read(&pairs_path)?)
            .map_err(|e| {
            data_err(
                &pairs_path,
                Some(e.line()),
                format!("expected {{relation: [[subject, object], …]}}: {e}"),
            )
        })?;
        let rel_path = root.join("LAMA/raw_data/relations.jsonl");
        let mut meta: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (i, v) in jsonl(&rel_path)?.into_iter().enumerate() {
            let get = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
            let (Some(id), Some(label), Some(kind)) = (get("relation"), get("label"), get("type"))
            else {
                return Err(data_err(
                    &rel_path,
                    Some(i + 1),
                    "needs `relation`, `label` and `type`",
                ));
            };
            meta.insert(id, (label, kind));
        }
        let mut relations = Vec::new();
        for (id, facts) in pairs {
            let pat_path = root.join(format!("PARAREL/raw_data/patterns/{id}.jsonl"));
            let templates = jsonl(&pat_path)?
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    let p = v
                        .get("pattern")
                        .and_then(|p| p.as_str())
                        .ok_or_else(|| data_err(&pat_path, Some(i + 1), "no `pattern`"))?;
                    if !p.contains("[X]") || !p.contains("[Y]") {
                        return Err(data_err(
                            &pat_path,
                            Some(i + 1),
                            format!("pattern `{p}` lacks [X] or [Y]"),
                        ));
                    }
                    Ok(p.to_string())
                })
                .collect::<Result<Vec<_>>>()?;
            if templates.len() < 4 {
                continue; // SPEC: relations with at least 4 templates
            }
            let facts = facts
                .into_iter()
                .enumerate()
                .map(|(i, f)| match f.as_slice() {
                    [s, o] => Ok(Fact {
                        subject: s.clone(),
                        object: o.clone(),
                    }),
                    _ => Err(data_err(
                        &pairs_path,
                        None,
                        format!("{id}: fact {} is not [subject, object]", i + 1),
                    )),
                })
                .collect::<Result<Vec<_>>>()?;
            let (label, kind) = meta
                .get(&id)
                .cloned()
                .unwrap_or_else(|| (id.clone(), "?".into()));
            relations.push(Relation {
                id,
                label,
                kind,
                templates,
                facts,
            });
        }
        relations.sort_by_key(|r| r.id[1..].parse::<u32>().unwrap_or(u32::MAX));
        Ok(ParaRel {
            dir: dir.to_path_buf(),
            relations,
        })
    }

    pub fn relation(&self, id: &str) -> Result<&Relation> {
        self.relations.iter().find(|r| r.id == id).ok_or_else(|| {
            Error::Data(format!(
                "unknown relation `{id}`; ParaRel has {}",
                self.relations
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    pub fn n_facts(&self) -> usize {
        self.relations.iter().map(|r| r.facts.len()).sum()
    }

    pub fn n_prompts(&self) -> usize {
        self.relations
            .iter()
            .map(|r| r.facts.len() * r.templates.len())
            .sum()
    }
}
