//! The durable workspace. After every finished step (and every `each`
//! iteration) the worker saves what the workspace holds, together with the
//! step's journal entry; an attempt that resumes a task (a retry, a takeover
//! after a replica died, a release at shutdown) restores it first, so the
//! first unfinished step starts on exactly the files the finished ones left.
//!
//! A save is incremental and content-addressed: files whose size, times,
//! inode and mode did not change since the last save are not read again,
//! and contents already stored are not stored twice, so a step that touches
//! one file of a 100 MB workspace writes one file. The manifest (every path,
//! its kind, mode and content blob) and the blobs are sealed with the
//! task-secrets keyring; rendered files can hold secret material.
//!
//! **Invariants:** the manifest is written in the transaction of the journal
//! entry it belongs to, after the blobs it names; blobs are deleted only
//! once no committed manifest names them. A restored path never leaves the
//! workspace.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::model::TaskId;
use crate::secrets::Keyring;
use crate::store::{Store, StoreError};

/// Where the contents of saved workspaces live. PostgreSQL
/// (`task_workspace_blobs`) by default; object storage can implement it.
/// Manifests always live in PostgreSQL with the step journal.
#[async_trait]
pub trait WorkspaceBlobs: Send + Sync {
    /// Stores sealed blobs; false when the lease is no longer `owner`'s.
    async fn put(&self, task: TaskId, owner: &str, blobs: &[(Uuid, Vec<u8>)]) -> Result<bool, StoreError>;
    /// The sealed blobs with these keys (missing ones are left out).
    async fn get(&self, task: TaskId, keys: &[Uuid]) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError>;
    /// Deletes blobs no committed manifest names any more.
    async fn delete(&self, task: TaskId, keys: &[Uuid]) -> Result<(), StoreError>;
}

#[async_trait]
impl WorkspaceBlobs for Store {
    async fn put(&self, task: TaskId, owner: &str, blobs: &[(Uuid, Vec<u8>)]) -> Result<bool, StoreError> {
        self.put_workspace_blobs(task, owner, blobs).await
    }
    async fn get(&self, task: TaskId, keys: &[Uuid]) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError> {
        self.workspace_blobs(task, keys).await
    }
    async fn delete(&self, task: TaskId, keys: &[Uuid]) -> Result<(), StoreError> {
        self.delete_workspace_blobs(task, keys).await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the saved workspace cannot be read: {0}")]
    Sealed(#[from] crate::secrets::SecretsError),
    #[error("the saved workspace is damaged: {0}")]
    Corrupt(String),
    #[error("the workspace holds {bytes} bytes, more than limits.workspace_bytes ({limit})")]
    TooLarge { bytes: u64, limit: u64 },
    #[error("{0} cannot be saved: its name is not valid UTF-8")]
    NotUtf8(String),
    #[error("the lease on the task was lost")]
    LeaseLost,
    #[error("the save was interrupted: {0}")]
    Interrupted(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DurableError {
    let context = context.into();
    move |source| DurableError::Io { context, source }
}

/// One path of a saved workspace, relative to its root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        size: u64,
        sha256: String,
        blob: Uuid,
    },
    Link {
        path: String,
        target: String,
    },
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Link { path, .. } => path,
        }
    }
}

/// Everything a workspace held after a step, in path order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Plaintext bytes of the files.
    pub fn bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e {
                Entry::File { size, .. } => *size,
                _ => 0,
            })
            .sum()
    }

    pub fn files(&self) -> usize {
        self.entries.iter().filter(|e| matches!(e, Entry::File { .. })).count()
    }

    fn blobs(&self) -> HashSet<Uuid> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::File { blob, .. } => Some(*blob),
                _ => None,
            })
            .collect()
    }
}

/// What identifies an unchanged file without reading it (as git's index does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
    mode: u32,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            mode: meta.mode(),
        }
    }
}

#[derive(Debug, Clone)]
struct Known {
    stamp: Stamp,
    sha256: String,
    blob: Uuid,
}

/// What the last committed save knew.
#[derive(Debug, Clone, Default)]
struct SaverState {
    files: HashMap<String, Known>,
    /// Contents already stored: sha256 → blob.
    stored: HashMap<String, Uuid>,
    /// Blobs the last committed manifest names.
    live: HashSet<Uuid>,
}

