//! Which address is the client, and which host it asked for, when requests
//! come through proxies.
//!
//! Forwarding headers are believed only from a trusted peer (a configured
//! CIDR, loopback by default). `X-Forwarded-For` is walked from the right,
//! skipping trusted proxies: the first untrusted hop is the client, because
//! everything to its left was written by the client itself.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use hyper::Uri;
use ipnet::IpNet;
use portcullis_engine::request::normalize_host;

use crate::scan::{Scan, Slot};

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }
}

/// IPv4-mapped IPv6 (`::ffff:127.0.0.1`, what a dual-stack socket reports)
/// is the IPv4 address, so `127.0.0.0/8` matches it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The client address for a request that arrived from `peer`.
///
/// `None` when a trusted proxy sent a forwarding header we cannot parse:
/// the address is then unknown, and keys restricted to networks refuse it.
pub fn client_ip(peer: SocketAddr, trusted: &TrustedProxies, headers: &Scan<'_>) -> Option<IpAddr> {
    client_ip_of(peer, trusted.contains(peer.ip()), trusted, headers)
}

/// [`client_ip`] for a peer whose trust was looked up when it connected
/// (`peer_trusted` is `trusted.contains(peer.ip())`).
pub fn client_ip_of(
    peer: SocketAddr,
    peer_trusted: bool,
    trusted: &TrustedProxies,
    headers: &Scan<'_>,
) -> Option<IpAddr> {
    let peer_ip = canonical(peer.ip());
    if !peer_trusted {
        return Some(peer_ip);
    }
    if !headers.forwarded_for.is_empty() {
        let mut leftmost = peer_ip;
        // Right to left over every value of every X-Forwarded-For header.
        for value in headers.forwarded_for.iter().rev() {
            let text = crate::scan::text(value).ok()?;
            // One address with nothing around it (what a proxy writes when
            // it is the only one) needs no splitting or trimming.
            let single = !text.is_empty()
                && text
                    .bytes()
                    .all(|b| (b'!'..=b'~').contains(&b) && b != b',');
            let split =
                (!single).then(|| text.rsplit(',').map(str::trim).filter(|s| !s.is_empty()));
            let hops = single
                .then_some(text)
                .into_iter()
                .chain(split.into_iter().flatten());
            for hop in hops {
                let ip = parse_hop(hop)?;
                if !trusted.contains(ip) {
                    return Some(ip);
                }
                leftmost = ip;
            }
        }
        // Every hop is a trusted proxy: the request started inside.
        return Some(leftmost);
    }
    match headers.real_ip {
        Slot::Absent => Some(peer_ip),
        Slot::One(v) => crate::scan::text(v)
            .ok()
            .and_then(|s| parse_hop(crate::scan::trim(s))),
        // Two X-Real-IP headers: no way to tell which one the proxy wrote.
        Slot::Repeated => None,
    }
}

/// One `X-Forwarded-For` element: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Some(v4) = parse_ipv4(s.as_bytes()) {
        return Some(IpAddr::V4(v4));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    None
}

/// A dotted-quad IPv4 address exactly as `Ipv4Addr::from_str` accepts
/// one (four decimal groups of 1 to 3 digits, each at most 255, no leading
/// zero), in a fraction of its instructions; `None` for anything else,
/// which then goes through the standard parser.
fn parse_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut group = 0usize;
    // The value of the group being read, and how many digits it has.
    let mut n: u16 = 0;
    let mut digits = 0u8;
    for &b in s {
        if b == b'.' {
            if digits == 0 {
                return None;
            }
            *octets.get_mut(group)? = u8::try_from(n).ok()?;
            group += 1;
            n = 0;
            digits = 0;
        } else if b.is_ascii_digit() {
            // No leading zero ("01" could be read as octal), at most 3 digits.
            if (digits == 1 && n == 0) || digits == 3 {
                return None;
            }
            n = n * 10 + u16::from(b - b'0');
            digits += 1;
        } else {
            return None;
        }
    }
    if group != 3 || digits == 0 {
        return None;
    }
    *octets.get_mut(3)? = u8::try_from(n).ok()?;
    Some(Ipv4Addr::from(octets))
}

