//! Generates the htpasswd fixtures under `engine/tests/data/htpasswd/`.
//!
//! ```text
//! cargo run -p portcullis-engine --example gen_test_htpasswd -- engine/tests/data/htpasswd
//! ```
//!
//! Accepted hashes are made here with fresh salts (bcrypt cost 4 and small
//! argon2 parameters, so tests stay fast); the refused kinds are fixed strings
//! made once with `openssl passwd` (see the README) and are refused by their
//! prefix before any parsing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::PathBuf;

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};

fn bcrypt(password: &str, version: bcrypt::Version) -> String {
    bcrypt::hash_with_result(password, 4)
        .unwrap()
        .format_for_version(version)
}

fn argon2(password: &str, algorithm: Algorithm) -> String {
    let mut salt = [0u8; 16];
    SystemRandom::new().fill(&mut salt).unwrap();
    let salt = SaltString::encode_b64(&salt).unwrap();
    let params = Params::new(256, 1, 1, None).unwrap();
    Argon2::new(algorithm, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "engine/tests/data/htpasswd".to_string()),
    );
    fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        println!("wrote {}", path.display());
    };

    write(
        "users.htpasswd",
        format!(
            "# test users; passwords are in README.md\n\
             alice:{}\n\
             bob:{}\n\
             carol:{}\n\
             \n\
             dave:{}\n\
             erin:{}\n\
             frank:{}\n",
            bcrypt("alice-pw", bcrypt::Version::TwoY),
            bcrypt("bob pw:with colon", bcrypt::Version::TwoB),
            bcrypt("carol-pw", bcrypt::Version::TwoA),
            argon2("dave-pw", Algorithm::Argon2id),
            argon2("erin-pw", Algorithm::Argon2i),
            argon2("frank-pw", Algorithm::Argon2d),
        ),
    );
    write(
        "bcrypt-only.htpasswd",
        format!(
            "alice:{}\nbob:{}\n",
            bcrypt("alice-pw", bcrypt::Version::TwoY),
            bcrypt("bob-pw", bcrypt::Version::TwoB)
        ),
    );
    let ok = bcrypt("alice-pw", bcrypt::Version::TwoB);
    write(
        "duplicate.htpasswd",
        format!("alice:{ok}\nbob:{ok}\nalice:{ok}\n"),
    );
    write("no-colon.htpasswd", format!("alice:{ok}\nbob {ok}\n"));
    write("empty.htpasswd", "# nobody\n\n".to_string());
    // `openssl passwd -apr1 -salt abcdefgh secret`, `-1`, `-5`, `-6`;
    // `printf secret | openssl sha1 -binary | base64`.
    let refused = [
        ("apr1.htpasswd", "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/"),
        ("sha1.htpasswd", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="),
        ("md5-crypt.htpasswd", "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1"),
        (
            "sha256-crypt.htpasswd",
            "$5$abcdefgh$gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM.",
        ),
        (
            "sha512-crypt.htpasswd",
            "$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG.",
        ),
        ("des-crypt.htpasswd", "abJnggxhB/yWI"),
        ("plain.htpasswd", "secret"),
        ("bcrypt-2x.htpasswd", &ok.replacen("$2b$", "$2x$", 1)),
    ];
    for (name, hash) in refused {
        // The refused hash sits on line 3, after a comment and a good user.
        write(
            name,
            format!("# refused kind\ncarol:{ok}\nmallory:{hash}\n"),
        );
    }
}
