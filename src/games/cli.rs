//! The `games` command: write the data sets of the games shaderlens trains on.
//!
//! ```text
//! shaderlens games othello --games N [--seed S] [--threads T] [--compress] --out games.npz
//! shaderlens games modular --p 113 --op add --train-fraction 0.3 [--seed S] --out data.npz
//! ```
//!
//! Both write SPEC's arrays (see **Games**) to a temporary file beside `--out` and rename it. Bad
//! arguments are refused by name before any work; exit code 0 written, 2 refused or failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Subcommand;

use super::dataset::{self, BYTES_PER_GAME};
use super::modular::{ModularData, Op};
use super::write::{check_destination, write_npz_atomically};
use crate::{Error, Result};

/// The data sets `shaderlens games` writes.
#[derive(Clone, Debug, Subcommand)]
pub enum GamesCommand {
    /// Random Othello games (moves uniform among the legal ones) as SPEC's games file: tokens,
    /// boards, player, legal. The same seed gives the same games whatever the thread count.
    Othello {
        /// How many games.
        #[arg(long)]
        games: usize,
        /// The data set's seed; game g of seed S is the same in every file made with S.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Worker threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Deflate the npz (about 10x smaller, several times slower to write).
        #[arg(long)]
        compress: bool,
        /// The npz file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Modular arithmetic (a op b mod p) split into train and test: train_tokens,
    /// train_targets, test_tokens, test_targets (int64 [n, 3]).
    Modular {
        /// The prime modulus.
        #[arg(long)]
        p: u64,
        /// add, sub, mul or div.
        #[arg(long)]
        op: String,
        /// The fraction of all examples that trains, in (0, 1].
        #[arg(long)]
        train_fraction: f64,
        /// The split's seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The npz file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs a `games` command, printing a summary line or the error; returns the exit code.
pub fn main(command: GamesCommand) -> ExitCode {
    match run(command) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("games: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs a `games` command; returns a one-line summary of what was written.
pub fn run(command: GamesCommand) -> Result<String> {
    match command {
        GamesCommand::Othello { games, seed, threads, compress, out } => othello(games, seed, threads, compress, &out),
        GamesCommand::Modular { p, op, train_fraction, seed, out } => modular(p, &op, train_fraction, seed, &out),
    }
}

/// Bytes of memory the system can still give, from /proc/meminfo (None where unknown).
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses a number of games that is zero or cannot fit in memory.
fn check_game_count(games: usize) -> Result<()> {
    if games == 0 {
        return Err(Error::Input("--games must be at least 1".into()));
    }
    let needed = (games as u128) * (BYTES_PER_GAME as u128);
    // Where /proc/meminfo is missing, a fixed 64 GiB ceiling still refuses typos like 10^12.
    let (allowed, whence) = match available_memory() {
        Some(bytes) => (bytes as u128, "this machine has available"),
        None => (64u128 << 30, "the limit without /proc/meminfo is"),
    };
    if needed > allowed {
        return Err(Error::Input(format!(
            "--games {games} needs {:.1} GiB in memory ({BYTES_PER_GAME} bytes a game) but {whence} {:.1} GiB; \
             write several files with consecutive seeds instead",
            needed as f64 / (1u64 << 30) as f64,
            allowed as f64 / (1u64 << 30) as f64
        )));
    }
    Ok(())
}

/// CPU seconds this process has used, all threads together (Linux's /proc/self/stat, in its fixed
/// 100 ticks a second); None elsewhere. On a shared machine, games per CPU-second is the figure
/// that does not depend on what else is running.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn progress_bar(games: usize) -> indicatif::ProgressBar {
    // Small sets finish before a bar is worth drawing; indicatif hides it off a terminal anyway.
    if games < 200_000 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(games as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} games, {per_sec}, eta {eta}") {
        bar.set_style(style);
    }
    bar
}

fn othello(games: usize, seed: u64, threads: usize, compress: bool, out: &Path) -> Result<String> {
    check_game_count(games)?;
    dataset::thread_count(threads, "--threads")?;
    check_destination(out)?;
    let bar = progress_bar(games);
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let data = dataset::generate_with_progress(seed, 0, games, threads, &|done| bar.set_position(done as u64))?;
    let generated = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, cpu_seconds()) {
        (Some(a), Some(b)) if b > a => format!(", {:.2} CPU-s ({:.0} games per CPU-second)", b - a, games as f64 / (b - a)),
        _ => String::new(),
    };
    bar.finish_and_clear();
    let moves = data.tokens.iter().filter(|&&t| t != 0).count();
    write_npz_atomically(out, compress, |npz| {
        npz.add_array("tokens", &data.tokens)?;
        npz.add_array("boards", &data.boards)?;
        npz.add_array("player", &data.player)?;
        npz.add_array("legal", &data.legal)
    })?;
    let total = started.elapsed().as_secs_f64();
    Ok(format!(
        "wrote {} ({games} games, {:.2} moves a game, seed {seed}): generated in {generated:.3} s ({:.0} games/s{cpu}), {total:.3} s with writing",
        out.display(),
        moves as f64 / games as f64,
        games as f64 / generated.max(1e-9),
    ))
}

fn modular(p: u64, op: &str, train_fraction: f64, seed: u64, out: &Path) -> Result<String> {
    let op: Op = op.parse().map_err(|e| Error::Input(format!("--op: {e}")))?;
    check_destination(out)?;
    let data = ModularData::new(p, op, train_fraction, seed).map_err(|e| Error::Input(format!("{e} (--p {p}, --train-fraction {train_fraction})")))?;
    write_npz_atomically(out, false, |npz| {
        npz.add_array("train_tokens", &data.train_tokens)?;
        npz.add_array("train_targets", &data.train_targets)?;
        npz.add_array("test_tokens", &data.test_tokens)?;
        npz.add_array("test_targets", &data.test_targets)
    })?;
    Ok(format!(
        "wrote {} ({} mod {p}: {} train, {} test examples, seed {seed})",
        out.display(),
        format!("{op:?}").to_lowercase(),
        data.train_tokens.nrows(),
        data.test_tokens.nrows()
    ))
}
