//! mTLS credential definitions: where the gateway forwards the client
//! certificate, and which certificates are allowed (never "any").

use super::check;
use super::model::{MtlsAllow, MtlsDef, MtlsSource};
use super::node::{Cx, Fields};

const FIELDS: &[&str] = &["type", "in", "verify_header", "ca_file", "allow", "grants"];
const ALLOW_FIELDS: &[&str] = &["spiffe_ids", "subjects", "fingerprints_sha256"];

fn header_name(cx: &mut Cx<'_>, raw: &str, span: super::model::Span) -> Option<String> {
    if check::is_token(raw) {
        Some(raw.to_ascii_lowercase())
    } else {
        cx.error_help(
            span,
            format!("bad header name `{raw}`"),
            "a header name is letters, digits and `-` (an http token)",
        );
        None
    }
}

pub fn mtls(cx: &mut Cx<'_>, f: &Fields<'_>, what: &str) -> Option<MtlsDef> {
    f.check_known(cx, FIELDS);
    let mut source = Some(MtlsSource::Xfcc);
    if let Some(n) = f.get("in") {
        source = None;
        if let Some(s) = cx.nonempty(&n) {
            let span = cx.span(&n);
            if s == "xfcc" {
                source = Some(MtlsSource::Xfcc);
            } else if let Some(h) = s.strip_prefix("pem_header:") {
                source = header_name(cx, h, span).map(|header| MtlsSource::PemHeader {
                    header,
                    verify_header: None,
                });
            } else {
                cx.error_help(
                    span,
                    format!("unknown certificate source `{s}`"),
                    "use `xfcc` (x-forwarded-client-cert) or `pem_header:NAME`",
                );
            }
        }
    }
    if let Some(v) = f.get("verify_header") {
        let span = cx.span(&v);
        let name = cx.nonempty(&v).and_then(|s| header_name(cx, &s, span));
        match (&mut source, name) {
            (Some(MtlsSource::PemHeader { verify_header, .. }), Some(name)) => {
                *verify_header = Some(name);
            }
            (Some(MtlsSource::Xfcc), _) => {
                let kspan = cx.key_span(&v);
                cx.error_help(
                    kspan,
                    "`verify_header` is only valid with `in: pem_header:NAME`",
                    "with `xfcc` the proxy that adds the header has verified the certificate",
                );
            }
            _ => {}
        }
    }
    let ca_file = f.get("ca_file").map(|p| cx.file_path(&p));
    let mut allow = MtlsAllow::default();
    match f.get("allow") {
        None => {
            let span = cx.key_span(&f.node);
            cx.error_help(
                span,
                format!("missing required field `allow` in {what}"),
                "without `allow` any certificate would be admitted: list `spiffe_ids`, `subjects` or `fingerprints_sha256`",
            );
        }
        Some(a) => {
            if let Some(af) = cx.map(&a, &format!("`allow` of {what}")) {
                af.check_known(cx, ALLOW_FIELDS);
                let mut allow_ok = true;
                if let Some(n) = af.get("spiffe_ids") {
                    for s in cx.string_list(&n).unwrap_or_default() {
                        if check::is_spiffe_pattern(&s.value) {
                            allow.spiffe_ids.push(s.value);
                        } else {
                            cx.error_help(
                                s.span,
                                format!("bad spiffe id `{}`", s.value),
                                "use `spiffe://trust-domain/path`, lowercase trust domain, optionally ending in `/*`",
                            );
                            allow_ok = false;
                        }
                    }
                }
                if let Some(n) = af.get("subjects") {
                    allow.subjects.extend(
                        cx.string_list(&n)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|s| s.value),
                    );
                }
                if let Some(n) = af.get("fingerprints_sha256") {
                    for s in cx.string_list(&n).unwrap_or_default() {
                        match check::normalize_fingerprint(&s.value) {
                            Some(fp) => allow.fingerprints_sha256.push(fp),
                            None => {
                                cx.error_help(
                                    s.span,
                                    format!("bad sha-256 fingerprint `{}`", s.value),
                                    "64 hex digits, `:` separators allowed (sha-256 of the certificate's der)",
                                );
                                allow_ok = false;
                            }
                        }
                    }
                }
                let empty = allow.spiffe_ids.is_empty()
                    && allow.subjects.is_empty()
                    && allow.fingerprints_sha256.is_empty();
                if empty && allow_ok {
                    let span = cx.span(&a);
                    cx.error_help(
                        span,
                        format!("`allow` of {what} is empty: it would admit any certificate"),
                        "list `spiffe_ids`, `subjects` or `fingerprints_sha256`",
                    );
                }
            }
        }
    }
    let grants = f
        .get("grants")
        .and_then(|g| cx.scope_list(&g))
        .unwrap_or_default();
    Some(MtlsDef {
        source: source?,
        ca_file: match ca_file {
            Some(p) => Some(p?),
            None => None,
        },
        allow,
        grants,
    })
}