/// A save whose blobs are stored; it becomes the saver's state once its
/// manifest is committed with the journal ([`WorkspaceSaver::commit`]).
pub struct PreparedSave {
    /// The sealed manifest, for `Store::record_step`.
    pub sealed_manifest: Vec<u8>,
    pub bytes: u64,
    pub files: usize,
    /// Sealed bytes this save stored (new blobs only).
    pub stored_bytes: u64,
    state: SaverState,
}

/// Saves one task's workspace after each finished step.
pub struct WorkspaceSaver {
    task: TaskId,
    owner: String,
    root: PathBuf,
    keyring: Arc<Keyring>,
    blobs: Arc<dyn WorkspaceBlobs>,
    limit: u64,
    state: tokio::sync::Mutex<SaverState>,
}

/// Blobs go to the store in statements of about this many bytes.
const BATCH_BYTES: usize = 4 << 20;

impl WorkspaceSaver {
    pub fn new(
        task: TaskId,
        owner: &str,
        root: PathBuf,
        keyring: Arc<Keyring>,
        blobs: Arc<dyn WorkspaceBlobs>,
        limit: u64,
    ) -> WorkspaceSaver {
        WorkspaceSaver {
            task,
            owner: owner.to_owned(),
            root,
            keyring,
            blobs,
            limit,
            state: tokio::sync::Mutex::new(SaverState::default()),
        }
    }

    /// Reads the workspace, stores the contents not stored yet and seals the
    /// new manifest. Nothing is visible to a later attempt until the manifest
    /// is committed with the journal entry.
    pub async fn prepare(&self) -> Result<PreparedSave, DurableError> {
        let previous = self.state.lock().await.clone();
        let root = self.root.clone();
        let keyring = self.keyring.clone();
        let task = self.task;
        let limit = self.limit;
        let scanned = tokio::task::spawn_blocking(move || scan(&root, previous, &keyring, task, limit))
            .await
            .map_err(|e| DurableError::Interrupted(e.to_string()))??;
        let Scanned {
            manifest,
            new_blobs,
            state,
        } = scanned;
        let stored_bytes = new_blobs.iter().map(|(_, b)| b.len() as u64).sum();
        let mut batch: Vec<(Uuid, Vec<u8>)> = Vec::new();
        let mut batch_bytes = 0;
        for blob in new_blobs {
            batch_bytes += blob.1.len();
            batch.push(blob);
            if batch_bytes >= BATCH_BYTES {
                self.put(&batch).await?;
                batch.clear();
                batch_bytes = 0;
            }
        }
        self.put(&batch).await?;
        let plain = serde_json::to_vec(&manifest).map_err(|e| DurableError::Corrupt(e.to_string()))?;
        let sealed_manifest = self.keyring.seal_bytes(self.task, &plain)?;
        Ok(PreparedSave {
            sealed_manifest,
            bytes: manifest.bytes(),
            files: manifest.files(),
            stored_bytes,
            state,
        })
    }

    async fn put(&self, batch: &[(Uuid, Vec<u8>)]) -> Result<(), DurableError> {
        if batch.is_empty() {
            return Ok(());
        }
        match self.blobs.put(self.task, &self.owner, batch).await? {
            true => Ok(()),
            false => Err(DurableError::LeaseLost),
        }
    }

    /// The manifest of `prepared` was committed: it is the state now, and
    /// blobs only the previous manifest named are deleted.
    pub async fn commit(&self, prepared: PreparedSave) {
        let mut state = self.state.lock().await;
        let dropped: Vec<Uuid> = state.live.difference(&prepared.state.live).copied().collect();
        *state = prepared.state;
        drop(state);
        if let Err(e) = self.blobs.delete(self.task, &dropped).await {
            // Harmless: they go with the task's saved workspace.
            tracing::warn!(task_id = %self.task, error = %e, "cannot delete replaced workspace blobs");
        }
    }

