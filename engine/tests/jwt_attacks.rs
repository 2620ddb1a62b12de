//! One test per JWT attack class of SECURITY.md ("what the crate does NOT
//! do", "rejected by the crate already", and the verifier checklist). Every
//! hostile token here is validly signed unless the attack is the signature
//! itself, so a deny proves the check under test, not a broken signature.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "jwt_support.rs"]
mod support;

use std::io::ErrorKind;
use std::net::TcpListener;

use portcullis_engine::credential::jwt::testing::{sign, sign_raw, signature};
use portcullis_engine::credential::jwt::JwtVerifier;
use portcullis_engine::credential::Outcome;
use portcullis_engine::policy::{JwtAlgorithm as A, JwtKeySource};
use portcullis_engine::Reason;
use serde_json::json;
use support::*;

fn ec_jwks_verifier() -> JwtVerifier {
    let jwks = jwks_file(&[(jwk("ec256"), Some("k1"), Some("ES256"))]);
    build(&def(&[A::ES256], JwtKeySource::JwksFile(jwks)))
}

fn ec_key() -> Vec<u8> {
    key("ec256.key.pem")
}

fn payload() -> Vec<u8> {
    serde_json::to_vec(&claims()).unwrap()
}

/// A token over exactly these header bytes, signed with our ES256 key.
fn es256_raw(header: &str) -> String {
    sign_raw(A::ES256, &ec_key(), header.as_bytes(), &payload()).unwrap()
}

