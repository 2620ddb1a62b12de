mod keys_cli;
mod store;
fn main() {}
