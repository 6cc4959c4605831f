//! What a watcher of a continuous query remembers between connections and
//! runs: the rows of the result as last seen, and for each whether its
//! reaction succeeded, so that after a reconnect or a restart the rows
//! already handled are not handled again and the others are.
//!
//! Rows are known by [`Row::key`] (SHA-256 of their canonical JSON):
//! identical rows are one row here, counted. Only rows in the current
//! result are kept, so the state is as large as the result, whatever
//! the number of changes seen.
//!
//! The file is JSON, written through a new temporary file (`O_EXCL`,
//! `O_NOFOLLOW`), fsynced and renamed over the old one; a symbolic link at
//! its path is refused on reading and writing, never followed.

use crate::error::ClientError;
use crate::queries::{QueryDiff, QueryResult, Row};
use pavilion_dio::Dir;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The largest state file read (a result of a few hundred thousand rows).
const MAX_STATE_BYTES: u64 = 256 << 20;

/// How a row changed, as reactions are told (`PAVILION_CHANGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// The row entered the result (or was in it when the watch began).
    Added,
    /// The row is the new version of a row that changed.
    Updated,
    /// The row left the result.
    Removed,
}

impl Change {
    /// `added`, `updated` or `removed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Updated => "updated",
            Change::Removed => "removed",
        }
    }
}

/// A reaction to run for one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaction {
    /// Why.
    pub change: Change,
    /// The row (the new one for an update).
    pub row: Row,
    /// The row's key.
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    row: Row,
    /// How many identical rows the result holds.
    count: u64,
    /// The change whose reaction succeeded for this row, if one did.
    done: Option<Change>,
}

/// How a whole result differed from what was known before it.
#[derive(Debug, Default)]
pub struct Resync {
    /// Rows not known before, in the result's order.
    pub added: Vec<Row>,
    /// Known rows no longer in the result.
    pub removed: Vec<Row>,
    /// Reactions owed: every row of the result whose reaction has not
    /// succeeded (as `added`), then every row gone whose reaction had (as
    /// `removed`).
    pub reactions: Vec<Reaction>,
}

/// The watcher's memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatchState {
    /// The format (1).
    version: u32,
    /// `sha256:` of the query text: a state is only good for its query.
    query: String,
    /// The last feed sequence number seen.
    pub last_seq: Option<i64>,
    /// The rows, by key.
    rows: BTreeMap<String, Entry>,
}

impl WatchState {
    /// An empty state for `query`.
    pub fn new(query: &str) -> Self {
        WatchState {
            version: 1,
            query: query_id(query),
            last_seq: None,
            rows: BTreeMap::new(),
        }
    }

    /// Whether this state was made for `query`.
    pub fn is_for(&self, query: &str) -> bool {
        self.query == query_id(query)
    }

