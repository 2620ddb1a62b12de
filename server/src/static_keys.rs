//! Read-only API keys from a JSON file, consulted before the key store.
//!
//! The file holds SHA-256 digests and records, never keys, so it can live in
//! a mounted secret or a repository like any other configuration:
//!
//! ```json
//! {"keys": [{"sha256": "<64 hex>", "fingerprint": "pk_test_Ab…wxyz",
//!            "record": {"id": "key_1", "consumer": "acme", "scopes": ["charges:read"],
//!                       "created_at": 1700000000}}]}
//! ```
//!
//! Useful for service keys that must work even before a store is reachable,
//! and for tests and demos that need keys without a store.

use std::path::Path;
use std::sync::Arc;

use portcullis_engine::credential::apikey::{
    KeyDigest, KeyEntry, KeyRecord, KeyStore, MemoryIndex, StoreError,
};
use serde::Deserialize;

/// Why a static key file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StaticKeysError {
    /// The file could not be read.
    #[error("cannot read static key file `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not JSON of the expected shape.
    #[error("static key file `{path}` is malformed: {message}")]
    Malformed { path: String, message: String },
    /// An entry's `sha256` is not 64 hex characters.
    #[error(
        "static key file `{path}`: entry {index} has a `sha256` that is not 64 hex characters"
    )]
    BadDigest { path: String, index: usize },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    keys: Vec<EntryShape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryShape {
    sha256: String,
    fingerprint: String,
    #[serde(default)]
    key_expires_at: Option<i64>,
    record: KeyRecord,
}

/// Loads a static key file into an index.
pub fn load(path: &Path) -> Result<MemoryIndex, StaticKeysError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| StaticKeysError::Read {
        path: shown.clone(),
        source,
    })?;
    // serde_json's message names positions and types, never string values
    // of a file that holds digests only.
    let file: FileShape =
        serde_json::from_slice(&bytes).map_err(|e| StaticKeysError::Malformed {
            path: shown.clone(),
            message: e.to_string(),
        })?;
    let index = MemoryIndex::new();
    for (i, e) in file.keys.into_iter().enumerate() {
        let digest = KeyDigest::from_hex(&e.sha256.to_ascii_lowercase()).ok_or(
            StaticKeysError::BadDigest {
                path: shown.clone(),
                index: i,
            },
        )?;
        index.insert(
            digest,
            KeyEntry {
                record: Arc::new(e.record),
                fingerprint: e.fingerprint.into(),
                key_expires_at: e.key_expires_at,
            },
        );
    }
    Ok(index)
}

/// Static keys first, then the store.
pub struct Layered {
    first: MemoryIndex,
    then: Arc<dyn KeyStore>,
}

impl KeyStore for Layered {
    fn lookup(&self, digest: &KeyDigest) -> Result<Option<KeyEntry>, StoreError> {
        match self.first.get(digest) {
            Some(e) => Ok(Some(e)),
            None => self.then.lookup(digest),
        }
    }
}

/// Wraps `store` with the keys of `file`, if one is given.
pub fn layer(
    store: Arc<dyn KeyStore>,
    file: Option<&Path>,
) -> Result<Arc<dyn KeyStore>, StaticKeysError> {
    match file {
        None => Ok(store),
        Some(path) => Ok(Arc::new(Layered {
            first: load(path)?,
            then: store,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_engine::credential::apikey::{fingerprint, generate};

    #[test]
    fn loads_digests_and_layers_before_the_store() {
        let key = generate("pk_test_").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let json = serde_json::json!({"keys": [{
            "sha256": KeyDigest::of(&key).to_hex(),
            "fingerprint": fingerprint(&key),
            "record": {"id": "key_1", "consumer": "acme", "scopes": ["a"], "created_at": 0,
                       "expires_at": null, "not_before": null, "revoked_at": null}
        }]});
        std::fs::write(&path, json.to_string()).unwrap();
        let store = layer(Arc::new(MemoryIndex::new()), Some(&path)).unwrap();
        let found = store.lookup(&KeyDigest::of(&key)).unwrap().unwrap();
        assert_eq!(&*found.record.id, "key_1");
        assert!(store.lookup(&KeyDigest::of("other")).unwrap().is_none());
        // The file holds no key.
        assert!(!std::fs::read_to_string(&path).unwrap().contains(&key));
    }

    #[test]
    fn refuses_bad_digests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        std::fs::write(
            &path,
            r#"{"keys":[{"sha256":"zz","fingerprint":"f","record":{"id":"a","consumer":"b","scopes":[],"created_at":0}}]}"#,
        )
        .unwrap();
        assert!(matches!(
            load(&path),
            Err(StaticKeysError::BadDigest { index: 0, .. })
        ));
    }
}
