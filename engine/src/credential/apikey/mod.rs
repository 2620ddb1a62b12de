//! API keys: format and generation, records, the store interface, the in-memory index.

pub mod format;
pub mod index;
pub mod record;

pub use format::{classify, fingerprint, generate, KeyDigest, KeyShape};
pub use index::MemoryIndex;
pub use record::{KeyEntry, KeyRecord, KeyStore, RateOverride, StoreError};
pub mod verify;
pub use verify::ApiKeyVerifier;