/// A request's host headers that cannot be read unambiguously.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// `Host` or `X-Forwarded-Host` was given more than once, or is not text.
    #[error("ambiguous or unreadable `{0}` header")]
    Ambiguous(&'static str),
}

/// The host to decide for: `X-Forwarded-Host` from a trusted peer, else
/// `Host` (HTTP/1.1) or the `:authority` (HTTP/2); lowercase, port stripped.
pub fn decision_host(
    uri: &Uri,
    headers: &Scan<'_>,
    peer_trusted: bool,
) -> Result<Option<String>, HostError> {
    let mut out = None;
    decision_host_into(uri, headers, peer_trusted, &mut out)?;
    Ok(out)
}

/// [`decision_host`], written into `out` so that a caller can reuse the
/// string's memory from one request to the next.
pub fn decision_host_into(
    uri: &Uri,
    headers: &Scan<'_>,
    peer_trusted: bool,
    out: &mut Option<String>,
) -> Result<(), HostError> {
    match raw_decision_host(uri, headers, peer_trusted)? {
        None => *out = None,
        Some(h) => {
            let s = out.get_or_insert_with(String::new);
            s.clear();
            normalize_into(h, s);
        }
    }
    Ok(())
}

/// The host to decide for, before [`normalize_host`].
fn raw_decision_host<'a, 'h: 'a>(
    uri: &'a Uri,
    headers: &Scan<'h>,
    peer_trusted: bool,
) -> Result<Option<&'a str>, HostError> {
    if peer_trusted {
        if let Some(v) = single(headers.forwarded_host, "x-forwarded-host")? {
            // A list means chained proxies; the first is what the client asked for.
            let first = crate::scan::trim(crate::scan::before_comma(v));
            if !first.is_empty() {
                return Ok(Some(first));
            }
        }
    }
    if let Some(v) = single(headers.host, "host")? {
        let v = crate::scan::trim(v);
        if !v.is_empty() {
            return Ok(Some(v));
        }
    }
    Ok(uri.authority().map(|a| a.as_str()))
}

