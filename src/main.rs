//! The `shaderlens` command line: `verify` checks fixtures against the host references and the GPU
//! kernels (SPEC's contract, exit codes 0/1/2); `run` runs a TransformerLens-format model on
//! tokens and writes its logits, activations and attention patterns; `bench` times every op on the
//! adapter next to the host reference (the logic is in `shaderlens::bench`); `games` writes the
//! data sets of the games models train on (the logic is in `shaderlens::games::cli`); `patch` runs
//! activation-patching sweeps on prompt pairs (`shaderlens::analysis::cli`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use shaderlens::bench;
use shaderlens::transformer::cli::RunArgs;
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
    /// Time every op (or only OP) at the shapes small transformers use, with the float64 host
    /// reference beside it: median GPU time, GFLOP/s or GB/s, fraction of the adapter's peak.
    ///
    /// Large sizes (matmul 2048^3 and 4096^3, the transformer on 64 games) run by default on GPUs, on CPU adapters only with
    /// --large or SHADERLENS_BENCH_LARGE=1. Exit codes: 0 every case ran; 1 some case failed; 2 the
    /// command line was wrong or no adapter could be had.
    Bench {
        /// One op: matmul, gelu, softmax, layer_norm, attention or transformer (the whole forward).
        op: Option<String>,
        /// One JSON object per row on stdout instead of text lines.
        #[arg(long)]
        json: bool,
        /// Tiny shapes and a single timed run each (a smoke test, not a measurement).
        #[arg(long)]
        quick: bool,
        /// Include the large sizes on CPU adapters too.
        #[arg(long)]
        large: bool,
        /// Also one row per kernel variant, not just the one the op chooses.
        #[arg(long)]
        variants: bool,
        /// Only this shape of OP, comma-separated (matmul: M,K,N; attention: B,H,S,D; transformer:
        /// B,S,layers,d_model; the others: the input's shape).
        #[arg(long, value_delimiter = ',', requires = "op")]
        shape: Option<Vec<usize>>,
    },
    /// Run a model (SPEC's TransformerLens format) on tokens; write logits and cached activations
    /// to an npz, and optionally the attention patterns of the first sequence as a PNG.
    ///
    /// Exit codes: 0 written; 2 a file could not be read or written, the model or the tokens were
    /// refused, or no adapter could be had.
    Run {
        /// The model's config JSON (TransformerLens field names).
        #[arg(long)]
        model: PathBuf,
        /// The weights npz (float32, TransformerLens state-dict names).
        #[arg(long)]
        weights: PathBuf,
        /// Tokens [batch, positions] as an int64 or int32 npy file.
        #[arg(long)]
        tokens: PathBuf,
        /// Where to write the npz (tokens, logits, cache.<hook>).
        #[arg(long)]
        out: PathBuf,
        /// Hooks to cache, by TransformerLens name (e.g. blocks.0.attn.hook_pattern); `all` for
        /// every hook. Repeat the flag or list several names after it.
        #[arg(long, num_args = 1..)]
        cache: Vec<String>,
        /// Draw the attention patterns of batch element 0 (layers x heads) to this PNG.
        #[arg(long)]
        pattern_png: Option<PathBuf>,
    },
    /// Activation-patching sweeps (SPEC's Analysis) on prompt pairs, batched on the GPU: write
    /// them to an npz and print where each is strongest.
    ///
    /// Exit codes: 0 written; 2 a file could not be read or written, the model or the prompts
    /// were refused, or no adapter could be had.
    Patch {
        /// The model's config JSON (TransformerLens field names).
        #[arg(long)]
        model: PathBuf,
        /// The weights npz (float32, TransformerLens state-dict names).
        #[arg(long)]
        weights: PathBuf,
        /// An npz of clean, corrupt (int64 [B, S]), answer and wrong (int64 [B]).
        #[arg(long)]
        prompts: PathBuf,
        /// Where to write the npz (patch.<sweep>, clean_metric, corrupt_metric, the prompts).
        #[arg(long)]
        out: PathBuf,
        /// Sweeps by key (resid_pre, attn_out, mlp_out, z_all_pos, z_by_pos, q_all_pos,
        /// k_all_pos, v_all_pos, pattern_all_pos) or `all`; default SPEC's four.
        #[arg(long = "sweep", num_args = 1..)]
        sweeps: Vec<String>,
        /// One forward pass per patch instead of many per submission (for comparison).
        #[arg(long)]
        one_per_patch: bool,
        /// Also write the attribution-patching estimate of every default hook (attr.<hook>).
        #[arg(long)]
        attribution: bool,
    },
    /// Analyses that write numbers (npz) and a picture (PNG): logit lens, direct logit
    /// attribution, patching heat maps, grokking's progress measures. Exit codes: 0 written; 2
    /// refused or failed.
    Analyze {
        #[command(subcommand)]
        what: shaderlens::analysis::analyze_cli::AnalyzeCommand,
    },
    /// Write a data set of a game (SPEC's Games): random Othello games, or modular arithmetic.
    ///
    /// Exit codes: 0 written; 2 the arguments were refused or the file could not be written.
    Games {
        #[command(subcommand)]
        game: shaderlens::games::cli::GamesCommand,
    },
    /// Train a model from scratch as a TOML config says (see presets/); writes metrics.jsonl,
    /// curves.png, checkpoints and the state to resume from. Exit codes: 0 finished or stopped by
    /// Ctrl-C with a checkpoint; 2 the config was refused, a file failed, or the loss diverged.
    Train(shaderlens::train::cli::TrainArgs),
    /// Linear probes (trained on the GPU) from an Othello model's activations to the board as
    /// mine / theirs / empty, per hook, against an untrained baseline: table, JSON, npz, PNGs.
    /// Exit codes: 0 written; 2 the model, hooks, games or a file were refused.
    Probe(shaderlens::probe::cli::ProbeArgs),
}

