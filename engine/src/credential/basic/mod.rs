//! HTTP Basic against htpasswd (issue 4). Placeholder: refuses every password.

use std::path::Path;
use std::time::SystemTime;

use crate::credential::Outcome;
use crate::decision::Reason;
use crate::policy::BasicDef;
use crate::request::Request;

pub struct BasicVerifier {
    realm: String,
}

impl BasicVerifier {
    pub fn new(def: &BasicDef, _base_dir: &Path) -> Result<Self, String> {
        Ok(Self {
            realm: def.realm.clone(),
        })
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub fn verify(&self, req: &Request, _now: SystemTime) -> Outcome {
        match req.headers.get_one("authorization") {
            crate::request::HeaderLookup::One(v)
                if v.len() > 6 && v.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("basic ")) =>
            {
                Outcome::Invalid(
                    Reason::CredentialInvalid,
                    "basic verification not available",
                )
            }
            _ => Outcome::Absent,
        }
    }
}
