//! The admin listener: every call needs `Authorization: Bearer
//! $PORTCULLIS_ADMIN_TOKEN`. Without a configured token the listener is not
//! started at all (see `serve`), never left open.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::reload::{Reloader, Trigger};
use crate::respond::{self, Handled, Resp};

/// Shortest admin token accepted: a guessable token would make the admin API a door.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why the admin API cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The configured token is too short to be a secret.
    #[error("PORTCULLIS_ADMIN_TOKEN must be at least {MIN_TOKEN_LEN} characters")]
    TokenTooShort,
}

struct Inner {
    /// SHA-256 of the token: comparing digests keeps the comparison constant
    /// time whatever the length of what a caller sends.
    token_digest: [u8; 32],
    reloader: Arc<Reloader>,
}

/// The admin service; cheap to clone.
#[derive(Clone)]
pub struct AdminApp {
    inner: Arc<Inner>,
    keys: Option<Arc<crate::store::Store>>,
}

// Holds a secret's digest: never print it.
impl std::fmt::Debug for AdminApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminApp { token: <redacted> }")
    }
}

impl AdminApp {
    pub fn new(token: &str, reloader: Arc<Reloader>) -> Result<Self, AdminError> {
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(AdminError::TokenTooShort);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                token_digest: Sha256::digest(token.as_bytes()).into(),
                reloader,
            }),
            keys: None,
        })
    }

    /// Serves `/admin/v1/keys...` over this store.
    pub fn with_store(mut self, store: Arc<crate::store::Store>) -> Self {
        self.keys = Some(store);
        self
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let Some(token) = bearer(value.as_bytes()) else {
            return false;
        };
        let presented: [u8; 32] = Sha256::digest(token).into();
        presented.ct_eq(&self.inner.token_digest).into()
    }

    pub fn handle(&self, req: Request<Incoming>) -> Handled {
        let admin = self.clone();
        Handled::Later(Box::pin(async move { admin.route(req).await }))
    }

    async fn route(&self, req: Request<Incoming>) -> Resp {
        if !self.authorized(req.headers()) {
            let mut r = respond::error(StatusCode::UNAUTHORIZED, "admin token required");
            r.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="portcullis-admin""#),
            );
            return r;
        }
        let path = req.uri().path();
        match path {
            "/admin/v1/reload" => match *req.method() {
                Method::POST => self.reload().await,
                _ => respond::method_not_allowed("POST"),
            },
            p if p == "/admin/v1/keys" || p.starts_with("/admin/v1/keys/") => {
                crate::keys::handle(self.keys.as_ref(), req).await
            }
            _ => respond::not_found(),
        }
    }

    async fn reload(&self) -> Resp {
        let attempt = self.inner.reloader.reload(Trigger::Admin).await;
        let status = if attempt.ok {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        match serde_json::to_value(&attempt) {
            Ok(v) => respond::json(status, &v),
            Err(_) => respond::internal_error(),
        }
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, one or more spaces).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let rest = value.get(6..)?;
    let token = rest.trim_ascii_start();
    (token.len() < rest.len() && !token.is_empty()).then_some(token.trim_ascii_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer   abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Bearerabc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Basic abc"), None);
    }
}
