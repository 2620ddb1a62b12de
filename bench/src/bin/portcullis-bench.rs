//! `portcullis-bench run WORKLOAD.yaml [--quick] [--out DIR]`: compares
//! credential mechanisms on a workload with real servers and stores, and
//! writes `report.md`, `report.html` and `report.json`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis_bench::harness::report;
use portcullis_bench::harness::results::Report;
use portcullis_bench::harness::run::{run, RunOptions};
use portcullis_bench::harness::HarnessError;

#[derive(Debug, Parser)]
#[command(
    name = "portcullis-bench",
    version,
    about = "Measure API keys against JWTs on your workload, and read which to pick"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a workload against real `portcullis serve` processes.
    Run {
        /// The workload file (see bench/workloads/).
        workload: PathBuf,
        /// Short phases, one rate, a small population: a first look in under a minute.
        #[arg(long)]
        quick: bool,
        /// Where the reports go.
        #[arg(long, default_value = "bench-report")]
        out: PathBuf,
        /// The portcullis binary (default: target/release/portcullis, built if missing).
        #[arg(long, env = "PORTCULLIS_BIN")]
        portcullis: Option<PathBuf>,
        /// Load-generator threads (the server gets the remaining cores).
        #[arg(long, default_value_t = 1)]
        client_threads: usize,
    },
    /// Render report.md and report.html again from a report.json.
    Render {
        /// A report.json written by `run`.
        json: PathBuf,
        /// Where the reports go (default: beside the JSON).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn render(json: &PathBuf, out: Option<PathBuf>) -> Result<(), HarnessError> {
    let text = std::fs::read_to_string(json).map_err(|source| HarnessError::ReadWorkload {
        path: json.clone(),
        source,
    })?;
    let r: Report = serde_json::from_str(&text)?;
    let dir = out.unwrap_or_else(|| {
        json.parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    for (name, body) in [
        ("report.md", report::markdown(&r)),
        ("report.html", report::html(&r)),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, body).map_err(|source| HarnessError::Write { path: p, source })?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            workload,
            quick,
            out,
            portcullis,
            client_threads,
        } => run(&RunOptions {
            workload,
            quick,
            out,
            portcullis,
            client_threads,
        })
        .map(|_| ()),
        Command::Render { json, out } => render(&json, out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
