//! The `shaderlens` command line: `verify` checks fixtures against the host references and the GPU
//! kernels (SPEC's contract, exit codes 0/1/2).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use shaderlens::verify::{self, Status};
use shaderlens::Gpu;

#[derive(Parser)]
#[command(name = "shaderlens", version, about = "WGSL transformer kernels on any wgpu adapter, checked against npz fixtures")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check fixtures (files, or folders searched for *.npz) with the host reference and the GPU.
    ///
    /// Exit codes: 0 every fixture passed; 1 some fixture failed; 2 some fixture could not be
    /// checked, the command line was wrong, or no adapter could be had.
    Verify {
        /// One JSON object per fixture on stdout instead of text lines.
        #[arg(long)]
        json: bool,
        /// Fixture files or folders.
        #[arg(default_value = "fixtures")]
        paths: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify { json, paths } => run_verify(json, &paths),
    }
}

fn run_verify(json: bool, paths: &[PathBuf]) -> ExitCode {
    let gpu = match Gpu::new() {
        Ok(gpu) => gpu,
        Err(e) => {
            eprintln!("verify: {e}");
            return ExitCode::from(2);
        }
    };
    let header = format!("adapter: {}", gpu.description());
    if json { eprintln!("{header}") } else { println!("{header}") }
    let (mut passed, mut failed, mut errors) = (0usize, 0usize, 0usize);
    for entry in verify::collect(paths) {
        let report = match entry {
            Ok(path) => verify::verify_file(&gpu, &path),
            Err((path, message)) => verify::Report::unreadable(&path, message),
        };
        match report.status {
            Status::Pass => passed += 1,
            Status::Fail => failed += 1,
            Status::Error => errors += 1,
        }
        if json {
            match serde_json::to_string(&report) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("verify: cannot write JSON for {}: {e}", report.path),
            }
        } else {
            println!("{}", verify::line(&report));
        }
    }
    let summary = format!("verify: {passed} passed, {} failed", failed + errors);
    if json { eprintln!("{summary}") } else { println!("{summary}") }
    ExitCode::from(if errors > 0 { 2 } else if failed > 0 { 1 } else { 0 })
}
