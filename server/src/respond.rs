//! Building responses: JSON answers, errors, and a decision expressed as an
//! HTTP status for gateways.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use std::cell::RefCell;
use std::sync::Arc;

use portcullis_engine::decision::IdentityNames;
use portcullis_engine::{Decision, Reason};
use rustc_hash::FxHashMap;

pub type Body = Full<Bytes>;
pub type Resp = Response<Body>;

/// What a handler gives back: an answer now, or work that awaits (reading a
/// body, a reload) and runs under the request timeout.
pub enum Handled {
    Ready(Resp),
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = Resp> + Send>>),
}

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

/// The identity header names of a policy as ready-made [`HeaderName`]s.
///
/// Building a custom `HeaderName` copies it; a policy's four names are built
/// once and shared by every answer until a reload changes them.
pub struct IdentityHeaderNames {
    /// The engine's names these were built from (the cache key).
    source: Arc<IdentityNames>,
    pub principal: HeaderName,
    pub consumer: HeaderName,
    pub scopes: HeaderName,
    pub credential: HeaderName,
}

/// At most this many distinct header names are interned for the process.
const INTERNED_NAMES_MAX: usize = 64;

/// `name` backed by a static string, interned once per process.
///
/// A name built from a policy's string shares a reference-counted buffer:
/// every answer's clone and drop of it is an atomic read-modify-write.
/// From a static string they are plain copies. The policy's identity names
/// are few and change only with a reload; past [`INTERNED_NAMES_MAX`]
/// distinct names (a long series of reloads renaming them) the name is kept
/// as it is rather than leaking more.
fn interned(name: HeaderName) -> HeaderName {
    static INTERNED: parking_lot::Mutex<Vec<&'static str>> = parking_lot::Mutex::new(Vec::new());
    let mut all = INTERNED.lock();
    // `name` is valid and lowercase, as `from_static` requires.
    if let Some(s) = all.iter().find(|s| **s == name.as_str()) {
        return HeaderName::from_static(s);
    }
    if all.len() >= INTERNED_NAMES_MAX {
        return name;
    }
    let s: &'static str = Box::leak(Box::from(name.as_str()));
    all.push(s);
    HeaderName::from_static(s)
}

impl IdentityHeaderNames {
    fn build(source: &Arc<IdentityNames>) -> Option<Self> {
        let name = |s: &str| HeaderName::from_bytes(s.as_bytes()).ok().map(interned);
        Some(Self {
            source: Arc::clone(source),
            principal: name(&source.principal)?,
            consumer: name(&source.consumer)?,
            scopes: name(&source.scopes)?,
            credential: name(&source.credential)?,
        })
    }

    fn all(&self) -> [&HeaderName; 4] {
        [
            &self.principal,
            &self.consumer,
            &self.scopes,
            &self.credential,
        ]
    }
}

/// The last [`IdentityHeaderNames`] built on each thread, replaced when a
/// reload brings new names.
///
/// Per thread rather than one shared `ArcSwap`: loading that takes and
/// pays back a reference (atomic read-modify-writes) on every answer.
#[derive(Default)]
pub struct IdentityNameCache;

thread_local! {
    static IDENTITY_NAMES: RefCell<Option<IdentityHeaderNames>> = const { RefCell::new(None) };
}

impl IdentityNameCache {
    /// Runs `f` with the header names for `names` (`None` if one is not a valid header name).
    pub fn with<R>(
        &self,
        names: &Arc<IdentityNames>,
        f: impl FnOnce(Option<&IdentityHeaderNames>) -> R,
    ) -> R {
        IDENTITY_NAMES.with(|cell| {
            let fresh = cell
                .borrow()
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(&c.source, names));
            if !fresh {
                match IdentityHeaderNames::build(names) {
                    Some(built) => *cell.borrow_mut() = Some(built),
                    None => return f(None),
                }
            }
            let current = cell.borrow();
            f(current.as_ref())
        })
    }
}

