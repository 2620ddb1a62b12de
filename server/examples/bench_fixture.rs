//! Writes what `scripts/http_bench.sh` needs into a directory: a policy
//! with an API-key route, a static key file holding one key's digest, and
//! prints that key (a fresh one each run, for benchmarking only).
#![forbid(unsafe_code)]

use std::path::PathBuf;

use portcullis_engine::credential::apikey::{fingerprint, generate, KeyDigest};

const POLICY: &str = r#"version: 1
credentials:
  partner_key:
    type: api_key
    in: [header:x-api-key, bearer]
    prefixes: [pk_live_, pk_test_]
routes:
  - name: charges.read
    match: {host: api.example.com, methods: [GET, HEAD], path: "/v1/charges/{id}"}
    require: partner_key
    scopes: {all_of: [charges:read]}
  - name: health
    match: {path: /healthz}
    require: public
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: bench_fixture DIR")?);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("policy.yaml"), POLICY)?;
    let key = generate("pk_live_")?;
    let keys = serde_json::json!({"keys": [{
        "sha256": KeyDigest::of(&key).to_hex(),
        "fingerprint": fingerprint(&key),
        "record": {"id": "key_bench", "consumer": "bench", "scopes": ["charges:read"],
                   "created_at": 0, "expires_at": null, "not_before": null, "revoked_at": null}
    }]});
    std::fs::write(dir.join("keys.json"), keys.to_string())?;
    println!("{key}");
    Ok(())
}
