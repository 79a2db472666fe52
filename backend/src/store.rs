//! Results and edit sets kept in SQLite: one file (`results.sqlite`) in the
//! data directory, in WAL mode so that a crash mid-write never corrupts what is
//! already saved (each write is one transaction).
//!
//! Everything is content-addressed. A result's id is a hash of what was asked
//! (the model's fingerprint and the canonical request, which names the edit
//! sets it runs on), so the same request finds the stored result and the id is
//! the permalink (`/r/<id>`). An edit set's id is a hash of its contents.
//!
//! The store has a size cap. Past it, the least recently used results lose
//! their computed part but keep their request, so their permalink recomputes
//! them on demand; the least recently used edit sets are dropped whole (a
//! content-addressed edit set comes back under the same id when uploaded
//! again).

use crate::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Size caps of a [`Store`].
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Bytes of computed results kept before the least recently used are evicted.
    pub result_bytes: u64,
    /// Bytes of edit sets kept before the least recently used are dropped.
    pub edit_bytes: u64,
    /// Rows (results with or without their computed part) kept at most.
    pub rows: u64,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            result_bytes: 1 << 30,
            edit_bytes: 256 << 20,
            rows: 200_000,
        }
    }
}

pub struct Store {
    conn: Mutex<Connection>,
    pub path: PathBuf,
    caps: Caps,
}

/// A stored result: what was asked, and what was computed unless evicted.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub kind: String,
    /// The canonical request (JSON).
    pub request: String,
    /// The result (JSON); `None` once evicted.
    pub result: Option<String>,
}

fn db_err(path: &Path, e: rusqlite::Error) -> Error {
    Error::Store(format!("{}: {e}", path.display()))
}

