// Wired into `serve` by the server issue (see jwks.rs, "Wiring").
#[allow(dead_code)]
mod jwks;

fn main() {}
