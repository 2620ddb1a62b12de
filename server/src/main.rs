#[allow(dead_code)]
mod keys_cli;
#[allow(dead_code)]
mod store;
fn main() {}
