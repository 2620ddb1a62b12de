//! `portcullis`: parse the command line and hand over to the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use portcullis_server::cli::{Cli, Command};
use portcullis_server::{commands, serve};

/// mimalloc's per-thread free lists cost less per allocation and free than
/// glibc's malloc, and a request allocates and frees a dozen times
/// (docs/server.md, "Cost of a decision over HTTP").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Check(args) => commands::check(&args),
        Command::Test(args) => commands::test(&args),
        Command::Decide(args) => commands::decide(&args),
        Command::Keys(args) => commands::keys(&args),
    }
}
