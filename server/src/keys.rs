//! Key management endpoints of the admin API (`/admin/v1/keys...`).
//!
//! PLACEHOLDER: the key-store work fills this module (create, list, show,
//! revoke, rotate over the configured store). The admin router already
//! sends every `/admin/v1/keys` request here, after authentication.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use crate::respond::{self, Resp};

/// Answers a request under `/admin/v1/keys`.
pub async fn handle(req: Request<Incoming>) -> Resp {
    let _ = req;
    respond::error(
        StatusCode::NOT_IMPLEMENTED,
        "key management is not available in this build",
    )
}
