//! A run's SQLite file: its settings, one row per finished fact, and the report.
//!
//! Each fact is one `INSERT` in its own transaction, in WAL mode, so a killed run
//! keeps every fact it finished and loses only the one in flight; the
//! `(relation, fact)` primary key makes a fact impossible to store twice.

use super::{Settings, Shard};
use crate::{Error, Result};
use kn_shared::experiment::{Coverage, ExperimentReport};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Coarse knowledge sets are stored down to this fraction of a prompt's maximum
/// score, so a report may use any `t ≥ STORE_T` without recomputing.
pub const STORE_T: f64 = 0.1;
/// The baseline's coarse sets (activations) are stored down to this fraction
/// of a prompt's largest activation, so the report can select the baseline
/// the way it selects knowledge neurons (a fixed threshold, then `p` adapted
/// per relation) at any `base_t ≥ STORE_BASE_T`.
pub const STORE_BASE_T: f64 = 0.3;

/// `(layer, index, value)`, compact in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored(pub u32, pub u32, pub f32);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptRecord {
    pub prompt: String,
    pub p_target: f64,
    /// The prompt's maximum attribution score.
    pub max_score: f64,
    /// Neurons scoring above `STORE_T · max_score`, with their scores.
    pub knowledge: Vec<Scored>,
    /// The baseline's coarse set, with activations: above `STORE_BASE_T ·
    /// max_activation` (runs made before `max_activation` was kept: at the
    /// fact's tuned threshold).
    pub baseline: Vec<Scored>,
    /// The prompt's largest activation at the blank.
    #[serde(default)]
    pub max_activation: Option<f64>,
}

/// What a run keeps of one fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactRecord {
    pub subject: String,
    pub object: String,
    pub prompts: Vec<PromptRecord>,
    /// The baseline's coarse threshold tuned per fact to 2–5 neurons (what runs
    /// stored before the baseline was selected like the knowledge neurons).
    pub baseline_t: f64,
}

/// A stored fact: its record, or the error that stopped it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFact {
    pub relation: String,
    pub fact: usize,
    pub outcome: std::result::Result<FactRecord, String>,
    pub seconds: f64,
}

pub struct RunDb {
    conn: Connection,
    pub path: PathBuf,
}

fn err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Store(format!("{}: {e}", path.display()))
}

