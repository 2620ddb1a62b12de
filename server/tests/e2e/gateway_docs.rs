//! The Traefik and Envoy configurations in docs/gateways/ are not run here
//! (neither gateway is installable), so the emulations in `forward_auth.rs`
//! and `envoy.rs` rest on what those blocks say. This module parses the
//! documented YAML blocks and checks each assumption the emulations make,
//! so a doc edit that breaks one fails here.

use serde_yaml::Value;

use crate::envoy::{ALLOWED_HEADERS, PREFIX, UPSTREAM_HEADERS};
use crate::support::*;

fn yaml(doc: &str, marker: &str) -> Value {
    let text = docs_block(doc, marker, "yaml");
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{doc} `{marker}`: {e}\n{text}"))
}

/// `v` at a `/`-separated path of mapping keys (numbers index sequences).
#[track_caller]
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for k in path.split('/') {
        cur = match k.parse::<usize>() {
            Ok(i) => cur.get(i),
            Err(_) => cur.get(k),
        }
        .unwrap_or_else(|| panic!("no `{k}` on the way to `{path}` in {v:?}"));
    }
    cur
}

#[track_caller]
fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("`{path}` is not a string"))
}

/// The `exact` names of an Envoy `patterns` list, lowercased.
fn exact_patterns(v: &Value) -> Vec<String> {
    at(v, "patterns")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| str_at(p, "exact").to_ascii_lowercase())
        .collect()
}

fn lower(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_ascii_lowercase()).collect()
}

#[test]
fn traefik_forward_auth_block_matches_what_the_tests_assume() {
    let v = yaml("traefik.md", "<!-- e2e: traefik dynamic -->");
    let fa = at(&v, "http/middlewares/portcullis/forwardAuth");
    // The endpoint `forward_auth.rs` calls, on the documented listener.
    assert_eq!(
        str_at(fa, "address"),
        "http://127.0.0.1:8181/v1/forward-auth"
    );
    // Traefik sets X-Forwarded-* itself (the emulation sends its own, and
    // Portcullis refuses a disagreeing X-Original-*).
    assert_eq!(at(fa, "trustForwardHeader").as_bool(), Some(false));
    let copied: Vec<String> = at(fa, "authResponseHeaders")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_ascii_lowercase())
        .collect();
    assert_eq!(copied, lower(&UPSTREAM_HEADERS));
    // The router uses the middleware, and the service is the documented upstream.
    let router = at(&v, "http/routers/api");
    let used: Vec<&str> = at(router, "middlewares")
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(used, ["portcullis"]);
    let service = str_at(router, "service");
    assert!(at(&v, "http/services").get(service).is_some());

    // The label form says the same.
    let labels = yaml("traefik.md", "<!-- e2e: traefik labels -->");
    let address = str_at(
        &labels,
        "traefik.http.middlewares.portcullis.forwardauth.address",
    );
    assert!(address.ends_with("/v1/forward-auth"), "{address}");
    let copied: Vec<String> = str_at(
        &labels,
        "traefik.http.middlewares.portcullis.forwardauth.authResponseHeaders",
    )
    .split(',')
    .map(|h| h.trim().to_ascii_lowercase())
    .collect();
    assert_eq!(copied, lower(&UPSTREAM_HEADERS));
    // trustForwardHeader is left at its default (false).
    assert!(labels
        .as_mapping()
        .unwrap()
        .keys()
        .all(|k| !k.as_str().unwrap().contains("trustForwardHeader")));
}

#[test]
fn envoy_ext_authz_block_matches_what_the_tests_assume() {
    let v = yaml("envoy.md", "<!-- e2e: envoy ext_authz -->");
    let filters = at(&v, "http_filters").as_sequence().unwrap();
    assert_eq!(
        str_at(&filters[0], "name"),
        "envoy.filters.http.ext_authz",
        "ext_authz must run before the router"
    );
    assert_eq!(
        str_at(&filters[filters.len() - 1], "name"),
        "envoy.filters.http.router"
    );
    let cfg = at(&filters[0], "typed_config");
    assert_eq!(
        str_at(cfg, "@type"),
        "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
    );
    assert_eq!(str_at(cfg, "transport_api_version"), "V3");
    // A Portcullis 5xx is an error, never an allow.
    assert_eq!(at(cfg, "failure_mode_allow").as_bool(), Some(false));
    let on_error = str_at(cfg, "status_on_error/code");
    assert!(!on_error.is_empty() && on_error != "OK", "{on_error}");

    // The check request carries the headers the emulation forwards (Authorization
    // is forwarded by Envoy anyway; listing it is harmless) and the XFCC header
    // an mTLS credential reads.
    let forwarded = exact_patterns(at(cfg, "allowed_headers"));
    for h in ALLOWED_HEADERS.iter().chain(&["x-forwarded-client-cert"]) {
        assert!(
            forwarded.contains(&h.to_string()),
            "{h} not in {forwarded:?}"
        );
    }
    // The deprecated location must not be used next to it.
    assert!(cfg.get("authorization_request").is_none());

    let http = at(cfg, "http_service");
    assert_eq!(str_at(http, "path_prefix"), PREFIX);
    assert_eq!(str_at(http, "server_uri/uri"), "http://127.0.0.1:8181");
    let upstream = exact_patterns(at(http, "authorization_response/allowed_upstream_headers"));
    assert_eq!(upstream, lower(&UPSTREAM_HEADERS));
    let client = exact_patterns(at(http, "authorization_response/allowed_client_headers"));
    for h in ["www-authenticate", "retry-after", "x-auth-reason"] {
        assert!(client.contains(&h.to_string()), "{h} not in {client:?}");
    }

    // The cluster named by server_uri exists and points at the same address.
    let cluster_name = str_at(http, "server_uri/cluster");
    let cluster = at(&v, "clusters")
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| str_at(c, "name") == cluster_name)
        .unwrap_or_else(|| panic!("no cluster {cluster_name}"));
    let sock = at(
        cluster,
        "load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address",
    );
    assert_eq!(str_at(sock, "address"), "127.0.0.1");
    assert_eq!(at(sock, "port_value").as_u64(), Some(8181));
}
