//! The question a gateway asks: one HTTP request, as Portcullis sees it.

use std::net::IpAddr;

use serde::Deserialize;

/// Request headers, names lowercased, every value kept (never only the first).
///
/// A linear list rather than a map: requests carry a handful of headers, and
/// a scan over them is cheaper than hashing and allocating a map per decision.
#[derive(Clone, Default)]
pub struct Headers {
    entries: Vec<(String, HeaderValue)>,
}

/// One header value; bytes that were not UTF-8 are kept as a marker so any
/// credential read from them is refused rather than guessed at.
#[derive(Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Text(String),
    NotUtf8,
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value; the name is lowercased.
    pub fn append(&mut self, name: &str, value: impl Into<String>) {
        self.entries
            .push((name.to_ascii_lowercase(), HeaderValue::Text(value.into())));
    }

    /// Adds a value whose bytes were not valid UTF-8.
    pub fn append_invalid(&mut self, name: &str) {
        self.entries
            .push((name.to_ascii_lowercase(), HeaderValue::NotUtf8));
    }

    /// Every value of `name` (which must be lowercase), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a HeaderValue> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The single text value of `name`, or why there is not exactly one.
    pub fn get_one(&self, name: &str) -> HeaderLookup<'_> {
        let mut found: Option<&HeaderValue> = None;
        for (n, v) in &self.entries {
            if n == name {
                if found.is_some() {
                    return HeaderLookup::Repeated;
                }
                found = Some(v);
            }
        }
        match found {
            None => HeaderLookup::Absent,
            Some(HeaderValue::NotUtf8) => HeaderLookup::NotUtf8,
            Some(HeaderValue::Text(s)) => HeaderLookup::One(s),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &HeaderValue)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The outcome of looking for a header that may appear at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderLookup<'a> {
    Absent,
    One(&'a str),
    Repeated,
    NotUtf8,
}

// Header values are credentials: never print them.
impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(n, _)| n))
            .finish()
    }
}

impl std::fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderValue::Text(_) => f.write_str("<redacted>"),
            HeaderValue::NotUtf8 => f.write_str("<not utf-8>"),
        }
    }
}

/// One request to decide on.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Uppercase HTTP method.
    pub method: String,
    /// The request target as received: path with optional query (never logged).
    pub path: String,
    /// Host without port, lowercase; `None` when the gateway did not say.
    pub host: Option<String>,
    pub headers: Headers,
    /// The client address, as established by the caller (trusted proxies resolved).
    pub source_ip: Option<IpAddr>,
}

/// Why a decision request body was refused (HTTP 400).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The body is not JSON of the expected shape.
    #[error("malformed request: {0}")]
    Json(String),
    /// `method` is missing or empty.
    #[error("`method` is required")]
    MissingMethod,
    /// `path` is missing or empty.
    #[error("`path` is required")]
    MissingPath,
    /// `method` is not an HTTP token.
    #[error("`method` is not a valid HTTP method")]
    BadMethod,
    /// `source_ip` is not an IP address.
    #[error("`source_ip` is not an IP address")]
    BadSourceIp,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

struct WireRequest {
    method: Option<String>,
    path: Option<String>,
    host: Option<String>,
    headers: Vec<(String, OneOrMany)>,
    source_ip: Option<String>,
}

// serde_json maps deserialize to Vec<(K, V)> only through a helper; keep
// duplicate keys (`X-Api-Key` and `x-api-key`) rather than letting a map drop one.
mod wire_headers {
    use super::OneOrMany;
    use serde::de::{MapAccess, Visitor};
    use std::fmt;

    pub struct Pairs(pub Vec<(String, OneOrMany)>);

    impl<'de> serde::Deserialize<'de> for Pairs {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Pairs;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object of header names to a string or a list of strings")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Pairs, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, v)) = m.next_entry::<String, OneOrMany>()? {
                        out.push((k, v));
                    }
                    Ok(Pairs(out))
                }
            }
            d.deserialize_map(V)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRequestRaw {
    method: Option<String>,
    path: Option<String>,
    host: Option<String>,
    headers: Option<wire_headers::Pairs>,
    source_ip: Option<String>,
}

impl Request {
    /// Parses the JSON body of `POST /v1/decide`.
    pub fn from_json(body: &[u8]) -> Result<Self, RequestError> {
        let raw: WireRequestRaw =
            serde_json::from_slice(body).map_err(|e| RequestError::Json(e.to_string()))?;
        let wire = WireRequest {
            method: raw.method,
            path: raw.path,
            host: raw.host,
            headers: raw.headers.map(|p| p.0).unwrap_or_default(),
            source_ip: raw.source_ip,
        };
        let method = wire
            .method
            .filter(|m| !m.is_empty())
            .ok_or(RequestError::MissingMethod)?;
        if !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return Err(RequestError::BadMethod);
        }
        let path = wire
            .path
            .filter(|p| !p.is_empty())
            .ok_or(RequestError::MissingPath)?;
        let source_ip = match wire.source_ip {
            None => None,
            Some(s) => Some(s.trim().parse().map_err(|_| RequestError::BadSourceIp)?),
        };
        let mut headers = Headers::new();
        for (name, value) in wire.headers {
            match value {
                OneOrMany::One(v) => headers.append(&name, v),
                OneOrMany::Many(vs) => {
                    for v in vs {
                        headers.append(&name, v);
                    }
                }
            }
        }
        Ok(Request {
            method: method.to_ascii_uppercase(),
            path,
            host: wire.host.map(|h| normalize_host(&h)),
            headers,
            source_ip,
        })
    }
}

/// Lowercases a host and strips a port (`api.example.com:443`, `[::1]:8080`).
pub fn normalize_host(host: &str) -> String {
    let h = host.trim();
    let h = if let Some(rest) = h.strip_prefix('[') {
        // IPv6 literal: keep the address, drop brackets and port.
        rest.split(']').next().unwrap_or(rest)
    } else {
        match h.rsplit_once(':') {
            Some((name, port))
                if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                name
            }
            _ => h,
        }
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}