fn value(v: &str) -> Option<HeaderValue> {
    HeaderValue::from_bytes(v.as_bytes()).ok()
}

/// The identity header values of one principal, as rendered once.
struct IdentityValues {
    principal: Option<HeaderValue>,
    consumer: Option<HeaderValue>,
    scopes: Option<HeaderValue>,
    credential: Option<HeaderValue>,
    // Keep the strings whose addresses key this entry alive, so an address
    // cannot be reused for another value while it is a key.
    _id: Option<Arc<str>>,
    _consumer: Option<Arc<str>>,
    _scopes: Option<Arc<[String]>>,
    _credential: Option<Arc<str>>,
    /// The headers of an allow for this identity, `x-auth-reason` included,
    /// under the names they were built with; by `every_identity`, and with
    /// or without an extra header (Envoy's list of headers to remove).
    allow_headers: [Option<AllowHeaders>; 4],
}

/// A ready header map of an allow: cloning it costs two allocations and
/// no hashing, where building it hashes every name again.
struct AllowHeaders {
    /// The names it was built with (a reload can rename the headers).
    names: Arc<IdentityNames>,
    /// The extra header it was built with (a reload can change it).
    extra: Option<(HeaderName, HeaderValue)>,
    headers: HeaderMap,
}

/// Entries per thread before the cache starts over.
const IDENTITY_CACHE_MAX: usize = 1024;

thread_local! {
    /// A decision's identity comes from shared strings (the key record's id,
    /// consumer and scopes, the policy's credential name), so the same
    /// principal keeps answering with the same addresses: render its header
    /// values (validate, copy, join the scopes) once per thread.
    static IDENTITY_VALUES: RefCell<FxHashMap<[usize; 4], IdentityValues>> =
        RefCell::new(FxHashMap::default());
}

fn addr(s: &Arc<str>) -> usize {
    Arc::as_ptr(s).cast::<u8>() as usize
}

/// Renders the identity values of `d` as [`Decision::response_headers`]
/// does; `None` if one is not writable as HTTP.
fn render_identity(d: &Decision) -> Option<IdentityValues> {
    let p = d.principal.as_ref();
    let principal = match p {
        Some(p) => Some(value(&p.id)?),
        None => None,
    };
    let consumer = match p.and_then(|p| p.consumer.as_ref()) {
        Some(c) => Some(value(c)?),
        None => None,
    };
    let scopes = match p {
        Some(p) => Some(HeaderValue::from_maybe_shared(Bytes::from(p.scopes.join(" "))).ok()?),
        None => None,
    };
    let credential = match &d.credential {
        Some(c) => Some(value(c)?),
        None => None,
    };
    Some(IdentityValues {
        principal,
        consumer,
        scopes,
        credential,
        _id: p.map(|p| Arc::clone(&p.id)),
        _consumer: p.and_then(|p| p.consumer.clone()),
        _scopes: p.map(|p| Arc::clone(&p.scopes)),
        _credential: d.credential.clone(),
        allow_headers: [None, None, None, None],
    })
}

fn identity_key(d: &Decision) -> [usize; 4] {
    let p = d.principal.as_ref();
    [
        p.map_or(0, |p| addr(&p.id)),
        p.and_then(|p| p.consumer.as_ref()).map_or(0, addr),
        p.map_or(0, |p| Arc::as_ptr(&p.scopes).cast::<u8>() as usize),
        d.credential.as_ref().map_or(0, addr),
    ]
}

/// Runs `f` with this thread's rendered identity values of `d`; `None`: a
/// value is not writable.
fn with_identity<R>(d: &Decision, f: impl FnOnce(&mut IdentityValues) -> R) -> Option<R> {
    let key = identity_key(d);
    IDENTITY_VALUES.with(|cell| {
        let mut cache = cell.borrow_mut();
        // One hash lookup for the common case, a principal seen before.
        if let Some(v) = cache.get_mut(&key) {
            return Some(f(v));
        }
        let rendered = render_identity(d)?;
        if cache.len() >= IDENTITY_CACHE_MAX {
            cache.clear();
        }
        Some(f(cache.entry(key).or_insert(rendered)))
    })
}