impl RunDb {
    /// Open or create a run file.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let conn = Connection::open(path).map_err(|e| err(path, e))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS facts (
                 relation TEXT NOT NULL,
                 fact INTEGER NOT NULL,
                 record TEXT,
                 error TEXT,
                 seconds REAL NOT NULL,
                 PRIMARY KEY (relation, fact)
             );
             CREATE TABLE IF NOT EXISTS report (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 json TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS report_cache (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )
        .map_err(|e| err(path, e))?;
        Ok(RunDb {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Open a run file that must exist already.
    pub fn open_existing(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Store(format!(
                "{}: no such run file",
                path.display()
            )));
        }
        Self::open(path)
    }

    /// Open a run file to read only: no schema changes, no writes, whoever
    /// else has it open (the web server's Experiments page).
    pub fn open_read_only(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Store(format!(
                "{}: no such run file",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| err(path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| err(path, e))?;
        Ok(RunDb {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let v: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| err(&self.path, e))?;
        v.map(|s| {
            serde_json::from_str(&s).map_err(|e| err(&self.path, format!("meta `{key}`: {e}")))
        })
        .transpose()
    }

    fn set_meta<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let s = serde_json::to_string(value).map_err(|e| err(&self.path, e))?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, s],
            )
            .map_err(|e| err(&self.path, e))?;
        Ok(())
    }

    pub fn settings(&self) -> Result<Option<Settings>> {
        self.meta("settings")
    }

    /// `(index, count)` of the shard this file holds.
    pub fn shard(&self) -> Result<Option<(usize, usize)>> {
        self.meta("shard")
    }

    pub fn coverage(&self) -> Result<Option<Coverage>> {
        self.meta("coverage")
    }

    pub fn set_coverage(&self, c: &Coverage) -> Result<()> {
        self.set_meta("coverage", c)
    }

    /// The known facts the plan found, `(relation id, fact)`: the scan needs
    /// forward passes, so it is done once and kept with the run.
    pub fn known(&self) -> Result<Option<Vec<(String, usize)>>> {
        self.meta("known")
    }

    pub fn set_known(&self, known: &[(String, usize)]) -> Result<()> {
        self.set_meta("known", &known)
    }

    /// Remember the settings of a new file, or refuse a file started with others.
    pub fn bind(&self, settings: &Settings, shard: Shard) -> Result<()> {
        match self.settings()? {
            None => {
                self.set_meta("settings", settings)?;
                self.set_meta("shard", &(shard.index, shard.count))
            }
            Some(s) if s.same_run(settings) => match self.shard()? {
                Some((i, n)) if (i, n) != (shard.index, shard.count) => Err(err(
                    &self.path,
                    format!("this file holds shard {i}/{n}, not {}/{}", shard.index, shard.count),
                )),
                _ => Ok(()),
            },
            // A larger sample of the same run: a seeded sample of n facts is the
            // first n of one shuffled order, so the stored facts stay in it.
            Some(s)
                if Settings {
                    facts_per_relation: settings.facts_per_relation,
                    ..s.clone()
                }
                .same_run(settings)
                    && grows(s.facts_per_relation, settings.facts_per_relation)
                    && self.shard()? == Some((shard.index, shard.count)) =>
            {
                tracing::info!(
                    "{}: growing the sample from {:?} to {:?} facts per relation",
                    self.path.display(),
                    s.facts_per_relation,
                    settings.facts_per_relation
                );
                self.set_meta(
                    "settings",
                    &Settings {
                        facts_per_relation: settings.facts_per_relation,
                        ..s
                    },
                )
            }
            Some(s) => Err(err(
                &self.path,
                format!(
                    "this run was started with other settings ({}); use another --out folder or the same settings",
                    serde_json::to_string(&s).unwrap_or_default()
                ),
            )),
        }
    }

    /// Keys of the facts already stored (done or failed).
    pub fn done(&self) -> Result<std::collections::HashSet<(String, usize)>> {
        let mut st = self
            .conn
            .prepare("SELECT relation, fact FROM facts")
            .map_err(|e| err(&self.path, e))?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
            })
            .map_err(|e| err(&self.path, e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| err(&self.path, e))
    }

    /// Store one fact. A fact stored already is left as it is and `false` returned.
    pub fn put(&self, f: &StoredFact) -> Result<bool> {
        let (record, error) = match &f.outcome {
            Ok(r) => (
                Some(serde_json::to_string(r).map_err(|e| err(&self.path, e))?),
                None,
            ),
            Err(m) => (None, Some(m.clone())),
        };
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO facts (relation, fact, record, error, seconds) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![f.relation, f.fact as i64, record, error, f.seconds],
            )
            .map_err(|e| err(&self.path, e))?;
        if n == 1 {
            // A report made before this fact no longer describes the run.
            self.conn
                .execute("DELETE FROM report", [])
                .map_err(|e| err(&self.path, e))?;
        }
        Ok(n == 1)
    }

    /// Every stored fact, ordered by relation and fact.
    pub fn facts(&self) -> Result<Vec<StoredFact>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT relation, fact, record, error, seconds FROM facts ORDER BY relation, fact",
            )
            .map_err(|e| err(&self.path, e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as usize,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, f64>(4)?,
                ))
            })
            .map_err(|e| err(&self.path, e))?;
        let mut out = Vec::new();
        for row in rows {
            let (relation, fact, record, error, seconds) = row.map_err(|e| err(&self.path, e))?;
            let outcome = match record {
                Some(r) => Ok(serde_json::from_str(&r)
                    .map_err(|e| err(&self.path, format!("fact {relation}#{fact}: {e}")))?),
                None => Err(error.unwrap_or_default()),
            };
            out.push(StoredFact {
                relation,
                fact,
                outcome,
                seconds,
            });
        }
        Ok(out)
    }

    /// Facts done (not failed) and the relations they span, counted in SQL:
    /// a listing of runs must not parse every record.
    pub fn done_counts(&self) -> Result<(usize, usize)> {
        self.conn
            .query_row(
                "SELECT COUNT(*), COUNT(DISTINCT relation) FROM facts WHERE record IS NOT NULL",
                [],
                |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize)),
            )
            .map_err(|e| err(&self.path, e))
    }

    pub fn has_report(&self) -> Result<bool> {
        self.conn
            .query_row("SELECT EXISTS (SELECT 1 FROM report)", [], |r| r.get(0))
            .map_err(|e| err(&self.path, e))
    }

    pub fn count(&self) -> Result<usize> {
        self.conn
            .query_row("SELECT COUNT(*) FROM facts", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(|e| err(&self.path, e))
    }

    pub fn put_report(&self, r: &ExperimentReport) -> Result<()> {
        let s = serde_json::to_string(r).map_err(|e| err(&self.path, e))?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO report (id, json) VALUES (1, ?1)",
                params![s],
            )
            .map_err(|e| err(&self.path, e))?;
        Ok(())
    }

    /// A piece of a report computed before (`None`: not yet, or a run file
    /// opened read-only that has no cache), under a key that names everything
    /// it was computed from: a report killed half-way resumes from its pieces.
    pub fn cached<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let v: Option<String> = match self.conn.query_row(
            "SELECT value FROM report_cache WHERE key = ?1",
            params![key],
            |r| r.get(0),
        ) {
            Ok(v) => Some(v),
            Err(rusqlite::Error::QueryReturnedNoRows) => None,
            // A run file written before the cache existed, opened read-only.
            Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.contains("no such table") => None,
            Err(e) => return Err(err(&self.path, e)),
        };
        v.map(|s| serde_json::from_str(&s).map_err(|e| err(&self.path, format!("cache: {e}"))))
            .transpose()
    }

    /// Keep a piece of a report under `key` (one transaction: a kill loses at
    /// most the piece in flight).
    pub fn put_cached<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let s = serde_json::to_string(value).map_err(|e| err(&self.path, e))?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO report_cache (key, value) VALUES (?1, ?2)",
                params![key, s],
            )
            .map_err(|e| err(&self.path, e))?;
        Ok(())
    }

    /// How many pieces the report cache holds.
    pub fn cached_count(&self) -> Result<usize> {
        self.conn
            .query_row("SELECT COUNT(*) FROM report_cache", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as usize)
            .map_err(|e| err(&self.path, e))
    }

    pub fn report(&self) -> Result<Option<ExperimentReport>> {
        let s: Option<String> = self
            .conn
            .query_row("SELECT json FROM report WHERE id = 1", [], |r| r.get(0))
            .optional()
            .map_err(|e| err(&self.path, e))?;
        s.map(|s| serde_json::from_str(&s).map_err(|e| err(&self.path, e)))
            .transpose()
    }
}