/// The longest error message printed whole; longer ones (a 100 MB config value echoed back) are
/// cut with a note of how much was left out.
const MAX_MESSAGE: usize = 2000;

fn say(e: &shaderlens::Error) -> String {
    shaderlens::scalar::cut(&e.to_string(), MAX_MESSAGE)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A typo in a variable that changes what runs is refused before any work.
    if let Err(e) = shaderlens::env::check() {
        eprintln!("shaderlens: {}", say(&e));
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Verify { json, paths } => run_verify(json, &paths),
        Command::Bench { op, json, quick, large, variants, shape } => {
            let mut options = bench::Options { op, shape, large, variants, ..bench::Options::default() };
            options.quick = quick;
            run_bench(options, json)
        }
        Command::Run { model, weights, tokens, out, cache, pattern_png } => {
            run_model(&RunArgs { model, weights, tokens, out, cache, pattern_png })
        }
        Command::Patch { model, weights, prompts, out, sweeps, one_per_patch, attribution } => {
            let args = shaderlens::analysis::cli::PatchArgs { model, weights, prompts, out, sweeps, one_per_patch, attribution };
            report("patch", Gpu::new().and_then(|gpu| shaderlens::analysis::cli::run(&gpu, &args)))
        }
        Command::Analyze { what } => report("analyze", shaderlens::analysis::analyze_cli::run(&what)),
        Command::Games { game } => shaderlens::games::cli::main(game),
        Command::Train(args) => shaderlens::train::cli::main(args),
        Command::Probe(args) => shaderlens::probe::cli::main(args),
    }
}

fn run_bench(wanted: bench::Options, json: bool) -> ExitCode {
    if let Err(e) = bench::cases::list(wanted.op.as_deref(), wanted.shape.as_deref(), wanted.quick, wanted.large) {
        eprintln!("bench: {}", say(&e));
        return ExitCode::from(2);
    }
    let gpu = match Gpu::new() {
        Ok(gpu) => gpu,
        Err(e) => {
            eprintln!("bench: {}", say(&e));
            return ExitCode::from(2);
        }
    };
    if let (Some(op), Some(shape)) = (&wanted.op, &wanted.shape) {
        let case = bench::cases::list(Some(op.as_str()), Some(shape.as_slice()), wanted.quick, wanted.large).ok().and_then(|c| c.into_iter().next());
        if let Some(Err(e)) = case.map(|case| bench::size::check(&gpu, &case)) {
            eprintln!("bench: {}", say(&e));
            return ExitCode::from(2);
        }
    }
    let mut options = bench::Options::new(&gpu, wanted.op);
    if wanted.quick {
        options = options.quick();
    }
    options.large |= wanted.large;
    options.variants = wanted.variants;
    options.shape = wanted.shape;
    let clock = shaderlens::timing::Timer::new(&gpu).clock().as_str();
    let header = format!("adapter: {}\nclock: {clock}", gpu.description());
    if json {
        eprintln!("{header}");
    } else {
        println!("{header}\n{}", bench::HEADER);
    }
    let emit = |row: &bench::Row| {
        if json {
            match serde_json::to_string(row) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("bench: cannot write JSON for {} {:?}: {e}", row.op, row.shape),
            }
        } else {
            println!("{}", bench::line(row));
        }
    };
    let failed = |case: &bench::cases::Case, e: &shaderlens::Error| eprintln!("bench: {} {:?} failed: {}", case.op, case.shape, say(e));
    match bench::run(&gpu, &options, emit, failed) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("bench: {}", say(&e));
            ExitCode::from(2)
        }
    }
}

fn run_model(args: &RunArgs) -> ExitCode {
    let result = Gpu::new().and_then(|gpu| shaderlens::transformer::cli::run(&gpu, args));
    match result {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("run: {}", say(&e));
            ExitCode::from(2)
        }
    }
}

/// Prints a command's summary (exit 0) or its error (exit 2).
fn report(command: &str, result: shaderlens::Result<String>) -> ExitCode {
    match result {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{command}: {}", say(&e));
            ExitCode::from(2)
        }
    }
}

fn run_verify(json: bool, paths: &[PathBuf]) -> ExitCode {
    let gpu = match Gpu::new() {
        Ok(gpu) => gpu,
        Err(e) => {
            eprintln!("verify: {}", say(&e));
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
