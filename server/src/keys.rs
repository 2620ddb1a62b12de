//! Key management endpoints of the admin API (`/admin/v1/keys...`): reads
//! the body (bounded) and hands the call to [`crate::store::admin`].

use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use crate::respond::{self, Resp};
use crate::store::Store;

/// Largest admin request body.
const MAX_BODY: usize = 64 * 1024;

/// Answers a request under `/admin/v1/keys` (already authenticated).
pub async fn handle(store: Option<&Arc<Store>>, req: Request<Incoming>) -> Resp {
    let Some(store) = store else {
        return respond::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no key store is configured",
        );
    };
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return respond::error(
                StatusCode::BAD_REQUEST,
                "request body too large or unreadable",
            )
        }
    };
    let reply = crate::store::admin::handle(store, &method, &path, query.as_deref(), &body).await;
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond::json(status, &reply.body)
}
