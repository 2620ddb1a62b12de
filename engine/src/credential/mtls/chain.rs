//! Chain verification against a configured CA file, with rustls-webpki:
//! signatures, path building through forwarded intermediates, basic
//! constraints, the client-auth EKU and validity dates at the decision time.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

/// Why a chain did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainError {
    /// A certificate of the path is expired or not yet valid.
    Expired,
    /// Anything else: unknown issuer, bad signature, wrong EKU, not a CA, ...
    Invalid,
}

/// Trust anchors, parsed once at load.
pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
}

impl TrustStore {
    /// Reads every certificate of a PEM file as a trust anchor.
    pub fn load(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read ca_file `{shown}`: {e}"))?;
        let mut anchors = Vec::new();
        for (i, der) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
            let der = der.map_err(|e| format!("ca_file `{shown}`: bad pem: {e}"))?;
            let anchor = webpki::anchor_from_trusted_cert(&der).map_err(|e| {
                format!(
                    "ca_file `{shown}`: certificate {} is not usable as a trust anchor: {e}",
                    i + 1
                )
            })?;
            anchors.push(anchor.to_owned());
        }
        if anchors.is_empty() {
            return Err(format!("ca_file `{shown}` holds no pem certificate"));
        }
        Ok(Self { anchors })
    }

    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// Verifies `leaf` up to one of the anchors for client authentication at `now`.
    pub fn verify(
        &self,
        leaf: &[u8],
        intermediates: &[Vec<u8>],
        now: SystemTime,
    ) -> Result<(), ChainError> {
        let since_epoch = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ChainError::Invalid)?;
        let leaf = CertificateDer::from(leaf);
        let ee = EndEntityCert::try_from(&leaf).map_err(|_| ChainError::Invalid)?;
        let intermediates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|d| CertificateDer::from(d.as_slice()))
            .collect();
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &intermediates,
            UnixTime::since_unix_epoch(since_epoch),
            KeyUsage::client_auth(),
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| match e {
            webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. } => {
                ChainError::Expired
            }
            _ => ChainError::Invalid,
        })
    }
}