/// Writes the identity headers of an allow, as [`Decision::response_headers`]
/// renders them, without building that list. Returns which of principal,
/// consumer, scopes, credential it wrote.
fn write_identity(h: &mut HeaderMap, v: &IdentityValues, names: &IdentityHeaderNames) -> [bool; 4] {
    let mut wrote = [false; 4];
    for (i, (name, value)) in [
        (&names.principal, &v.principal),
        (&names.consumer, &v.consumer),
        (&names.scopes, &v.scopes),
        (&names.credential, &v.credential),
    ]
    .into_iter()
    .enumerate()
    {
        if let (Some(value), Some(slot)) = (value, wrote.get_mut(i)) {
            h.append(name.clone(), value.clone());
            *slot = true;
        }
    }
    wrote
}

/// With `every_identity`, the identity headers an allow did not set, empty.
fn write_empty_identity(h: &mut HeaderMap, names: &IdentityHeaderNames, wrote: [bool; 4]) {
    for (n, done) in names.all().into_iter().zip(wrote) {
        if !done {
            h.insert(n.clone(), HeaderValue::from_static(""));
        }
    }
}

/// The headers of a plain allow (reason `allowed`, no protocol headers)
/// with an identity: `x-auth-reason`, the identity headers and `extra`,
/// built once per thread, principal, header names and extra header, then
/// cloned. Adding the extra header to a clone instead cost more than the
/// clone itself: hashing its long name, and growing the map's two tables.
/// `None`: a value is not writable.
fn allow_headers(
    d: &Decision,
    names: &IdentityHeaderNames,
    every_identity: bool,
    extra: Option<(&HeaderName, HeaderValue)>,
) -> Option<HeaderMap> {
    with_identity(d, |v| {
        let i = usize::from(every_identity) | usize::from(extra.is_some()) << 1;
        if let Some(Some(t)) = v.allow_headers.get(i) {
            let same_extra = match (&t.extra, &extra) {
                (None, None) => true,
                (Some((built_name, built_value)), Some((name, value))) => {
                    built_name == *name && built_value == value
                }
                _ => false,
            };
            if same_extra && Arc::ptr_eq(&t.names, &names.source) {
                return Some(t.headers.clone());
            }
        }
        // This thread's own copies of the names, so that cloning them for
        // each answer counts references on memory no other thread writes.
        let own = IdentityHeaderNames::build(&names.source)?;
        let mut h = HeaderMap::with_capacity(6);
        h.insert(
            X_AUTH_REASON.clone(),
            HeaderValue::from_static(Reason::Allowed.as_str()),
        );
        let wrote = write_identity(&mut h, v, &own);
        if every_identity {
            write_empty_identity(&mut h, &own, wrote);
        }
        if let Some((name, value)) = &extra {
            h.insert((*name).clone(), value.clone());
        }
        let built = h.clone();
        *v.allow_headers.get_mut(i)? = Some(AllowHeaders {
            names: Arc::clone(&names.source),
            extra: extra.map(|(name, value)| (name.clone(), value)),
            headers: h,
        });
        Some(built)
    })
    .flatten()
}

fn unwritable() -> Resp {
    tracing::error!("a decision header cannot be written as HTTP; answering 500");
    internal_error()
}