fn good() -> String {
    es256_raw(r#"{"alg":"ES256","kid":"k1"}"#)
}

#[test]
fn control_a_well_formed_token_verifies() {
    assert_valid(&verify(&ec_jwks_verifier(), &good()));
}

// --- SECURITY.md checklist 1: one algorithm per key; `alg` must equal it ---

#[test]
fn alg_none_in_every_case_denies() {
    let v = ec_jwks_verifier();
    let p = b64(&payload());
    for none in ["none", "None", "NONE", "nOnE"] {
        for kid in ["", r#","kid":"k1""#] {
            let h = b64(format!(r#"{{"alg":"{none}"{kid}}}"#).as_bytes());
            // Empty signature (the classic form) and a non-empty one.
            assert_denied(&verify(&v, &format!("{h}.{p}.")), Reason::CredentialInvalid);
            assert_invalid_because(&verify(&v, &format!("{h}.{p}.AAAA")), "alg none");
        }
    }
}

#[test]
fn lowercase_or_unknown_alg_names_deny() {
    let v = ec_jwks_verifier();
    for alg in ["es256", "Es256", "ES256 ", "ES512", "HS256\u{0}"] {
        let t = es256_raw(&json!({"alg": alg, "kid": "k1"}).to_string());
        let o = verify(&v, &t);
        assert_denied(&o, Reason::CredentialInvalid);
        if let Outcome::Invalid(_, d) = o {
            assert!(d.contains("alg"), "{alg}: {d}");
        }
    }
}

#[test]
fn alg_not_configured_denies() {
    let jwks = jwks_file(&[(jwk("ec384"), Some("k1"), Some("ES384"))]);
    let mut d = def(&[A::ES256], JwtKeySource::JwksFile(jwks));
    d.algorithms = vec![A::ES256, A::ES384];
    let v = build(&d);
    let t = sign(A::ES384, &key("ec384.key.pem"), Some("k1"), None, &claims()).unwrap();
    assert_valid(&verify(&v, &t));
    let v = ec_jwks_verifier();
    assert_invalid_because(&verify(&v, &t), "not among the configured algorithms");
}

#[test]
fn kid_naming_a_key_of_another_algorithm_denies() {
    let jwks = jwks_file(&[
        (jwk("ec256"), Some("ec"), Some("ES256")),
        (jwk("rsa"), Some("rsa"), Some("RS256")),
    ]);
    let v = build(&def(&[A::ES256, A::RS256], JwtKeySource::JwksFile(jwks)));
    let t = sign(A::RS256, &key("rsa.key.pem"), Some("ec"), None, &claims()).unwrap();
    assert_invalid_because(&verify(&v, &t), "another algorithm");
    let t = sign(A::RS256, &key("rsa.key.pem"), Some("rsa"), None, &claims()).unwrap();
    assert_valid(&verify(&v, &t));
}

#[test]
fn no_kid_and_several_candidate_keys_denies() {
    let jwks = jwks_file(&[
        (jwk("ec256"), Some("a"), Some("ES256")),
        (jwk("ec256b"), Some("b"), Some("ES256")),
    ]);
    let v = build(&def(&[A::ES256], JwtKeySource::JwksFile(jwks)));
    let t = sign(A::ES256, &ec_key(), None, None, &claims()).unwrap();
    assert_invalid_because(&verify(&v, &t), "no kid and several keys");
    let t = sign(A::ES256, &ec_key(), Some("a"), None, &claims()).unwrap();
    assert_valid(&verify(&v, &t));
    // The other key's kid: the signature does not verify with that key.
    let t = sign(A::ES256, &ec_key(), Some("b"), None, &claims()).unwrap();
    assert_invalid_because(&verify(&v, &t), "signature");
}

/// Our RSA public key in the forms an attacker would try as an HMAC secret.
fn rsa_public_forms() -> Vec<(&'static str, Vec<u8>)> {
    let pem = key("rsa.pub.pem");
    let text = String::from_utf8(pem.clone()).unwrap();
    let b64_body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        STANDARD.decode(b64_body).unwrap()
    };
    let j = jwk("rsa");
    let jwk_json = serde_json::to_vec(&j).unwrap();
    let jwk_pretty = key("rsa.jwk.json");
    // OpenSSH: "ssh-rsa " + base64(string "ssh-rsa", mpint e, mpint n).
    let ssh = {
        fn put(buf: &mut Vec<u8>, b: &[u8]) {
            buf.extend_from_slice(&(b.len() as u32).to_be_bytes());
            buf.extend_from_slice(b);
        }
        fn mpint(b: &[u8]) -> Vec<u8> {
            let mut v = b.to_vec();
            if v.first().is_some_and(|x| x & 0x80 != 0) {
                v.insert(0, 0);
            }
            v
        }
        let n = unb64(j["n"].as_str().unwrap());
        let e = unb64(j["e"].as_str().unwrap());
        let mut blob = Vec::new();
        put(&mut blob, b"ssh-rsa");
        put(&mut blob, &mpint(&e));
        put(&mut blob, &mpint(&n));
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        format!("ssh-rsa {} key@test\n", STANDARD.encode(blob)).into_bytes()
    };
    vec![
        ("pem", pem),
        ("der", der),
        ("jwk", jwk_json),
        ("jwk-file", jwk_pretty),
        ("openssh", ssh),
    ]
}

#[test]
fn rs_to_hs_confusion_with_every_form_of_our_public_key_denies() {
    let pem_src = JwtKeySource::PemFile("keys/rsa.pub.pem".into());
    let jwks = jwks_file(&[(jwk("rsa"), Some("k1"), None)]);
    let verifiers = [
        ("pem, RS256 only", build(&def(&[A::RS256], pem_src.clone()))),
        (
            "pem, RS256+HS256",
            build(&def(&[A::RS256, A::HS256], pem_src)),
        ),
        (
            "jwks, RS256+HS256",
            build(&def(&[A::RS256, A::HS256], JwtKeySource::JwksFile(jwks))),
        ),
    ];
    for (form, secret) in rsa_public_forms() {
        for kid in [None, Some("k1")] {
            let t = sign(A::HS256, &secret, kid, None, &claims()).unwrap();
            for (name, v) in &verifiers {
                let o = verify(v, &t);
                assert_denied(&o, Reason::CredentialInvalid);
                assert!(
                    !matches!(o, Outcome::Invalid(_, d) if d.contains("signature does not verify")),
                    "{form}/{name}: an hmac key was tried: {o:?}"
                );
            }
        }
        // And no HMAC key can be made from it, even by configuration mistake.
        let mut value = secret.clone();
        if form == "der" {
            value = format!("base64url:{}", b64(&secret)).into_bytes();
        }
        let var = env_secret(&value);
        let err = build_err(&def(&[A::HS256], JwtKeySource::SecretEnv(var)));
        assert!(err.contains("public-key material"), "{form}: {err}");
    }
}

// --- SECURITY.md checklist 2: never take keys from the token ---

#[test]
fn embedded_jwk_or_x5c_denies() {
    let v = ec_jwks_verifier();
    // The attacker signs with their own key and embeds it (CVE-2018-0114).
    let mut attacker = jwk("ec256b");
    attacker["kid"] = json!("k1");
    let attacker_key = key("ec256b.key.pem");
    for h in [
        json!({"alg": "ES256", "kid": "k1", "jwk": attacker}),
        json!({"alg": "ES256", "jwk": attacker}),
        json!({"alg": "ES256", "kid": "k1", "x5c": ["MIIBszCCAVmgAwIBAgIUJ"]}),
    ] {
        let t = sign_raw(
            A::ES256,
            &attacker_key,
            h.to_string().as_bytes(),
            &payload(),
        )
        .unwrap();
        assert_invalid_because(&verify(&v, &t), "embeds a key");
        // Even signed with our own key, the member alone denies.
        let t = es256_raw(&h.to_string());
        assert_invalid_because(&verify(&v, &t), "embeds a key");
    }
}

#[test]
fn jku_and_x5u_deny_without_any_outbound_request() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let v = ec_jwks_verifier();
    for member in ["jku", "x5u"] {
        let t = es256_raw(&json!({"alg": "ES256", "kid": "k1", member: url}).to_string());
        assert_invalid_because(&verify(&v, &t), "remote keys");
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the verifier connected to the jku/x5u url: {other:?}"),
    }
}

// --- checklist 3: kid is untrusted input ---

#[test]
fn kid_traversal_and_near_misses_are_unknown_kids() {
    let v = ec_jwks_verifier();
    for kid in [
        "../../../../../../dev/null",
        "/dev/null",
        "keys/ec256.pub.pem",
        "k1/../k1",
        "K1",
        "k1 ",
        "k1\u{0}",
        "' OR '1'='1",
    ] {
        let t = sign(A::ES256, &ec_key(), Some(kid), None, &claims()).unwrap();
        assert_invalid_because(&verify(&v, &t), "kid names no configured key");
    }
    // The HMAC flavour: kid pointing at an empty file, MAC'd with an empty key.
    let secret = [42u8; 32];
    let v = build(&def(
        &[A::HS256],
        JwtKeySource::SecretEnv(env_secret(&secret)),
    ));
    let t = sign(A::HS256, b"", Some("/dev/null"), None, &claims()).unwrap();
    assert_invalid_because(&verify(&v, &t), "signature");
}

#[test]
fn a_10kb_kid_is_a_fast_deny() {
    let kid = "k".repeat(10 * 1024);
    let t = sign(A::ES256, &ec_key(), Some(&kid), None, &claims()).unwrap();
    // With the default size limit the token is refused before decoding...
    assert_invalid_because(&verify(&ec_jwks_verifier(), &t), "size limit");
    // ...and with a generous limit, before any key lookup.
    let jwks = jwks_file(&[(jwk("ec256"), Some("k1"), Some("ES256"))]);
    let mut d = def(&[A::ES256], JwtKeySource::JwksFile(jwks));
    d.max_token_bytes = 64 * 1024;
    assert_invalid_because(&verify(&build(&d), &t), "kid too long");
}

// --- crit, typ and friends ---

#[test]
fn crit_in_any_form_denies() {
    let v = ec_jwks_verifier();
    for crit in [
        json!([]),
        json!(["exp"]),
        json!(["b64"]),
        json!("exp"),
        json!(null),
    ] {
        let t = es256_raw(&json!({"alg": "ES256", "kid": "k1", "crit": crit}).to_string());
        assert_invalid_because(&verify(&v, &t), "crit");
    }
}

#[test]
fn typ_mismatch_denies() {
    let jwks = jwks_file(&[(jwk("ec256"), Some("k1"), Some("ES256"))]);
    let mut d = def(&[A::ES256], JwtKeySource::JwksFile(jwks));
    d.typ = Some("at+jwt".into());
    let v = build(&d);
    for typ in [r#""JWT""#, r#""""#, "5", "null"] {
        let t = es256_raw(&format!(r#"{{"alg":"ES256","kid":"k1","typ":{typ}}}"#));
        assert_denied(&verify(&v, &t), Reason::CredentialInvalid);
    }
    assert_valid(&verify(
        &v,
        &es256_raw(r#"{"alg":"ES256","kid":"k1","typ":"at+JWT"}"#),
    ));
}

#[test]
fn nested_jwt_and_unencoded_payload_members_deny() {
    let v = ec_jwks_verifier();
    for h in [
        json!({"alg": "ES256", "kid": "k1", "cty": "JWT"}),
        json!({"alg": "ES256", "kid": "k1", "b64": false}),
        json!({"alg": "ES256", "kid": "k1", "zip": "DEF"}),
        json!({"alg": "ES256", "kid": "k1", "enc": "A128GCM"}),
    ] {
        assert_denied(
            &verify(&v, &es256_raw(&h.to_string())),
            Reason::CredentialInvalid,
        );
    }
}

// --- duplicate members and trailing bytes ---

#[test]
fn duplicate_header_members_deny() {
    let v = ec_jwks_verifier();
    for h in [
        r#"{"alg":"ES256","kid":"k1","alg":"ES256"}"#,
        r#"{"alg":"ES256","kid":"k1","kid":"k1"}"#,
        r#"{"alg":"ES256","kid":"k1","\u0061lg":"ES256"}"#,
        r#"{"alg":"ES256","kid":"k1","x":1,"x":1}"#,
    ] {
        assert_invalid_because(&verify(&v, &es256_raw(h)), "duplicate member");
    }
}

#[test]
fn duplicate_claim_members_deny() {
    let v = ec_jwks_verifier();
    let body = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"user-1","exp":{},"sub":"admin"}}"#,
        NOW_S + 600
    );
    let t = sign_raw(
        A::ES256,
        &ec_key(),
        br#"{"alg":"ES256","kid":"k1"}"#,
        body.as_bytes(),
    )
    .unwrap();
    assert_invalid_because(&verify(&v, &t), "duplicate member");
    let body = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"u","exp":{e},"exp":{e}}}"#,
        e = NOW_S + 600
    );
    let t = sign_raw(
        A::ES256,
        &ec_key(),
        br#"{"alg":"ES256","kid":"k1"}"#,
        body.as_bytes(),
    )
    .unwrap();
    assert_invalid_because(&verify(&v, &t), "duplicate member");
}