/// Whether sample size `to` contains sample size `from` (`None`: every fact).
fn grows(from: Option<usize>, to: Option<usize>) -> bool {
    match (from, to) {
        (_, None) => true,
        (Some(a), Some(b)) => b >= a,
        (None, Some(_)) => false,
    }
}

/// Join shard files into one run file (`out`), checking that they share their
/// settings and hold distinct shards. Facts already in `out` are kept; a fact in
/// two inputs is stored once. Returns the shards found, and the count each file
/// holds.
pub fn merge(out: &Path, inputs: &[PathBuf]) -> Result<Vec<(PathBuf, usize)>> {
    if inputs.is_empty() {
        return Err(Error::InvalidArgument(
            "no shard files to merge (expected shard-<i>-of-<n>.sqlite)".into(),
        ));
    }
    let mut settings: Option<(Settings, PathBuf)> = None;
    let mut seen = std::collections::BTreeMap::new();
    let mut count = None;
    let mut opened = Vec::new();
    for p in inputs {
        let db = RunDb::open_existing(p)?;
        let s = db
            .settings()?
            .ok_or_else(|| err(p, "not a run file: it has no settings"))?;
        match &settings {
            None => settings = Some((s, p.clone())),
            Some((first, fp)) if !first.same_run(&s) => {
                return Err(err(
                    p,
                    format!(
                        "its settings differ from {}'s; these are not shards of one run",
                        fp.display()
                    ),
                ))
            }
            _ => {}
        }
        let (i, n) = db.shard()?.unwrap_or((0, 1));
        if *count.get_or_insert(n) != n {
            return Err(err(
                p,
                format!("it is a shard of {n}, the others of {}", count.unwrap_or(n)),
            ));
        }
        if let Some(other) = seen.insert(i, p.clone()) {
            return Err(err(
                p,
                format!("shard {i} again (also {})", other.display()),
            ));
        }
        opened.push(db);
    }
    let (settings, _) = settings.expect("at least one input");
    let target = RunDb::open(out)?;
    target.bind(&settings, Shard::ALL)?;
    let mut found = Vec::new();
    for db in &opened {
        let facts = db.facts()?;
        for f in &facts {
            target.put(f)?;
        }
        if let Some(c) = db.coverage()? {
            target.set_coverage(&c)?;
        }
        if let Some(k) = db.known()? {
            target.set_known(&k)?;
        }
        found.push((db.path.clone(), facts.len()));
    }
    Ok(found)
}