/// A decision as an HTTP status with the decision's headers (identity
/// headers on allow, `www-authenticate`, `retry-after`), `x-auth-reason`
/// always, and `extra` headers on allow.
///
/// `identity` names the identity headers. With `every_identity`, an allow
/// carries all four, empty when there is nothing to say (a public route):
/// gateways that copy named headers then overwrite or drop a client's copy
/// instead of passing it on (Caddy before 2.10 even sets its own unexpanded
/// placeholder for a header missing from the answer).
///
/// A header the decision names that cannot be written (a principal with a
/// control character) fails closed: 500, which every gateway treats as a deny.
pub fn decision(
    d: &Decision,
    style: Style,
    extra_on_allow: Option<(&HeaderName, HeaderValue)>,
    identity: Option<&IdentityHeaderNames>,
    every_identity: bool,
) -> Resp {
    let status = wire_status(d, style);
    let Ok(code) = StatusCode::from_u16(status) else {
        return internal_error();
    };
    // The common answer, an allow with an identity, from a ready header map.
    if d.allow && d.reason == Reason::Allowed && d.headers.is_empty() && d.identity_names.is_some()
    {
        if let Some(names) = identity {
            let Some(h) = allow_headers(d, names, every_identity, extra_on_allow) else {
                return unwritable();
            };
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = code;
            *r.headers_mut() = h;
            return r;
        }
    }
    // An allow has no body, so no content type; a denial has a small JSON
    // body that gateways pass to the client and that must not be cached.
    let mut h = HeaderMap::with_capacity(12);
    let body = if d.allow {
        Bytes::new()
    } else {
        h.insert(CONTENT_TYPE, JSON);
        h.insert(CACHE_CONTROL, NO_STORE);
        Bytes::from(format!(
            r#"{{"reason":"{}","status":{}}}"#,
            d.reason.as_str(),
            d.status
        ))
    };
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = code;
    *r.headers_mut() = h;
    let h = r.headers_mut();
    for (name, v) in &d.headers {
        let (Ok(n), Some(v)) = (HeaderName::from_bytes(name.as_bytes()), value(v)) else {
            return unwritable();
        };
        h.append(n, v);
    }
    h.insert(
        X_AUTH_REASON.clone(),
        HeaderValue::from_static(d.reason.as_str()),
    );
    if d.allow {
        if let Some(names) = identity {
            let wrote = if d.identity_names.is_some() {
                match with_identity(d, |v| write_identity(h, v, names)) {
                    Some(w) => w,
                    None => return unwritable(),
                }
            } else {
                [false; 4]
            };
            if every_identity {
                write_empty_identity(h, names, wrote);
            }
        } else if d.identity_names.is_some() {
            // The policy's identity names are not header names: say nothing rather than guess.
            return unwritable();
        }
        if let Some((n, v)) = extra_on_allow {
            h.insert(n.clone(), v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_engine::Principal;

    fn rate_limited() -> Decision {
        let mut d = Decision::deny(Reason::RateLimited);
        d.headers.push(("retry-after".into(), "7".into()));
        d
    }

    fn names() -> Arc<IdentityNames> {
        Arc::new(IdentityNames {
            principal: "x-auth-principal".into(),
            consumer: "x-auth-consumer".into(),
            scopes: "x-auth-scopes".into(),
            credential: "x-auth-credential".into(),
        })
    }

    fn allowed(consumer: Option<&str>) -> Decision {
        let mut d = Decision::deny(Reason::Allowed).with_allow();
        d.identity_names = Some(names());
        d.credential = Some("partner_key".into());
        d.principal = Some(Principal {
            id: "key_1".into(),
            consumer: consumer.map(Into::into),
            scopes: Arc::from(vec!["a:read".to_string(), "b:write".to_string()]),
        });
        d
    }

    fn render(d: &Decision, style: Style, every: bool) -> Resp {
        let cache = IdentityNameCache;
        let n = names();
        let source = d.identity_names.as_ref().unwrap_or(&n);
        cache.with(source, |names| decision(d, style, None, names, every))
    }

    #[test]
    fn nginx_style_turns_429_503_400_into_403_keeping_the_reason() {
        let r = render(&rate_limited(), Style::Nginx, false);
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()["x-auth-reason"], "rate_limited");
        assert_eq!(r.headers()["retry-after"], "7");
        for reason in [Reason::StoreUnavailable, Reason::BadPath] {
            assert_eq!(
                render(&Decision::deny(reason), Style::Nginx, false).status(),
                403
            );
        }
        let missing = Decision::deny(Reason::CredentialMissing);
        assert_eq!(render(&missing, Style::Nginx, false).status(), 401);
    }

    #[test]
    fn standard_and_envoy_keep_statuses() {
        assert_eq!(
            render(&rate_limited(), Style::Standard, false).status(),
            429
        );
        let down = Decision::deny(Reason::StoreUnavailable);
        assert_eq!(render(&down, Style::Envoy, false).status(), 503);
    }

    #[test]
    fn identity_headers_match_the_engine_rendering() {
        for d in [allowed(Some("acme")), allowed(None)] {
            let r = render(&d, Style::Standard, false);
            assert_eq!(r.status(), 200);
            let mut ours: Vec<(String, String)> = r
                .headers()
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("x-auth-") && *k != "x-auth-reason")
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
                .collect();
            let mut engine: Vec<(String, String)> = d
                .response_headers()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            ours.sort();
            engine.sort();
            assert_eq!(ours, engine);
        }
    }

    #[test]
    fn allow_carries_extra_headers() {
        let d = allowed(Some("acme"));
        let cache = IdentityNameCache;
        let r = cache.with(&names(), |n| {
            decision(
                &d,
                Style::Envoy,
                Some((
                    &X_ENVOY_AUTH_HEADERS_TO_REMOVE,
                    HeaderValue::from_static("x-api-key"),
                )),
                n,
                false,
            )
        });
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-auth-consumer"], "acme");
        assert_eq!(r.headers()["x-auth-scopes"], "a:read b:write");
        assert_eq!(r.headers()["x-envoy-auth-headers-to-remove"], "x-api-key");
        assert_eq!(r.headers()["x-auth-reason"], "allowed");
    }

    #[test]
    fn every_identity_header_on_allow_when_asked() {
        let public = Decision::deny(Reason::Allowed).with_allow();
        let r = render(&public, Style::Standard, true);
        assert_eq!(r.headers()["x-auth-consumer"], "");
        assert_eq!(r.headers()["x-auth-principal"], "");
        let r = render(&allowed(None), Style::Standard, true);
        assert_eq!(r.headers()["x-auth-principal"], "key_1");
        assert_eq!(r.headers()["x-auth-consumer"], "");
        assert_eq!(r.headers().get_all("x-auth-principal").iter().count(), 1);
        let r = render(&Decision::deny(Reason::NoRoute), Style::Standard, true);
        assert!(r.headers().get("x-auth-consumer").is_none());
    }

    #[test]
    fn the_name_cache_follows_reloads() {
        let cache = IdentityNameCache;
        let first = names();
        cache.with(&first, |n| {
            assert_eq!(n.unwrap().consumer, "x-auth-consumer")
        });
        let renamed = Arc::new(IdentityNames {
            consumer: "x-consumer".into(),
            ..(*first).clone()
        });
        cache.with(&renamed, |n| assert_eq!(n.unwrap().consumer, "x-consumer"));
        let bad = Arc::new(IdentityNames {
            consumer: "not a header".into(),
            ..(*first).clone()
        });
        cache.with(&bad, |n| assert!(n.is_none()));
    }

    #[test]
    fn unwritable_identity_fails_closed() {
        let mut d = allowed(Some("acme"));
        d.principal = Some(Principal {
            id: "a\nb".into(),
            consumer: None,
            scopes: Arc::from(Vec::<String>::new()),
        });
        assert_eq!(render(&d, Style::Standard, false).status(), 500);
        let mut d = Decision::deny(Reason::CredentialMissing);
        d.headers.push(("www-authenticate".into(), "x\ry".into()));
        assert_eq!(render(&d, Style::Standard, false).status(), 500);
    }
}
