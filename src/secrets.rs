//! Task secrets at rest: sealed with ChaCha20-Poly1305 before they reach the
//! database, opened only by the worker that runs the task.
//!
//! A sealed value is text: `sealed:v1:<key id>:<base64(nonce ‖ ciphertext)>`.
//! Every value gets a fresh random 96-bit nonce, and the task id is the
//! associated data, so a ciphertext copied onto another task does not open.
//! Keys come from `secrets.keys` (`id:base64key`, the first one seals, all of
//! them open) or, when none is configured, from a key file created on first
//! start (see [`Keyring::from_settings`]).
//!
//! **Invariant:** there is no plaintext fallback. A value that is not sealed,
//! or that no configured key opens, is an error.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde_json::{Map, Value};

use crate::config::SecretsSettings;
use crate::model::TaskId;

const PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 12;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("invalid secrets configuration: {0}")]
    Config(String),
    #[error("cannot read or create the secrets key file {path}: {source}")]
    KeyFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the task's secrets are not encrypted; run `scaffolder secrets rotate` to encrypt them")]
    NotSealed,
    #[error("the task's secrets were encrypted with key '{0}', which is not configured in secrets.keys")]
    UnknownKey(String),
    #[error("the task's secrets cannot be decrypted with key '{0}' (wrong key, or the value was altered or moved from another task)")]
    Undecryptable(String),
    #[error("the task's secrets are malformed: {0}")]
    Malformed(String),
}

/// The configured keys: the first seals, every one opens.
pub struct Keyring {
    primary: String,
    keys: HashMap<String, ChaCha20Poly1305>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("primary", &self.primary)
            .field("ids", &ids)
            .finish()
    }
}

fn parse_key(entry: &str) -> Result<(String, ChaCha20Poly1305), SecretsError> {
    let (id, key) = entry
        .trim()
        .split_once(':')
        .ok_or_else(|| SecretsError::Config("a key must look like `id:base64key`".into()))?;
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(SecretsError::Config(format!(
            "key id {id:?} must be non-empty and use only letters, digits, '-', '_' and '.'"
        )));
    }
    let bytes = B64
        .decode(key.trim())
        .map_err(|_| SecretsError::Config(format!("key '{id}' is not base64")))?;
    if bytes.len() != 32 {
        return Err(SecretsError::Config(format!(
            "key '{id}' must be 32 bytes (44 base64 characters), got {} bytes",
            bytes.len()
        )));
    }
    Ok((id.to_owned(), ChaCha20Poly1305::new(Key::from_slice(&bytes))))
}

/// A new `id:base64key` entry.
pub fn generate_key_entry(id: &str) -> String {
    let key = ChaCha20Poly1305::generate_key(&mut OsRng);
    format!("{id}:{}", B64.encode(key))
}

impl Keyring {
    /// From `id:base64key` entries, the first being the sealing key.
    pub fn from_entries<S: AsRef<str>>(entries: &[S]) -> Result<Keyring, SecretsError> {
        let mut keys = HashMap::new();
        let mut primary = None;
        for entry in entries {
            let (id, cipher) = parse_key(entry.as_ref())?;
            if keys.contains_key(&id) {
                return Err(SecretsError::Config(format!("key id '{id}' is configured twice")));
            }
            primary.get_or_insert_with(|| id.clone());
            keys.insert(id, cipher);
        }
        let primary = primary.ok_or_else(|| SecretsError::Config("no key configured".into()))?;
        Ok(Keyring { primary, keys })
    }

    /// `secrets.keys` when set; otherwise the key file, created with mode
    /// 0600 on first start. Replicas that share a database must share the
    /// keys, so a generated file only suits a single replica.
    pub fn from_settings(settings: &SecretsSettings) -> Result<Keyring, SecretsError> {
        if !settings.keys.is_empty() {
            let entries: Vec<&str> = settings.keys.iter().map(crate::config::Secret::expose).collect();
            return Keyring::from_entries(&entries);
        }
        let path = settings.key_file();
        let entries = read_or_create_key_file(&path)?;
        Keyring::from_entries(&entries)
    }

    /// The id of the key that seals.
    pub fn primary_id(&self) -> &str {
        &self.primary
    }