/// Appends [`normalize_host`] of `host` to `out`, without its copies for
/// what gateways send: a lowercase name, with or without a port. Anything
/// else (upper case, a trailing dot, an IPv6 literal, spaces) goes through
/// [`normalize_host`] itself.
fn normalize_into(host: &str, out: &mut String) {
    // A byte loop rather than `rsplit_once`'s searcher: host values are short.
    let name = match host.bytes().rposition(|b| b == b':') {
        None => host,
        Some(i) => match (host.get(..i), host.get(i + 1..)) {
            (Some(name), Some(port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => return out.push_str(&normalize_host(host)),
        },
    };
    let plain = !name.is_empty()
        && !name.ends_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if plain {
        out.push_str(name);
    } else {
        out.push_str(&normalize_host(host));
    }
}

fn single<'a>(slot: Slot<'a>, shown: &'static str) -> Result<Option<&'a str>, HostError> {
    match slot {
        Slot::Absent => Ok(None),
        Slot::One(v) => crate::scan::text(v)
            .map(Some)
            .map_err(|_| HostError::Ambiguous(shown)),
        Slot::Repeated => Err(HostError::Ambiguous(shown)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{HeaderMap, HeaderName};

    fn client_ip(peer: SocketAddr, trusted: &TrustedProxies, h: &HeaderMap) -> Option<IpAddr> {
        super::client_ip(peer, trusted, &Scan::of(h, &[]))
    }

    fn decision_host(uri: &Uri, h: &HeaderMap, trusted: bool) -> Result<Option<String>, HostError> {
        super::decision_host(uri, &Scan::of(h, &[]), trusted)
    }

    fn loopback() -> TrustedProxies {
        TrustedProxies::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_ipv4_fast_path_accepts_what_std_accepts() {
        let mut cases: Vec<String> = [
            "",
            ".",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.4.5",
            "01.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3.0004",
            "1..2.3",
            "1.2.3.-4",
            "+1.2.3.4",
            "1.2.3.4 ",
            "1.2.3.a",
            "198.51.100.7",
            "1.2.3.4:80",
            "::1",
            "00.1.1.1",
            "10.0.0.010",
            "999.1.1.1",
        ]
        .map(String::from)
        .to_vec();
        for a in [0, 1, 9, 10, 99, 100, 199, 200, 249, 250, 255, 256, 300, 999] {
            cases.push(format!("{a}.{a}.0.{a}"));
        }
        for c in &cases {
            assert_eq!(
                parse_ipv4(c.as_bytes()),
                c.parse::<Ipv4Addr>().ok(),
                "{c:?}"
            );
        }
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_says() {
        let peer: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "10.0.0.1"), ("x-real-ip", "10.0.0.2")]);
        assert_eq!(client_ip(peer, &loopback(), &h), Some(ip("203.0.113.9")));
    }

    #[test]
    fn xff_is_walked_from_the_right_skipping_trusted_hops() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let t = TrustedProxies::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]);
        // The client forged `1.1.1.1`; the trusted proxy appended the real address.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7, 10.1.2.3")]);
        assert_eq!(client_ip(peer, &t, &h), Some(ip("198.51.100.7")));
        // Repeated headers are one list, in order.
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "198.51.100.8:443"),
        ]);
        assert_eq!(client_ip(peer, &t, &h), Some(ip("198.51.100.8")));
        // All trusted: the leftmost.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 127.0.0.1")]);
        assert_eq!(client_ip(peer, &t, &h), Some(ip("10.9.9.9")));
    }

    #[test]
    fn garbage_from_a_trusted_proxy_is_unknown_not_guessed() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "1.1.1.1, unknown")]);
        assert_eq!(client_ip(peer, &loopback(), &h), None);
        // Garbage left of the first untrusted hop is never read.
        let h = headers(&[("x-forwarded-for", "junk, 198.51.100.7")]);
        assert_eq!(client_ip(peer, &loopback(), &h), Some(ip("198.51.100.7")));
    }

    #[test]
    fn x_real_ip_when_no_xff_and_v4_mapped_peers() {
        let peer: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let h = headers(&[("x-real-ip", "198.51.100.1")]);
        assert_eq!(client_ip(peer, &loopback(), &h), Some(ip("198.51.100.1")));
        assert_eq!(
            client_ip(peer, &loopback(), &HeaderMap::new()),
            Some(ip("127.0.0.1"))
        );
        let h = headers(&[("x-real-ip", "198.51.100.1"), ("x-real-ip", "198.51.100.2")]);
        assert_eq!(client_ip(peer, &loopback(), &h), None);
    }

    #[test]
    fn the_host_shortcut_agrees_with_normalize_host() {
        for h in [
            "api.example.com",
            "api.example.com:443",
            "api.example.com:",
            "API.example.com",
            "api.example.com.",
            "api.example.com.:8443",
            "a:b:80",
            "[2001:db8::1]:443",
            "2001:db8::1",
            "host:port",
            "h_1.example",
            " a.example ",
            "",
            ":80",
            "é.example",
        ] {
            let mut out = String::from("stale");
            out.clear();
            normalize_into(h, &mut out);
            assert_eq!(out, normalize_host(h), "{h:?}");
        }
    }

    #[test]
    fn a_reused_host_never_keeps_the_last_requests_host() {
        let uri: Uri = "/x".parse().unwrap();
        let mut out = Some("old.example".to_string());
        let h = headers(&[("host", "New.Example:80")]);
        decision_host_into(&uri, &Scan::of(&h, &[]), false, &mut out).unwrap();
        assert_eq!(out.as_deref(), Some("new.example"));
        decision_host_into(&uri, &Scan::of(&HeaderMap::new(), &[]), false, &mut out).unwrap();
        assert_eq!(out, None);
    }

    #[test]
    fn host_from_forwarded_host_only_when_trusted() {
        let uri: Uri = "/x".parse().unwrap();
        let h = headers(&[
            ("host", "internal:8181"),
            ("x-forwarded-host", "API.example.com:443"),
        ]);
        assert_eq!(
            decision_host(&uri, &h, true).unwrap().as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            decision_host(&uri, &h, false).unwrap().as_deref(),
            Some("internal")
        );
        let h2: Uri = "http://h2.example.com:8080/x".parse().unwrap();
        assert_eq!(
            decision_host(&h2, &HeaderMap::new(), true)
                .unwrap()
                .as_deref(),
            Some("h2.example.com")
        );
        let dup = headers(&[("host", "a"), ("host", "b")]);
        assert!(decision_host(&uri, &dup, false).is_err());
    }
}