#[test]
fn trailing_bytes_after_json_deny() {
    let v = ec_jwks_verifier();
    for h in [
        r#"{"alg":"ES256","kid":"k1"}x"#,
        r#"{"alg":"ES256","kid":"k1"}{}"#,
    ] {
        assert_invalid_because(&verify(&v, &es256_raw(h)), "not a valid json object");
    }
    let mut body = payload();
    body.extend_from_slice(b" {}");
    let t = sign_raw(A::ES256, &ec_key(), br#"{"alg":"ES256","kid":"k1"}"#, &body).unwrap();
    assert_invalid_because(&verify(&v, &t), "not a valid json object");
}

#[test]
fn non_json_or_non_utf8_header_denies() {
    let v = ec_jwks_verifier();
    for h in [
        &b"[\"alg\"]"[..],
        b"\xff\xfe",
        b"ES256",
        b"{\"alg\":\"ES\xff256\"}",
    ] {
        let t = sign_raw(A::ES256, &ec_key(), h, &payload()).unwrap();
        assert_denied(&verify(&v, &t), Reason::CredentialInvalid);
    }
}

// --- checklist 7: strict compact form ---

fn parts(t: &str) -> (String, String, String) {
    let v: Vec<&str> = t.split('.').collect();
    (v[0].into(), v[1].into(), v[2].into())
}

#[test]
fn padded_or_standard_base64_denies() {
    let v = ec_jwks_verifier();
    let (h, p, s) = parts(&good());
    for t in [
        format!("{h}=.{p}.{s}"),
        format!("{h}.{p}==.{s}"),
        format!("{h}.{p}.{s}="),
    ] {
        assert_invalid_because(&verify(&v, &t), "outside base64url");
    }
    // The standard alphabet (`+`, `/`) in a signature that has `-` or `_`.
    let t = (0..200)
        .map(|_| good())
        .find(|t| parts(t).2.contains(['-', '_']))
        .unwrap();
    let (h, p, s) = parts(&t);
    let std_sig = s.replace('-', "+").replace('_', "/");
    assert_invalid_because(
        &verify(&v, &format!("{h}.{p}.{std_sig}")),
        "outside base64url",
    );
}

#[test]
fn non_canonical_base64_trailing_bits_deny() {
    let v = ec_jwks_verifier();
    // ES256 signatures are 64 bytes: 86 characters, the last holding 4 bits
    // of data and 2 bits that must be zero.
    let (h, p, s) = parts(&good());
    let last = s.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.find(last).unwrap();
    assert_eq!(idx & 3, 0, "canonical encoding has zero trailing bits");
    let tweaked = alphabet.chars().nth(idx | 1).unwrap();
    let s2 = format!("{}{tweaked}", &s[..s.len() - 1]);
    assert_invalid_because(&verify(&v, &format!("{h}.{p}.{s2}")), "base64url");
}

#[test]
fn whitespace_anywhere_denies() {
    let v = ec_jwks_verifier();
    let (h, p, s) = parts(&good());
    for t in [
        format!("{h} .{p}.{s}"),
        format!("{h}.{p}\n.{s}"),
        format!("{h}.{p}.{s}\t"),
        format!("{h}.{p}.\r\n{s}"),
    ] {
        let o = v.verify_token(&t, now());
        assert_invalid_because(&o, "outside base64url");
    }
    // Through a request, a space inside the bearer value is ambiguous.
    assert_denied(
        &verify(&v, &format!("{h}.{p} .{s}")),
        Reason::AmbiguousCredential,
    );
}

#[test]
fn two_or_four_segments_deny() {
    let v = ec_jwks_verifier();
    let (h, p, s) = parts(&good());
    for t in [
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}.{s}"),
        format!("{h}.{p}.{s}."),
        format!(".{h}.{p}.{s}"),
        format!("{h}..{p}.{s}"),
    ] {
        assert_invalid_because(&verify(&v, &t), "three segments");
    }
}