    /// Whether nothing is known yet.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.last_seq.is_none()
    }

    /// Takes a whole result (the first message of every stream) in place
    /// of what was known.
    pub fn resync(&mut self, result: &QueryResult) -> Resync {
        let mut old = std::mem::take(&mut self.rows);
        let mut out = Resync::default();
        let mut order = Vec::new();
        for row in &result.rows {
            let key = row.key();
            if let Some(e) = self.rows.get_mut(&key) {
                e.count += 1;
                continue;
            }
            let entry = match old.remove(&key) {
                Some(e) => Entry { count: 1, ..e },
                None => {
                    out.added.push(row.clone());
                    Entry {
                        row: row.clone(),
                        count: 1,
                        done: None,
                    }
                }
            };
            order.push(key.clone());
            self.rows.insert(key, entry);
        }
        for key in order {
            if let Some(e) = self.rows.get(&key).filter(|e| e.done.is_none()) {
                out.reactions.push(Reaction {
                    change: Change::Added,
                    row: e.row.clone(),
                    key,
                });
            }
        }
        for (key, e) in old {
            out.removed.push(e.row.clone());
            if e.done.is_some_and(|d| d != Change::Removed) {
                out.reactions.push(Reaction {
                    change: Change::Removed,
                    row: e.row,
                    key,
                });
            }
        }
        self.last_seq = Some(result.seq);
        out
    }

    /// Takes one change of the result; the reactions it calls for: rows
    /// removed (whose reaction had succeeded), updated, then added.
    pub fn apply(&mut self, diff: &QueryDiff) -> Vec<Reaction> {
        let mut out = Vec::new();
        // An update's old row is not "removed": its new one follows.
        let removed = diff.removed.iter().map(|r| (true, r));
        let befores = diff.updated.iter().map(|u| (false, &u.before));
        for (is_removal, row) in removed.chain(befores) {
            let key = row.key();
            let Some(e) = self.rows.get_mut(&key) else {
                continue;
            };
            e.count -= 1;
            if e.count > 0 {
                continue;
            }
            let was_done = self.rows.remove(&key).and_then(|e| e.done);
            if is_removal && was_done.is_some_and(|d| d != Change::Removed) {
                out.push(Reaction {
                    change: Change::Removed,
                    row: row.clone(),
                    key,
                });
            }
        }
        let afters = diff.updated.iter().map(|u| (Change::Updated, &u.after));
        let added = diff.added.iter().map(|r| (Change::Added, r));
        for (change, row) in afters.chain(added) {
            let key = row.key();
            match self.rows.get_mut(&key) {
                Some(e) => e.count += 1,
                None => {
                    self.rows.insert(
                        key.clone(),
                        Entry {
                            row: row.clone(),
                            count: 1,
                            done: None,
                        },
                    );
                    out.push(Reaction {
                        change,
                        row: row.clone(),
                        key,
                    });
                }
            }
        }
        self.last_seq = Some(diff.seq);
        out
    }

    /// Records that `r`'s reaction succeeded; a removal needs no record
    /// (its row is already forgotten), and a failure leaves the row owed,
    /// to be run again at the next [`WatchState::resync`].
    pub fn succeeded(&mut self, r: &Reaction) {
        if r.change == Change::Removed {
            return;
        }
        if let Some(e) = self.rows.get_mut(&r.key) {
            e.done = Some(r.change);
        }
    }

    /// Reads the state at `path`; `None` when there is none. A symbolic
    /// link there is refused.
    pub async fn load(path: &Path) -> Result<Option<WatchState>, ClientError> {
        let path = path.to_path_buf();
        crate::blocking::spawn(move || load_blocking(&path)).await?
    }

    /// Writes the state at `path`, atomically and durably.
    pub async fn save(&self, path: &Path) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec(self)
            .map_err(|e| ClientError::Io(std::io::Error::other(e.to_string())))?;
        let path = path.to_path_buf();
        crate::blocking::spawn(move || save_blocking(&path, &bytes)).await?
    }
}

fn query_id(query: &str) -> String {
    pavilion_oci::Digest::sha256(query.as_bytes()).to_string()
}

/// The directory handle and file name of `path` (the directory as named:
/// the user chose it; the file itself is never followed).
fn split(path: &Path) -> Result<(Dir, PathBuf), ClientError> {
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => (p, n),
        _ => {
            return Err(ClientError::Usage(format!(
                "{}: not a file path",
                path.display()
            )))
        }
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let dir = Dir::open(parent).map_err(|e| ClientError::io_at(parent, e))?;
    Ok((dir, PathBuf::from(name)))
}

fn load_blocking(path: &Path) -> Result<Option<WatchState>, ClientError> {
    let (dir, name) = split(path)?;
    let f = match dir.open_file(name.as_os_str(), false) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ClientError::Io(e)),
    };
    let mut bytes = Vec::new();
    f.take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ClientError::io_at(path, e))?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(ClientError::TooLarge {
            what: format!("the watch state {}", path.display()),
            limit: MAX_STATE_BYTES,
        });
    }
    let state: WatchState = serde_json::from_slice(&bytes).map_err(|e| {
        ClientError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: not a watch state: {e}", path.display()),
        ))
    })?;
    if state.version != 1 {
        return Err(ClientError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: watch state version {} is not known here",
                path.display(),
                state.version
            ),
        )));
    }
    Ok(Some(state))
}

fn save_blocking(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let (dir, name) = split(path)?;
    let name = name.as_os_str();
    // The rename below would replace a link, not follow it; refusing says
    // that something is wrong rather than quietly undoing someone's link.
    if dir
        .metadata(name)?
        .is_some_and(|m| m.file_type().is_symlink())
    {
        return Err(ClientError::Io(std::io::Error::other(
            pavilion_dio::SymlinkRefused {
                path: path.to_path_buf(),
            },
        )));
    }
    let tmp = crate::layout::unique_tmp(name);
    let write = |tmp: &OsStr| -> std::io::Result<()> {
        let mut f = dir.create_new(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        dir.rename(tmp, &dir, name)?;
        dir.sync()
    };
    write(&tmp).map_err(|e| {
        let _ = dir.remove_file(&tmp);
        ClientError::Io(e)
    })
}

#[cfg(test)]
#[path = "watch_state_tests.rs"]
mod tests;
