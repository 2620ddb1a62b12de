//! mTLS identity from gateway headers (issue 4). Placeholder: refuses every certificate.

use std::path::Path;
use std::time::SystemTime;

use crate::credential::Outcome;
use crate::decision::Reason;
use crate::policy::{MtlsDef, MtlsSource};
use crate::request::Request;

pub struct MtlsVerifier {
    header: String,
}

impl MtlsVerifier {
    pub fn new(def: &MtlsDef, _base_dir: &Path) -> Result<Self, String> {
        let header = match &def.source {
            MtlsSource::Xfcc => "x-forwarded-client-cert".to_string(),
            MtlsSource::PemHeader { header, .. } => header.clone(),
        };
        Ok(Self { header })
    }

    pub fn verify(&self, req: &Request, _now: SystemTime) -> Outcome {
        if req.headers.get_all(&self.header).next().is_none() {
            Outcome::Absent
        } else {
            Outcome::Invalid(Reason::CredentialInvalid, "mtls verification not available")
        }
    }
}
