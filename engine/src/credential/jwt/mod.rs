//! JWT verification (issue 4). Placeholder until implemented: refuses every token.

use std::path::Path;
use std::time::SystemTime;

use crate::credential::Outcome;
use crate::decision::Reason;
use crate::policy::JwtDef;
use crate::request::Request;

pub struct JwtVerifier {
    sources: Vec<crate::policy::Source>,
}

impl JwtVerifier {
    pub fn new(def: &JwtDef, _base_dir: &Path) -> Result<Self, String> {
        Ok(Self {
            sources: def.sources.clone(),
        })
    }

    pub fn verify(&self, req: &Request, _now: SystemTime) -> Outcome {
        match crate::credential::extract::single(&req.headers, &self.sources, |_| true) {
            crate::credential::extract::Found::Absent => Outcome::Absent,
            _ => Outcome::Invalid(Reason::CredentialInvalid, "jwt verification not available"),
        }
    }
}