/// Milliseconds since 1970: the recency of use.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether `id` has the shape of a store id (20 lowercase hex digits).
pub fn is_id(id: &str) -> bool {
    id.len() == 20 && id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

impl Store {
    pub fn open(data_dir: &Path) -> Result<Self> {
        Self::open_with(data_dir, Caps::default())
    }

    pub fn open_with(data_dir: &Path, caps: Caps) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
        let path = data_dir.join("results.sqlite");
        let conn = Connection::open(&path).map_err(|e| db_err(&path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| db_err(&path, e))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS results (
                 id TEXT PRIMARY KEY,
                 kind TEXT NOT NULL,
                 model TEXT NOT NULL,
                 request TEXT NOT NULL,
                 result TEXT,
                 created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
             );
             CREATE TABLE IF NOT EXISTS edit_sets (
                 id TEXT PRIMARY KEY,
                 model TEXT NOT NULL,
                 body TEXT NOT NULL,
                 bytes INTEGER NOT NULL,
                 used_at INTEGER NOT NULL,
                 created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
             );
             CREATE INDEX IF NOT EXISTS edit_sets_used ON edit_sets (used_at);",
        )
        .map_err(|e| db_err(&path, e))?;
        // Files written by kn 0.1 lack the bookkeeping columns; add them.
        let cols: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('results')")
            .and_then(|mut st| {
                st.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| db_err(&path, e))?;
        if !cols.iter().any(|c| c == "bytes") {
            conn.execute_batch(
                "ALTER TABLE results ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE results ADD COLUMN used_at INTEGER NOT NULL DEFAULT 0;
                 UPDATE results SET bytes = length(result) WHERE result IS NOT NULL;",
            )
            .map_err(|e| db_err(&path, e))?;
        }
        conn.execute_batch("CREATE INDEX IF NOT EXISTS results_used ON results (used_at);")
            .map_err(|e| db_err(&path, e))?;
        Ok(Store {
            conn: Mutex::new(conn),
            path,
            caps,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
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

    /// A stored result's computed part, if it is there (marks it used).
    pub fn get(&self, id: &str) -> Result<Option<String>> {
        Ok(self.lookup(id)?.and_then(|s| s.result))
    }

    /// Everything stored under `id` (marks it used).
    pub fn lookup(&self, id: &str) -> Result<Option<Stored>> {
        let conn = self.conn();
        let found = conn
            .query_row(
                "SELECT kind, request, result FROM results WHERE id = ?1",
                params![id],
                |r| {
                    Ok(Stored {
                        kind: r.get(0)?,
                        request: r.get(1)?,
                        result: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| db_err(&self.path, e))?;
        if found.is_some() {
            conn.execute(
                "UPDATE results SET used_at = ?2 WHERE id = ?1",
                params![id, now()],
            )
            .map_err(|e| db_err(&self.path, e))?;
        }
        Ok(found)
    }

    /// Keep a result, then evict past the caps.
    pub fn put(
        &self,
        id: &str,
        kind: &str,
        model: &str,
        request: &str,
        result: &str,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| db_err(&self.path, e))?;
        tx.execute(
            "INSERT OR REPLACE INTO results (id, kind, model, request, result, bytes, used_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id, kind, model, request, result, result.len() as i64, now()],
        )
        .map_err(|e| db_err(&self.path, e))?;
        evict_results(&tx, &self.caps, id).map_err(|e| db_err(&self.path, e))?;
        tx.commit().map_err(|e| db_err(&self.path, e))
    }

    /// Keep an edit set's JSON under its id, then drop the least recently
    /// used past the cap (never the one just written).
    pub fn put_edit_set(&self, id: &str, model: &str, body: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| db_err(&self.path, e))?;
        tx.execute(
            "INSERT INTO edit_sets (id, model, body, bytes, used_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO UPDATE SET used_at = excluded.used_at",
            params![id, model, body, body.len() as i64, now()],
        )
        .map_err(|e| db_err(&self.path, e))?;
        loop {
            let total: i64 = tx
                .query_row("SELECT COALESCE(SUM(bytes), 0) FROM edit_sets", [], |r| {
                    r.get(0)
                })
                .map_err(|e| db_err(&self.path, e))?;
            if total as u64 <= self.caps.edit_bytes {
                break;
            }
            let n = tx
                .execute(
                    "DELETE FROM edit_sets WHERE id = (SELECT id FROM edit_sets WHERE id != ?1 ORDER BY used_at, id LIMIT 1)",
                    params![id],
                )
                .map_err(|e| db_err(&self.path, e))?;
            if n == 0 {
                break;
            }
        }
        tx.commit().map_err(|e| db_err(&self.path, e))
    }

    /// An edit set's JSON (marks it used).
    pub fn edit_set(&self, id: &str) -> Result<Option<String>> {
        let conn = self.conn();
        let body: Option<String> = conn
            .query_row(
                "SELECT body FROM edit_sets WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_err(&self.path, e))?;
        if body.is_some() {
            conn.execute(
                "UPDATE edit_sets SET used_at = ?2 WHERE id = ?1",
                params![id, now()],
            )
            .map_err(|e| db_err(&self.path, e))?;
        }
        Ok(body)
    }

    /// Bytes of computed results and of edit sets held now.
    pub fn usage(&self) -> Result<(u64, u64)> {
        let conn = self.conn();
        let q = |sql: &str| -> Result<u64> {
            conn.query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|v| v as u64)
                .map_err(|e| db_err(&self.path, e))
        };
        Ok((
            q("SELECT COALESCE(SUM(bytes), 0) FROM results")?,
            q("SELECT COALESCE(SUM(bytes), 0) FROM edit_sets")?,
        ))
    }
}

/// Past the byte cap, the least recently used results (never `keep`, the one
/// just written) keep only their request; past the row cap, the oldest
/// request-only rows go.
fn evict_results(tx: &rusqlite::Transaction, caps: &Caps, keep: &str) -> rusqlite::Result<()> {
    let total: i64 = tx.query_row("SELECT COALESCE(SUM(bytes), 0) FROM results", [], |r| {
        r.get(0)
    })?;
    let mut excess = total - caps.result_bytes as i64;
    if excess > 0 {
        let victims: Vec<(String, i64)> = {
            let mut st = tx.prepare(
                "SELECT id, bytes FROM results WHERE result IS NOT NULL AND id != ?1 ORDER BY used_at, id",
            )?;
            let rows = st.query_map(params![keep], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, bytes): (String, i64) = row?;
                if excess <= 0 {
                    break;
                }
                excess -= bytes;
                out.push((id, bytes));
            }
            out
        };
        for (id, _) in victims {
            tx.execute(
                "UPDATE results SET result = NULL, bytes = 0 WHERE id = ?1",
                params![id],
            )?;
        }
    }
    let rows: i64 = tx.query_row("SELECT COUNT(*) FROM results", [], |r| r.get(0))?;
    let extra = rows - caps.rows as i64;
    if extra > 0 {
        tx.execute(
            "DELETE FROM results WHERE id IN (SELECT id FROM results WHERE result IS NULL ORDER BY used_at, id LIMIT ?1)",
            params![extra],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_eviction_keeps_requests_and_recent_results() {
        let dir = tempfile::tempdir().unwrap();
        let caps = Caps {
            result_bytes: 25,
            edit_bytes: 12,
            rows: 3,
        };
        let s = Store::open_with(dir.path(), caps).unwrap();
        s.put("a", "analyze", "m", "{\"q\":1}", "0123456789")
            .unwrap();
        s.put("b", "analyze", "m", "{\"q\":2}", "0123456789")
            .unwrap();
        // `a` is used, so `b` is the least recently used when `c` overflows.
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(s.get("a").unwrap().is_some());
        s.put("c", "analyze", "m", "{\"q\":3}", "0123456789")
            .unwrap();
        let b = s.lookup("b").unwrap().unwrap();
        assert_eq!(b.result, None, "b's result is evicted");
        assert_eq!(b.request, "{\"q\":2}", "its request stays");
        assert!(s.get("a").unwrap().is_some() && s.get("c").unwrap().is_some());
        assert!(s.usage().unwrap().0 <= 25);
        // Rows past the cap: the request-only row goes first.
        s.put("d", "analyze", "m", "{}", "x").unwrap();
        assert!(s.lookup("b").unwrap().is_none());

        s.put_edit_set("e1", "m", "0123456789").unwrap();
        s.put_edit_set("e2", "m", "0123456789").unwrap();
        assert!(s.edit_set("e1").unwrap().is_none(), "dropped past the cap");
        assert!(s.edit_set("e2").unwrap().is_some(), "the newest stays");
    }

    #[test]
    fn ids_have_their_shape() {
        let id = Store::id("analyze", "fp", &serde_json::json!({"a": 1}));
        assert!(is_id(&id));
        assert!(!is_id("0123"));
        assert!(!is_id("0123456789ABCDEF0123"));
    }
}
