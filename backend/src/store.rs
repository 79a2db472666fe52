//! Results kept in SQLite: one file (`results.sqlite`) in the data directory,
//! in WAL mode so that a crash mid-write never corrupts what is already saved.
//!
//! A result's id is a content hash of the model's fingerprint and the full
//! request, so the same request returns the stored result at once, and the id
//! is the permalink (`/r/<id>`).

use crate::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct Store {
    conn: Mutex<Connection>,
    pub path: PathBuf,
}

fn db_err(path: &Path, e: rusqlite::Error) -> Error {
    Error::Store(format!("{}: {e}", path.display()))
}

impl Store {
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
        let path = data_dir.join("results.sqlite");
        let conn = Connection::open(&path).map_err(|e| db_err(&path, e))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS results (
                 id TEXT PRIMARY KEY,
                 kind TEXT NOT NULL,
                 model TEXT NOT NULL,
                 request TEXT NOT NULL,
                 result TEXT NOT NULL,
                 created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
             );",
        )
        .map_err(|e| db_err(&path, e))?;
        Ok(Store {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// The id of a request: 20 hex digits of SHA-256 over kind, model fingerprint
    /// and the request's canonical JSON.
    pub fn id(kind: &str, fingerprint: &str, request: &serde_json::Value) -> String {
        let mut h = Sha256::new();
        for part in [kind, fingerprint, &request.to_string()] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.finalize()
            .iter()
            .take(10)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn get(&self, id: &str) -> Result<Option<String>> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row(
            "SELECT result FROM results WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| db_err(&self.path, e))
    }

    pub fn put(
        &self,
        id: &str,
        kind: &str,
        model: &str,
        request: &str,
        result: &str,
    ) -> Result<()> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute(
            "INSERT OR REPLACE INTO results (id, kind, model, request, result) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, kind, model, request, result],
        )
        .map_err(|e| db_err(&self.path, e))?;
        Ok(())
    }
}