#[test]
fn empty_signature_denies() {
    let v = ec_jwks_verifier();
    let (h, p, _) = parts(&good());
    assert_invalid_because(
        &verify(&v, &format!("{h}.{p}.")),
        "empty header or signature",
    );
}

// --- checklist 8: size limit before any decoding ---

#[test]
fn huge_token_is_refused_before_decoding() {
    let v = ec_jwks_verifier();
    let (h, p, s) = parts(&good());
    let big = format!("{h}.{}{p}.{s}", "A".repeat(1 << 20));
    assert_invalid_because(&verify(&v, &big), "size limit");
    // CVE-2025-30204: a header of many periods.
    let dots = format!("{h}{}", ".".repeat(1 << 20));
    assert_invalid_because(&v.verify_token(&dots, now()), "size limit");
    // Under a generous limit, the third dot already ends the parse.
    let jwks = jwks_file(&[(jwk("ec256"), Some("k1"), Some("ES256"))]);
    let mut d = def(&[A::ES256], JwtKeySource::JwksFile(jwks));
    d.max_token_bytes = 2 << 20;
    assert_invalid_because(&build(&d).verify_token(&dots, now()), "three segments");
}

// --- checklist 9: ES256 signatures exactly 64 bytes, r and s in [1, n-1] ---