    /// Lays a saved workspace out under the (empty) root and remembers it as
    /// the last save. Returns the manifest restored.
    pub async fn restore(&self, sealed_manifest: &[u8]) -> Result<Manifest, DurableError> {
        let plain = self.keyring.open_bytes(self.task, sealed_manifest)?;
        let manifest: Manifest =
            serde_json::from_slice(&plain).map_err(|e| DurableError::Corrupt(format!("manifest: {e}")))?;
        for entry in &manifest.entries {
            checked_relative(entry.path())?;
        }
        let keys: Vec<Uuid> = manifest.blobs().into_iter().collect();
        let mut contents: HashMap<Uuid, Vec<u8>> = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(256) {
            for (key, sealed) in self.blobs.get(self.task, chunk).await? {
                contents.insert(key, self.keyring.open_bytes(self.task, &sealed)?);
            }
        }
        let root = self.root.clone();
        let laid_out = manifest.clone();
        let state = tokio::task::spawn_blocking(move || lay_out(&root, &laid_out, contents))
            .await
            .map_err(|e| DurableError::Interrupted(e.to_string()))??;
        *self.state.lock().await = state;
        Ok(manifest)
    }
}

struct Scanned {
    manifest: Manifest,
    /// Sealed contents to store, by new blob key.
    new_blobs: Vec<(Uuid, Vec<u8>)>,
    state: SaverState,
}

fn utf8(path: &Path) -> Result<String, DurableError> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| DurableError::NotUtf8(path.to_string_lossy().into_owned()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Walks the workspace (links are not followed) and builds the manifest,
/// reading only files whose stamp changed.
fn scan(
    root: &Path,
    previous: SaverState,
    keyring: &Keyring,
    task: TaskId,
    limit: u64,
) -> Result<Scanned, DurableError> {
    let SaverState {
        files: known_files,
        mut stored,
        ..
    } = previous;
    let mut manifest = Manifest::default();
    let mut new_blobs = Vec::new();
    let mut files = HashMap::new();
    let mut live = HashSet::new();
    let mut total = 0u64;
    let walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .min_depth(1)
        .sort_by_file_name();
    for entry in walk {
        let entry = entry.map_err(|e| DurableError::Io {
            context: format!("cannot read the workspace {}", root.display()),
            source: e.into(),
        })?;
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let path = utf8(relative)?;
        let meta = entry
            .path()
            .symlink_metadata()
            .map_err(io(format!("cannot read {path}")))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            manifest.entries.push(Entry::Dir {
                path,
                mode: meta.mode() & 0o7777,
            });
        } else if kind.is_symlink() {
            let target = std::fs::read_link(entry.path()).map_err(io(format!("cannot read the link {path}")))?;
            manifest.entries.push(Entry::Link {
                target: utf8(&target)?,
                path,
            });
        } else if kind.is_file() {
            total = total.saturating_add(meta.len());
            if total > limit {
                return Err(DurableError::TooLarge { bytes: total, limit });
            }
            let stamp = Stamp::of(&meta);
            let (sha256, blob) = match known_files.get(&path).filter(|k| k.stamp == stamp) {
                Some(known) => (known.sha256.clone(), known.blob),
                None => {
                    let bytes = std::fs::read(entry.path()).map_err(io(format!("cannot read {path}")))?;
                    let sha256 = sha256_hex(&bytes);
                    let blob = match stored.get(&sha256) {
                        Some(blob) => *blob,
                        None => {
                            let blob = Uuid::new_v4();
                            new_blobs.push((blob, keyring.seal_bytes(task, &bytes)?));
                            stored.insert(sha256.clone(), blob);
                            blob
                        }
                    };
                    (sha256, blob)
                }
            };
            live.insert(blob);
            files.insert(
                path.clone(),
                Known {
                    stamp,
                    sha256: sha256.clone(),
                    blob,
                },
            );
            manifest.entries.push(Entry::File {
                path,
                mode: meta.mode() & 0o7777,
                size: meta.len(),
                sha256,
                blob,
            });
        }
        // Sockets, FIFOs and devices: no action creates them, and they
        // cannot be carried to another machine.
    }
    // Contents no file has any more are forgotten with their blobs.
    stored.retain(|_, blob| live.contains(blob));
    Ok(Scanned {
        manifest,
        new_blobs,
        state: SaverState { files, stored, live },
    })
}

/// A manifest path must stay inside the workspace.
fn checked_relative(path: &str) -> Result<&Path, DurableError> {
    let p = Path::new(path);
    let normal = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if normal {
        Ok(p)
    } else {
        Err(DurableError::Corrupt(format!("the path {path:?} leaves the workspace")))
    }
}

