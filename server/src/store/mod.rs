//! Key stores.
//!
//! PLACEHOLDER: this module is replaced by the key-store work (SQLite,
//! PostgreSQL, Redis backends). Until then every `sqlite://` URL opens an
//! empty in-memory index, and other schemes are refused.

use std::sync::Arc;

use portcullis_engine::credential::apikey::MemoryIndex;
use portcullis_engine::credential::KeyStore;

/// Opens the key store named by `url`.
pub fn open(url: &str) -> Result<Arc<dyn KeyStore>, String> {
    if url.starts_with("sqlite://") {
        Ok(Arc::new(MemoryIndex::new()))
    } else {
        Err(format!(
            "unsupported key store `{}`: this build supports sqlite:// only",
            url.split("://").next().unwrap_or(url)
        ))
    }
}
