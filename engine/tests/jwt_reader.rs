//! The hand-written JSON reader of JWT headers and claims
//! (`credential::jwt::reader`) against serde_json, on generated documents:
//! well-formed objects (escapes, whitespace, nesting, duplicate members)
//! and byte-level mutations of them. The comparison itself is the
//! `json_reader` fuzz harness, which `fuzz/` also runs on arbitrary bytes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use portcullis_engine::credential::jwt::reader::{ObjectReader, ReadError};
use portcullis_engine::fuzzing;
use proptest::prelude::*;

/// A JSON value as text, from a small grammar that covers what claims hold.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (any::<i32>(), 0u32..1000, -30i32..30).prop_map(|(i, f, e)| format!("{i}.{f}e{e}")),
        (-1000.0f64..1000.0).prop_map(|f| format!("{f}")),
        string(),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(string(), 0..4).prop_map(|v| format!("[{}]", v.join(" , "))),
            prop::collection::vec((string(), inner), 0..4).prop_map(|v| {
                let members: Vec<String> = v.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// A JSON string literal: plain text, or with escapes (surrogate pairs included).
fn string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Z0-9 :/_.+-]{0,8}",
        Just("é✓".to_string()),
        Just("\\\"".to_string()),
        Just("\\\\".to_string()),
        Just("\\/".to_string()),
        Just("\\n\\t\\r\\b\\f".to_string()),
        Just("\\u0041".to_string()),
        Just("\\u00e9".to_string()),
        Just("\\ud83d\\ude00".to_string()),
    ];
    prop::collection::vec(piece, 0..4).prop_map(|p| format!("\"{}\"", p.concat()))
}

/// A member name: mostly claim names, so duplicates happen.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "exp", "iat", "nbf", "iss", "aud", "sub", "jti", "scope", "alg", "kid"
        ])
        .prop_map(|n| format!("\"{n}\"")),
        Just("\"\\u0065xp\"".to_string()),
        string(),
    ]
}

fn ws() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "", " ", "\n", "\t", "\r\n  "]).prop_map(str::to_string)
}

/// An object of members with random whitespace around every token.
fn object() -> impl Strategy<Value = (String, Vec<String>)> {
    prop::collection::vec((name(), value(), ws(), ws()), 0..8).prop_map(|members| {
        let names = members.iter().map(|(n, ..)| unescape(n)).collect();
        let body: Vec<String> = members
            .into_iter()
            .map(|(n, v, a, b)| format!("{a}{n}{b}:{a}{v}{b}"))
            .collect();
        (format!("{{{}}}", body.join(",")), names)
    })
}

fn unescape(literal: &str) -> String {
    serde_json::from_str(literal).unwrap()
}

/// Whether the reader accepts `text` (members read as values).
fn accepts(text: &str) -> Result<(), ReadError> {
    let mut r = ObjectReader::new(text)?;
    while r.next_name()?.is_some() {
        r.value()?;
    }
    r.finish()
}

proptest! {
    #[test]
    fn well_formed_objects_read_like_serde_json((doc, names) in object()) {
        fuzzing::json_reader(doc.as_bytes());
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        let expected = if sorted.len() == names.len() { Ok(()) } else { Err(ReadError::Duplicate) };
        prop_assert_eq!(accepts(&doc), expected, "{}", doc);
    }

    #[test]
    fn mutated_objects_read_like_serde_json(
        (doc, _) in object(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(b"{}[],:\"\\ 0-.eE1tfnu".to_vec())), 1..4),
    ) {
        let mut bytes = doc.into_bytes();
        for (at, op, b) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 if i < bytes.len() => { bytes.remove(i); }
                1 => bytes.insert(i, b),
                _ if i < bytes.len() => bytes[i] = b,
                _ => bytes.push(b),
            }
        }
        fuzzing::json_reader(&bytes);
    }
}

/// The excuses are narrow: ordinary claims sets never qualify.
#[test]
fn ordinary_documents_are_never_excused() {
    for doc in [
        r#"{"iss":"https://issuer.test/","exp":1700003000,"iat":1700000000,"scope":"a b"}"#,
        r#"{"alg":"ES256","kid":"key-1","typ":"JWT"}"#,
        r#"{"x":1.5e30,"y":[1,2,3],"z":"\u00e9"}"#,
    ] {
        assert!(!fuzzing::json_reader_may_differ(doc), "{doc}");
        fuzzing::json_reader(doc.as_bytes());
    }
    assert!(fuzzing::json_reader_may_differ(r#"{"x":1e400}"#));
    assert!(fuzzing::json_reader_may_differ(r#"{"x":"\uD800"}"#));
}