fn lay_out(root: &Path, manifest: &Manifest, mut contents: HashMap<Uuid, Vec<u8>>) -> Result<SaverState, DurableError> {
    let mut state = SaverState::default();
    // Entries are in path order: a directory comes before what it holds.
    for entry in &manifest.entries {
        let target = root.join(checked_relative(entry.path())?);
        match entry {
            Entry::Dir { path, .. } => {
                std::fs::create_dir_all(&target).map_err(io(format!("cannot restore the directory {path}")))?
            }
            Entry::Link { path, target: to } => {
                std::os::unix::fs::symlink(to, &target).map_err(io(format!("cannot restore the link {path}")))?
            }
            Entry::File {
                path,
                mode,
                sha256,
                blob,
                ..
            } => {
                let bytes = match contents.get(blob) {
                    Some(bytes) => bytes,
                    None => return Err(DurableError::Corrupt(format!("the contents of {path} are missing"))),
                };
                if sha256_hex(bytes) != *sha256 {
                    return Err(DurableError::Corrupt(format!("the contents of {path} do not match")));
                }
                let mut file = std::fs::File::create(&target).map_err(io(format!("cannot restore {path}")))?;
                file.write_all(bytes).map_err(io(format!("cannot restore {path}")))?;
                drop(file);
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(*mode))
                    .map_err(io(format!("cannot restore the mode of {path}")))?;
                let meta = target.symlink_metadata().map_err(io(format!("cannot read {path}")))?;
                state.files.insert(
                    path.clone(),
                    Known {
                        stamp: Stamp::of(&meta),
                        sha256: sha256.clone(),
                        blob: *blob,
                    },
                );
                state.stored.insert(sha256.clone(), *blob);
                state.live.insert(*blob);
            }
        }
    }
    // Modes of directories last, deepest first: a read-only directory must
    // not stop its own contents from being restored.
    for entry in manifest.entries.iter().rev() {
        if let Entry::Dir { path, mode } = entry {
            std::fs::set_permissions(root.join(path), std::fs::Permissions::from_mode(*mode))
                .map_err(io(format!("cannot restore the mode of {path}")))?;
        }
    }
    contents.clear();
    Ok(state)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Blobs in memory, counting what is written.
    #[derive(Default)]
    struct MemoryBlobs {
        blobs: Mutex<HashMap<Uuid, Vec<u8>>>,
        puts: Mutex<usize>,
    }

    #[async_trait]
    impl WorkspaceBlobs for MemoryBlobs {
        async fn put(&self, _: TaskId, _: &str, blobs: &[(Uuid, Vec<u8>)]) -> Result<bool, StoreError> {
            let mut map = self.blobs.lock().unwrap();
            *self.puts.lock().unwrap() += blobs.len();
            for (k, v) in blobs {
                map.insert(*k, v.clone());
            }
            Ok(true)
        }
        async fn get(&self, _: TaskId, keys: &[Uuid]) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError> {
            let map = self.blobs.lock().unwrap();
            Ok(keys
                .iter()
                .filter_map(|k| map.get(k).map(|v| (*k, v.clone())))
                .collect())
        }
        async fn delete(&self, _: TaskId, keys: &[Uuid]) -> Result<(), StoreError> {
            let mut map = self.blobs.lock().unwrap();
            for k in keys {
                map.remove(k);
            }
            Ok(())
        }
    }

    fn keyring() -> Arc<Keyring> {
        Arc::new(Keyring::from_entries(&[crate::secrets::generate_key_entry("k1")]).unwrap())
    }

    fn saver(root: &Path, keyring: &Arc<Keyring>, blobs: &Arc<MemoryBlobs>, task: TaskId) -> WorkspaceSaver {
        WorkspaceSaver::new(task, "me", root.to_owned(), keyring.clone(), blobs.clone(), 1 << 30)
    }

    #[tokio::test]
    async fn a_saved_workspace_is_restored_exactly_and_saves_are_incremental() {
        let task = TaskId(Uuid::new_v4());
        let keyring = keyring();
        let blobs = Arc::new(MemoryBlobs::default());
        let first = tempfile::tempdir().unwrap();
        let root = first.path();
        std::fs::create_dir_all(root.join("src/empty")).unwrap();
        std::fs::write(root.join("src/main.go"), "package main\n").unwrap();
        std::fs::write(root.join("src/copy.go"), "package main\n").unwrap();
        std::fs::write(root.join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("src/main.go", root.join("link")).unwrap();

        let saving = saver(root, &keyring, &blobs, task);
        let prepared = saving.prepare().await.unwrap();
        assert_eq!(prepared.files, 3);
        let manifest = prepared.sealed_manifest.clone();
        saving.commit(prepared).await;
        // Two files with the same contents are stored once.
        assert_eq!(*blobs.puts.lock().unwrap(), 2);

        // Nothing changed: nothing is stored. One file changed: one blob.
        let again = saving.prepare().await.unwrap();
        assert_eq!(again.stored_bytes, 0);
        saving.commit(again).await;
        std::fs::write(root.join("src/main.go"), "package main // changed\n").unwrap();
        let changed = saving.prepare().await.unwrap();
        let manifest_after = changed.sealed_manifest.clone();
        saving.commit(changed).await;
        assert_eq!(*blobs.puts.lock().unwrap(), 3);
        assert_eq!(blobs.blobs.lock().unwrap().len(), 3);
        std::fs::remove_file(root.join("src/copy.go")).unwrap();
        let removed = saving.prepare().await.unwrap();
        saving.commit(removed).await;
        // The old main.go contents are named by no manifest any more.
        assert_eq!(blobs.blobs.lock().unwrap().len(), 2);
        let _ = manifest;

        // The manifest and blobs are sealed: no plaintext is stored.
        assert!(!String::from_utf8_lossy(&manifest_after).contains("main.go"));
        for blob in blobs.blobs.lock().unwrap().values() {
            assert!(!String::from_utf8_lossy(blob).contains("package"));
        }

        let second = tempfile::tempdir().unwrap();
        let restoring = saver(second.path(), &keyring, &blobs, task);
        let final_manifest = {
            let latest = saving.prepare().await.unwrap();
            let sealed = latest.sealed_manifest.clone();
            saving.commit(latest).await;
            sealed
        };
        restoring.restore(&final_manifest).await.unwrap();
        let r = second.path();
        assert_eq!(
            std::fs::read_to_string(r.join("src/main.go")).unwrap(),
            "package main // changed\n"
        );
        assert!(!r.join("src/copy.go").exists());
        assert!(r.join("src/empty").is_dir());
        assert_eq!(std::fs::read_link(r.join("link")).unwrap(), Path::new("src/main.go"));
        let mode = std::fs::metadata(r.join("run.sh")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        // After a restore, an unchanged workspace stores nothing new.
        let after_restore = restoring.prepare().await.unwrap();
        assert_eq!(after_restore.stored_bytes, 0);
    }

    #[tokio::test]
    async fn another_task_s_manifest_or_a_hostile_path_is_refused() {
        let keyring = keyring();
        let blobs = Arc::new(MemoryBlobs::default());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "a").unwrap();
        let mine = saver(dir.path(), &keyring, &blobs, TaskId(Uuid::new_v4()));
        let sealed = mine.prepare().await.unwrap().sealed_manifest;
        let other_dir = tempfile::tempdir().unwrap();
        let other = saver(other_dir.path(), &keyring, &blobs, TaskId(Uuid::new_v4()));
        assert!(matches!(other.restore(&sealed).await, Err(DurableError::Sealed(_))));

        let task = TaskId(Uuid::new_v4());
        let hostile = Manifest {
            entries: vec![Entry::Dir {
                path: "../outside".into(),
                mode: 0o755,
            }],
        };
        let sealed = keyring
            .seal_bytes(task, &serde_json::to_vec(&hostile).unwrap())
            .unwrap();
        let target = saver(other_dir.path(), &keyring, &blobs, task);
        assert!(matches!(target.restore(&sealed).await, Err(DurableError::Corrupt(_))));
        assert!(!other_dir.path().join("../outside").exists());
    }

    #[tokio::test]
    async fn a_workspace_over_the_limit_is_not_saved() {
        let keyring = keyring();
        let blobs = Arc::new(MemoryBlobs::default());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![0u8; 2048]).unwrap();
        let saving = WorkspaceSaver::new(
            TaskId(Uuid::new_v4()),
            "me",
            dir.path().to_owned(),
            keyring,
            blobs,
            1024,
        );
        assert!(matches!(saving.prepare().await, Err(DurableError::TooLarge { .. })));
    }
}