    /// Seals a task's secrets for storage.
    pub fn seal(&self, task: TaskId, secrets: &Map<String, Value>) -> Result<String, SecretsError> {
        let cipher = self
            .keys
            .get(&self.primary)
            .ok_or_else(|| SecretsError::UnknownKey(self.primary.clone()))?;
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let plaintext = serde_json::to_vec(secrets).map_err(|e| SecretsError::Malformed(e.to_string()))?;
        let aad = task.0.as_bytes();
        let ciphertext = cipher
            .encrypt(&nonce, Payload { msg: &plaintext, aad })
            .map_err(|_| SecretsError::Malformed("encryption failed".into()))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(format!("{PREFIX}{}:{}", self.primary, B64.encode(blob)))
    }

    /// Opens what [`Keyring::seal`] produced for the same task.
    pub fn open(&self, task: TaskId, sealed: &str) -> Result<Map<String, Value>, SecretsError> {
        let (key_id, blob) = split_sealed(sealed).ok_or(SecretsError::NotSealed)?;
        let cipher = self
            .keys
            .get(key_id)
            .ok_or_else(|| SecretsError::UnknownKey(key_id.to_owned()))?;
        let blob = B64
            .decode(blob)
            .map_err(|_| SecretsError::Malformed("the ciphertext is not base64".into()))?;
        if blob.len() < NONCE_LEN {
            return Err(SecretsError::Malformed("the ciphertext is truncated".into()));
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let plaintext = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: task.0.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Undecryptable(key_id.to_owned()))?;
        serde_json::from_slice(&plaintext).map_err(|_| SecretsError::Malformed("not a JSON object".into()))
    }

    /// Seals bytes bound to a task (saved workspace files and manifests):
    /// `v1:<key id>:` then nonce ‖ ciphertext. Rendered files can hold
    /// secret material, so they are never stored in the clear.
    pub fn seal_bytes(&self, task: TaskId, plaintext: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let cipher = self
            .keys
            .get(&self.primary)
            .ok_or_else(|| SecretsError::UnknownKey(self.primary.clone()))?;
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: task.0.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Malformed("encryption failed".into()))?;
        let header = format!("v1:{}:", self.primary);
        let mut sealed = Vec::with_capacity(header.len() + NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(header.as_bytes());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Opens what [`Keyring::seal_bytes`] produced for the same task.
    pub fn open_bytes(&self, task: TaskId, sealed: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let rest = sealed.strip_prefix(b"v1:").ok_or(SecretsError::NotSealed)?;
        let colon = rest
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(|| SecretsError::Malformed("no key id".into()))?;
        let key_id = std::str::from_utf8(&rest[..colon]).map_err(|_| SecretsError::Malformed("key id".into()))?;
        let cipher = self
            .keys
            .get(key_id)
            .ok_or_else(|| SecretsError::UnknownKey(key_id.to_owned()))?;
        let blob = &rest[colon + 1..];
        if blob.len() < NONCE_LEN {
            return Err(SecretsError::Malformed("the ciphertext is truncated".into()));
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: task.0.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Undecryptable(key_id.to_owned()))
    }

    /// What re-sealing one stored value with the primary key gives: values
    /// sealed with another key, and plaintext left by versions before
    /// encryption, are rewritten (with `plaintext_only`, only the latter, as
    /// every start does); values no key opens are left alone (their tasks
    /// fail when claimed). The store walk is `service::reseal_stored`.
    pub fn reseal(&self, task: TaskId, stored: &str, plaintext_only: bool) -> Result<Reseal, SecretsError> {
        let secrets = match split_sealed(stored) {
            Some((key_id, _)) if key_id == self.primary || plaintext_only => return Ok(Reseal::Keep),
            Some(_) => match self.open(task, stored) {
                Ok(secrets) => secrets,
                Err(e) => {
                    tracing::warn!(task_id = %task, error = %e, "cannot re-encrypt the task's secrets");
                    return Ok(Reseal::Unreadable);
                }
            },
            None => match serde_json::from_str::<Map<String, Value>>(stored) {
                Ok(secrets) => secrets,
                Err(_) => return Ok(Reseal::Unreadable),
            },
        };
        Ok(Reseal::Rewrite(self.seal(task, &secrets)?))
    }
}

/// What [`Keyring::reseal`] decided for one stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reseal {
    /// Already sealed with the primary key (or not plaintext, when only
    /// plaintext is re-sealed).
    Keep,
    /// Store this instead.
    Rewrite(String),
    /// No configured key opens it.
    Unreadable,
}