const P256_N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

#[test]
fn psychic_and_malformed_es256_signatures_deny() {
    let v = ec_jwks_verifier();
    let (h, p, s) = parts(&good());
    let real = unb64(&s);
    let n = hex(P256_N);
    let mut n_minus_1 = n.clone();
    n_minus_1[31] -= 1;
    let zero = vec![0u8; 32];
    let one = {
        let mut o = vec![0u8; 32];
        o[31] = 1;
        o
    };
    let cat = |r: &[u8], s: &[u8]| [r, s].concat();
    let sigs: Vec<(&str, Vec<u8>)> = vec![
        ("64 zero bytes (CVE-2022-21449)", vec![0; 64]),
        ("der r=0 s=0", unb64("MAYCAQACAQA")),
        ("r=0", cat(&zero, &real[32..])),
        ("s=0", cat(&real[..32], &zero)),
        ("r=n s=n", cat(&n, &n)),
        ("r=n", cat(&n, &real[32..])),
        ("r=s=1", cat(&one, &one)),
        ("r=s=n-1", cat(&n_minus_1, &n_minus_1)),
        ("r+n overflow", cat(&[&[0u8][..], &n].concat(), &real[32..])),
        ("65 bytes", [real.clone(), vec![0]].concat()),
        ("63 bytes", real[..63].to_vec()),
        ("der of the real signature", der_of(&real)),
    ];
    for (what, sig) in sigs {
        let t = format!("{h}.{p}.{}", b64(&sig));
        assert_invalid_because(&verify(&v, &t), "signature does not verify");
        let _ = what;
    }
    assert_valid(&verify(&v, &format!("{h}.{p}.{s}")));
}

fn der_of(p1363: &[u8]) -> Vec<u8> {
    fn int(b: &[u8]) -> Vec<u8> {
        let mut v: Vec<u8> = b.iter().copied().skip_while(|x| *x == 0).collect();
        if v.first().is_some_and(|x| x & 0x80 != 0) {
            v.insert(0, 0);
        }
        [vec![2, v.len() as u8], v].concat()
    }
    let body = [int(&p1363[..32]), int(&p1363[32..])].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

#[test]
fn a_signature_from_another_key_or_over_other_bytes_denies() {
    let v = ec_jwks_verifier();
    let (h, p, _) = parts(&good());
    let other = signature(
        A::ES256,
        &key("ec256b.key.pem"),
        format!("{h}.{p}").as_bytes(),
    )
    .unwrap();
    assert_invalid_because(
        &verify(&v, &format!("{h}.{p}.{}", b64(&other))),
        "signature",
    );
    let (_, p2, _) = parts(&es256_raw(r#"{"alg":"ES256","kid":"k1"}"#));
    let (h1, _, s1) = parts(&good());
    let mut c = claims();
    c["sub"] = json!("admin");
    let p3 = b64(&serde_json::to_vec(&c).unwrap());
    assert_ne!(p2, p3);
    assert_invalid_because(&verify(&v, &format!("{h1}.{p3}.{s1}")), "signature");
}
