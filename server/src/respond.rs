//! Building responses: JSON answers, errors, and a decision expressed as an
//! HTTP status for gateways.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use portcullis_engine::decision::IdentityNames;
use portcullis_engine::Decision;

pub type Body = Full<Bytes>;
pub type Resp = Response<Body>;

pub static X_AUTH_REASON: HeaderName = HeaderName::from_static("x-auth-reason");
pub static X_ENVOY_AUTH_HEADERS_TO_REMOVE: HeaderName =
    HeaderName::from_static("x-envoy-auth-headers-to-remove");

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

fn with_status(status: StatusCode, ctype: HeaderValue, body: Bytes) -> Resp {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, ctype);
    r.headers_mut().insert(CACHE_CONTROL, NO_STORE);
    r
}

/// A JSON body.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Resp {
    with_status(status, JSON, Bytes::from(body))
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Resp {
    match serde_json::to_vec(value) {
        Ok(b) => json_bytes(status, b),
        Err(_) => internal_error(),
    }
}

/// `{"error": "..."}`; `message` names what is wrong, never a header value or key.
pub fn error(status: StatusCode, message: &str) -> Resp {
    json(status, &serde_json::json!({ "error": message }))
}

pub fn internal_error() -> Resp {
    with_status(
        StatusCode::INTERNAL_SERVER_ERROR,
        JSON,
        Bytes::from_static(br#"{"error":"internal error"}"#),
    )
}

pub fn text(status: StatusCode, ctype: &'static str, body: String) -> Resp {
    with_status(status, HeaderValue::from_static(ctype), Bytes::from(body))
}

pub fn not_found() -> Resp {
    with_status(
        StatusCode::NOT_FOUND,
        JSON,
        Bytes::from_static(br#"{"error":"not found"}"#),
    )
}

pub fn method_not_allowed(allow: &'static str) -> Resp {
    let mut r = with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        JSON,
        Bytes::from_static(br#"{"error":"method not allowed"}"#),
    );
    r.headers_mut()
        .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// How a gateway reads the status of a forward-auth answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// The decision's status as is (Traefik, Caddy: 2xx allows, the rest goes to the client).
    Standard,
    /// nginx `auth_request`: only 401 and 403 pass; 400, 429 and 503 become 403
    /// (the reason stays in `x-auth-reason`, `retry-after` is kept).
    Nginx,
    /// Envoy `ext_authz`: exactly 200 allows; 5xx is an error, not a deny.
    Envoy,
}

fn wire_status(d: &Decision, style: Style) -> u16 {
    match (style, d.status) {
        (_, 200) if d.allow => 200,
        (Style::Nginx, 401) => 401,
        (Style::Nginx, _) => 403,
        (_, s) => s,
    }
}

/// A decision as an HTTP status with the decision's headers (identity
/// headers on allow, `www-authenticate`, `retry-after`), `x-auth-reason`
/// always, and `extra` headers on allow.
///
/// With `every_identity`, an allow carries all four identity headers, empty
/// when there is nothing to say (a public route): gateways that copy named
/// headers then overwrite or drop a client's copy instead of passing it on
/// (Caddy before 2.10 even sets its own unexpanded placeholder for a
/// header missing from the answer).
///
/// A header the decision names that cannot be written (a principal with a
/// control character) fails closed: 500, which every gateway treats as a deny.
pub fn decision(
    d: &Decision,
    style: Style,
    extra_on_allow: Option<(&HeaderName, HeaderValue)>,
    every_identity: Option<&IdentityNames>,
) -> Resp {
    let status = wire_status(d, style);
    let Ok(code) = StatusCode::from_u16(status) else {
        return internal_error();
    };
    let body = if d.allow {
        Bytes::new()
    } else {
        Bytes::from(format!(
            r#"{{"reason":"{}","status":{}}}"#,
            d.reason.as_str(),
            d.status
        ))
    };
    let mut r = with_status(code, JSON, body);
    let h = r.headers_mut();
    for (name, value) in &d.response_headers() {
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) else {
            tracing::error!(
                header = &**name,
                "decision header cannot be written as HTTP; answering 500"
            );
            return internal_error();
        };
        h.append(n, v);
    }
    h.insert(
        X_AUTH_REASON.clone(),
        HeaderValue::from_static(d.reason.as_str()),
    );
    if d.allow {
        if let Some((n, v)) = extra_on_allow {
            h.insert(n.clone(), v);
        }
        if let Some(names) = every_identity {
            for name in [
                &names.principal,
                &names.consumer,
                &names.scopes,
                &names.credential,
            ] {
                if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
                    if !h.contains_key(&n) {
                        h.insert(n, HeaderValue::from_static(""));
                    }
                }
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_engine::Reason;

    fn rate_limited() -> Decision {
        let mut d = Decision::deny(Reason::RateLimited);
        d.headers.push(("retry-after".into(), "7".into()));
        d
    }

    #[test]
    fn nginx_style_turns_429_503_400_into_403_keeping_the_reason() {
        let r = decision(&rate_limited(), Style::Nginx, None, None);
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()["x-auth-reason"], "rate_limited");
        assert_eq!(r.headers()["retry-after"], "7");
        for reason in [Reason::StoreUnavailable, Reason::BadPath] {
            assert_eq!(
                decision(&Decision::deny(reason), Style::Nginx, None, None).status(),
                403
            );
        }
        assert_eq!(
            decision(
                &Decision::deny(Reason::CredentialMissing),
                Style::Nginx,
                None,
                None
            )
            .status(),
            401
        );
    }

    #[test]
    fn standard_and_envoy_keep_statuses() {
        assert_eq!(
            decision(&rate_limited(), Style::Standard, None, None).status(),
            429
        );
        assert_eq!(
            decision(
                &Decision::deny(Reason::StoreUnavailable),
                Style::Envoy,
                None,
                None
            )
            .status(),
            503
        );
    }

    #[test]
    fn allow_carries_identity_and_extra_headers() {
        let mut d = Decision::deny(Reason::Allowed).with_allow();
        d.headers.push(("x-auth-consumer".into(), "acme".into()));
        let r = decision(
            &d,
            Style::Envoy,
            Some((
                &X_ENVOY_AUTH_HEADERS_TO_REMOVE,
                HeaderValue::from_static("x-api-key"),
            )),
            None,
        );
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-auth-consumer"], "acme");
        assert_eq!(r.headers()["x-envoy-auth-headers-to-remove"], "x-api-key");
        assert_eq!(r.headers()["x-auth-reason"], "allowed");
    }

    #[test]
    fn every_identity_header_on_allow_when_asked() {
        let names = IdentityNames {
            principal: "x-auth-principal".into(),
            consumer: "x-auth-consumer".into(),
            scopes: "x-auth-scopes".into(),
            credential: "x-auth-credential".into(),
        };
        let allow = Decision::deny(Reason::Allowed).with_allow();
        let r = decision(&allow, Style::Standard, None, Some(&names));
        assert_eq!(r.headers()["x-auth-consumer"], "");
        assert_eq!(r.headers()["x-auth-principal"], "");
        let deny = Decision::deny(Reason::NoRoute);
        let r = decision(&deny, Style::Standard, None, Some(&names));
        assert!(r.headers().get("x-auth-consumer").is_none());
    }

    #[test]
    fn unwritable_identity_fails_closed() {
        let mut d = Decision::deny(Reason::Allowed).with_allow();
        d.headers.push(("x-auth-principal".into(), "a\nb".into()));
        assert_eq!(decision(&d, Style::Standard, None, None).status(), 500);
    }
}