/// What re-sealing the stored secrets did (`service::reseal_stored`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResealReport {
    pub resealed: usize,
    pub unreadable: usize,
}

fn split_sealed(sealed: &str) -> Option<(&str, &str)> {
    sealed.strip_prefix(PREFIX)?.split_once(':')
}

/// Reads the key file, creating it (mode 0600, one generated key) when it
/// does not exist. Creation is atomic: two processes starting at once end up
/// with the same key.
fn read_or_create_key_file(path: &Path) -> Result<Vec<String>, SecretsError> {
    let io = |source| SecretsError::KeyFile {
        path: path.to_owned(),
        source,
    };
    if !path.exists() {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        {
            use std::os::unix::fs::PermissionsExt;
            temp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
        let id = format!("local-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        writeln!(temp, "{}", generate_key_entry(&id)).map_err(io)?;
        temp.as_file().sync_all().map_err(io)?;
        match temp.persist_noclobber(path) {
            Ok(_) => tracing::warn!(
                path = %path.display(),
                "generated a key for task secrets; replicas that share a database must share it: \
                 configure secrets.keys (or the same secrets.key_file) on every replica"
            ),
            // Another process created it first: use theirs.
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e.error)),
        }
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let entries: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if entries.is_empty() {
        return Err(SecretsError::Config(format!(
            "key file {} holds no key",
            path.display()
        )));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn secrets() -> Map<String, Value> {
        serde_json::from_value(json!({"token": "hunter2-secret"})).unwrap()
    }

    #[test]
    fn sealed_values_open_only_for_their_task_and_a_configured_key() {
        let old_entry = generate_key_entry("old");
        let old = Keyring::from_entries(std::slice::from_ref(&old_entry)).unwrap();
        let task = TaskId::new();
        let sealed = old.seal(task, &secrets()).unwrap();
        assert!(sealed.starts_with("sealed:v1:old:"), "{sealed}");
        assert!(!sealed.contains("hunter2"));
        assert_eq!(old.open(task, &sealed).unwrap(), secrets());
        // A fresh nonce every time.
        assert_ne!(old.seal(task, &secrets()).unwrap(), sealed);
        // Moved to another task: the associated data differs.
        assert!(matches!(
            old.open(TaskId::new(), &sealed),
            Err(SecretsError::Undecryptable(_))
        ));
        // Another keyring with a key of the same id cannot open it.
        let impostor = Keyring::from_entries(&[generate_key_entry("old")]).unwrap();
        assert!(matches!(
            impostor.open(task, &sealed),
            Err(SecretsError::Undecryptable(_))
        ));
        // Rotation: the new key seals, the old one still opens.
        let new_entry = generate_key_entry("new");
        let rotated = Keyring::from_entries(&[new_entry.clone(), old_entry]).unwrap();
        assert_eq!(rotated.primary_id(), "new");
        assert_eq!(rotated.open(task, &sealed).unwrap(), secrets());
        // Without the old key: a clear error, no plaintext.
        let only_new = Keyring::from_entries(&[new_entry]).unwrap();
        let err = only_new.open(task, &sealed).unwrap_err();
        assert!(err.to_string().contains("key 'old'"), "{err}");
        assert!(matches!(
            only_new.open(task, "{\"token\":\"x\"}"),
            Err(SecretsError::NotSealed)
        ));
    }

    #[test]
    fn bad_keys_are_configuration_errors() {
        for entry in ["nocolon", ":AAAA", "k:not base64!", "k:AAAA", "bad id:AAAA"] {
            assert!(
                matches!(Keyring::from_entries(&[entry]), Err(SecretsError::Config(_))),
                "{entry}"
            );
        }
        let entry = generate_key_entry("k");
        assert!(Keyring::from_entries(&[entry.clone(), entry]).is_err());
        assert!(Keyring::from_entries::<String>(&[]).is_err());
    }

    #[test]
    fn the_default_key_file_is_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let settings = SecretsSettings {
            keys: Vec::new(),
            key_file: Some(dir.path().join("sub/secrets.key")),
        };
        let first = Keyring::from_settings(&settings).unwrap();
        let mode = std::fs::metadata(settings.key_file()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = Keyring::from_settings(&settings).unwrap();
        assert_eq!(first.primary_id(), second.primary_id());
        let task = TaskId::new();
        let sealed = first.seal(task, &secrets()).unwrap();
        assert_eq!(second.open(task, &sealed).unwrap(), secrets());
    }
}
