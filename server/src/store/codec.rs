//! Record columns as every backend stores them: plain scalars, with lists
//! and maps as JSON text (portable across SQLite, PostgreSQL and Redis
//! hashes). Digests are lowercase hex; keys are never stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use ipnet::IpNet;
use portcullis_engine::credential::apikey::{KeyDigest, KeyRecord, RateOverride};

use super::model::{OpError, StoredRecord, VersionRow};

/// A record's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    pub id: String,
    pub consumer: String,
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub not_before: Option<i64>,
    pub revoked_at: Option<i64>,
    pub allowed_cidrs: String,
    pub metadata: String,
    pub rate_limit: Option<String>,
    pub rev: i64,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> OpError {
    OpError::Corrupt(format!("{what}: {e}"))
}

fn json<T: serde::Serialize>(v: &T) -> String {
    // Serialising strings, string maps and plain structs cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

impl RecordRow {
    pub fn encode(r: &KeyRecord, rev: i64) -> Self {
        RecordRow {
            id: r.id.to_string(),
            consumer: r.consumer.to_string(),
            scopes: json(&r.scopes),
            created_at: r.created_at,
            expires_at: r.expires_at,
            not_before: r.not_before,
            revoked_at: r.revoked_at,
            allowed_cidrs: json(&r.allowed_cidrs),
            metadata: json(&r.metadata),
            rate_limit: r.rate_limit.as_ref().map(json),
            rev,
        }
    }

    pub fn decode(&self) -> Result<KeyRecord, OpError> {
        let scopes: Vec<String> =
            serde_json::from_str(&self.scopes).map_err(|e| corrupt("scopes", e))?;
        let allowed_cidrs: Vec<IpNet> =
            serde_json::from_str(&self.allowed_cidrs).map_err(|e| corrupt("allowed_cidrs", e))?;
        let metadata: BTreeMap<String, String> =
            serde_json::from_str(&self.metadata).map_err(|e| corrupt("metadata", e))?;
        let rate_limit: Option<RateOverride> = match &self.rate_limit {
            Some(s) => Some(serde_json::from_str(s).map_err(|e| corrupt("rate_limit", e))?),
            None => None,
        };
        Ok(KeyRecord {
            id: Arc::from(self.id.as_str()),
            consumer: Arc::from(self.consumer.as_str()),
            scopes: Arc::from(scopes),
            created_at: self.created_at,
            expires_at: self.expires_at,
            not_before: self.not_before,
            revoked_at: self.revoked_at,
            allowed_cidrs,
            metadata,
            rate_limit,
        })
    }
}

pub fn digest_from_hex(s: &str) -> Result<KeyDigest, OpError> {
    KeyDigest::from_hex(s).ok_or_else(|| corrupt("digest", "not 64 hex characters"))
}

/// A version's columns, digest in hex.
#[derive(Debug, Clone)]
pub struct VersionCols {
    pub record_id: String,
    pub digest: String,
    pub prefix: String,
    pub fingerprint: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

impl VersionCols {
    pub fn decode(&self) -> Result<VersionRow, OpError> {
        Ok(VersionRow {
            digest: digest_from_hex(&self.digest)?,
            prefix: self.prefix.clone(),
            fingerprint: self.fingerprint.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
        })
    }
}

/// Groups rows into records (rows may come in any order); a version whose
/// record is missing is ignored (it cannot be validated without one).
pub fn assemble(
    records: Vec<RecordRow>,
    versions: Vec<VersionCols>,
) -> Result<Vec<StoredRecord>, OpError> {
    let mut by_id: std::collections::HashMap<String, StoredRecord> =
        std::collections::HashMap::with_capacity(records.len());
    for row in records {
        let rec = row.decode()?;
        by_id.insert(
            row.id,
            StoredRecord {
                record: Arc::new(rec),
                versions: Vec::new(),
                rev: row.rev,
            },
        );
    }
    for v in versions {
        if let Some(r) = by_id.get_mut(&v.record_id) {
            r.versions.push(v.decode()?);
        }
    }
    let mut out: Vec<StoredRecord> = by_id.into_values().collect();
    out.sort_by(|a, b| a.record.id.cmp(&b.record.id));
    for r in &mut out {
        r.versions.sort_by_key(|v| v.created_at);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let r = KeyRecord {
            id: "key_1".into(),
            consumer: "acme".into(),
            scopes: Arc::from(vec!["a:b".to_string()]),
            created_at: 5,
            expires_at: Some(9),
            not_before: None,
            revoked_at: Some(7),
            allowed_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
            metadata: [("team".to_string(), "x".to_string())].into(),
            rate_limit: Some(RateOverride {
                limit: 1,
                per: std::time::Duration::from_millis(1500),
                burst: 3,
            }),
        };
        assert_eq!(RecordRow::encode(&r, 3).decode().unwrap(), r);
        let mut row = RecordRow::encode(&r, 3);
        row.scopes = "{".into();
        assert!(matches!(row.decode(), Err(OpError::Corrupt(_))));
    }
}
