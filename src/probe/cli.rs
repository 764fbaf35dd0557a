//! `shaderlens probe`: linear probes of an Othello model's board representation, per hook, for
//! the given model and for an untrained model of the same config (the baseline), trained on the
//! GPU and scored on held-out games. Everything that can be refused is refused before the first
//! forward pass: the outputs, the model (an Othello model has 61 tokens), the hooks, the games.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ndarray::s;

use super::data::{activations, hook_widths, targets, Targets};
use super::gpu::{GpuProbe, Rows};
use super::report::{score, Accuracy, Row};
use super::Hyper;
use crate::error::{Error, Result};
use crate::games::Games;
use crate::gpu::Gpu;
use crate::reference::backward::adamw::AdamW;
use crate::transformer::Model;

/// The tokens of an Othello model: 0 padding and the moves 1…60.
pub const OTHELLO_VOCAB: usize = 61;

/// The arguments of `shaderlens probe`.
#[derive(clap::Args, Debug, Clone)]
pub struct ProbeArgs {
    /// The model's config JSON (e.g. a `shaderlens train` checkpoint's `<step>.json`).
    #[arg(long)]
    pub model: PathBuf,
    /// The weights npz (float32, TransformerLens state-dict names).
    #[arg(long)]
    pub weights: PathBuf,
    /// A games file (SPEC's Games; its tokens are replayed and checked). Default: --games N
    /// random games generated from --seed.
    #[arg(long, value_name = "NPZ")]
    pub games_file: Option<PathBuf>,
    /// Random games to generate when no --games-file is given.
    #[arg(long, default_value_t = 1000)]
    pub games: usize,
    /// Seed of the generated games: pick one the model did not train on.
    #[arg(long, default_value_t = 20_161_204)]
    pub seed: u64,
    /// Fraction of the games held out for scoring (the last ones).
    #[arg(long, default_value_t = 0.2)]
    pub heldout: f64,
    /// Hooks to probe, by TransformerLens name; default blocks.0.hook_resid_pre (the embeddings)
    /// and every block's hook_resid_post.
    #[arg(long = "hook", num_args = 1..)]
    pub hooks: Vec<String>,
    /// Full-batch AdamW updates per probe.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// The probes' learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// The probes' AdamW weight decay.
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Seed of the probes' initial weights.
    #[arg(long, default_value_t = 0)]
    pub probe_seed: u64,
    /// Seed of the untrained baseline model's weights.
    #[arg(long, default_value_t = 0)]
    pub baseline_seed: u64,
    /// Skip the untrained baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Folder for probe.json, probe.npz, accuracy_by_layer.png and board.png (made if missing).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs the command and prints its table (exit 0), or its error (exit 2).
pub fn main(args: ProbeArgs) -> ExitCode {
    match Gpu::new().and_then(|gpu| run(&gpu, &args)) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("probe: {}", crate::scalar::cut(&e.to_string(), 2000));
            ExitCode::from(2)
        }
    }
}

/// The default hooks of a model of `n_layers`: the embeddings, then each block's output.
pub fn default_hooks(n_layers: usize) -> Vec<String> {
    let mut hooks = vec!["blocks.0.hook_resid_pre".to_string()];
    hooks.extend((0..n_layers).map(|l| format!("blocks.{l}.hook_resid_post")));
    hooks
}

/// The output files in `out`: (json, npz, accuracy PNG, board PNG).
fn outputs(out: &Path) -> [PathBuf; 4] {
    ["probe.json", "probe.npz", "accuracy_by_layer.png", "board.png"].map(|f| out.join(f))
}

/// Runs the command; returns the printed table and what was written.
pub fn run(gpu: &Gpu, args: &ProbeArgs) -> Result<String> {
    let hyper = Hyper { steps: args.steps, adamw: AdamW { lr: args.lr, weight_decay: args.weight_decay, ..Hyper::default().adamw }, seed: args.probe_seed };
    hyper.check()?;
    if !(args.heldout > 0.0 && args.heldout < 1.0) {
        return Err(Error::Input(format!("--heldout is {} but must lie strictly between 0 and 1", args.heldout)));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| Error::File { path: args.out.display().to_string(), message: format!("cannot create the output folder: {e}") })?;
    let files = outputs(&args.out);
    let mut inputs = vec![("--model", args.model.as_path()), ("--weights", args.weights.as_path())];
    if let Some(g) = &args.games_file {
        inputs.push(("--games-file", g.as_path()));
    }
    let named: Vec<(&str, &Path)> = files.iter().map(|p| ("--out", p.as_path())).collect();
    crate::io::check_outputs(&inputs, &named)?;

    let model = Model::from_files(gpu, &args.model, &args.weights)?;
    check_othello(&model)?;
    let hooks = if args.hooks.is_empty() { default_hooks(model.config().n_layers) } else { args.hooks.clone() };
    hook_widths(&model, &hooks)?;
    let games = load_games(args)?;
    let cut = ((games.len() as f64) * (1.0 - args.heldout)).round() as usize;
    if cut == 0 || cut >= games.len() {
        return Err(Error::Input(format!("{} games split at --heldout {} leave no game on one side; give more games", games.len(), args.heldout)));
    }
    let (train, held) = (subset(&games, 0, cut), subset(&games, cut, games.len()));
    let n_ctx = model.config().n_ctx;
    let (train_t, held_t) = (targets(&train, n_ctx)?, targets(&held, n_ctx)?);

    let mut models = vec![("trained".to_string(), model)];
    if !args.no_baseline {
        models.push(("baseline".to_string(), baseline(gpu, &args.model, models[0].1.config(), args.baseline_seed)?));
    }
    let mut results: Vec<Vec<(Accuracy, super::Weights, ndarray::Array2<i64>)>> = Vec::new();
    for (_, m) in &models {
        results.push(probe_model(gpu, m, &hooks, (&train, &train_t), (&held, &held_t), hyper)?);
    }
    let rows: Vec<Row> = hooks
        .iter()
        .enumerate()
        .map(|(h, hook)| Row { hook: hook.clone(), trained: results[0][h].0, baseline: results.get(1).map(|r| r[h].0) })
        .collect();
    write_all(args, &files, &hooks, &rows, &models, &results, &held_t, cut)
}

/// Refuses a model that cannot have been trained on Othello tokens.
fn check_othello(model: &Model) -> Result<()> {
    let c = model.config();
    if c.d_vocab != OTHELLO_VOCAB || c.d_vocab_out != OTHELLO_VOCAB {
        return Err(Error::Input(format!(
            "probe: the model's d_vocab is {} and d_vocab_out {}; an Othello model has {OTHELLO_VOCAB} tokens (0 padding, moves 1..60)",
            c.d_vocab, c.d_vocab_out
        )));
    }
    Ok(())
}

/// The games: a games file's tokens replayed (every move checked), or fresh random games.
fn load_games(args: &ProbeArgs) -> Result<Games> {
    let Some(path) = &args.games_file else {
        if args.games < 2 {
            return Err(Error::Input(format!("--games is {}; a train/held-out split needs at least 2 games", args.games)));
        }
        return crate::games::generate(args.seed, 0, args.games, 0);
    };
    let in_file = |e: Error| Error::Input(format!("games file {}: {e}", path.display()));
    let tokens = crate::fixture::Fixture::open(path)?.int_array("tokens").map_err(in_file)?;
    let tokens = tokens.into_dimensionality::<ndarray::Ix2>().map_err(|_| in_file(Error::Shape("tokens must be int64 [N, 60]".into())))?;
    crate::games::replay(tokens.view()).map_err(in_file)
}

/// Games `from..to` of `games`.
fn subset(games: &Games, from: usize, to: usize) -> Games {
    Games {
        tokens: games.tokens.slice(s![from..to, ..]).to_owned(),
        boards: games.boards.slice(s![from..to, .., ..]).to_owned(),
        player: games.player.slice(s![from..to, ..]).to_owned(),
        legal: games.legal.slice(s![from..to, .., ..]).to_owned(),
    }
}

/// An untrained model of `config`: TransformerLens's gpt2 init with the config file's
/// `initializer_range` (TransformerLens's default 0.8/√d_model when the file has none).
fn baseline(gpu: &Gpu, config_path: &Path, config: &crate::transformer::Config, seed: u64) -> Result<Model> {
    let json: serde_json::Value = serde_json::from_str(&crate::io::read_to_string(config_path)?).unwrap_or_default();
    let range = json.get("initializer_range").and_then(|v| v.as_f64()).filter(|r| r.is_finite() && *r > 0.0).unwrap_or(0.8 / (config.d_model as f64).sqrt());
    let weights = crate::train::init::init_weights(config, range, seed)?;
    let weights = weights.try_map(config, |_, a| Ok(a.mapv(|x| x as f32)))?;
    Model::load(gpu, config.clone(), &weights)
}

type Probed = (Accuracy, super::Weights, ndarray::Array2<i64>);

/// Trains one probe per hook on `model`'s activations and scores it on the held-out games.
fn probe_model(gpu: &Gpu, model: &Model, hooks: &[String], train: (&Games, &Targets), held: (&Games, &Targets), hyper: Hyper) -> Result<Vec<Probed>> {
    let train_x = activations(gpu, model, train.0, &train.1.positions, hooks)?;
    let held_x = activations(gpu, model, held.0, &held.1.positions, hooks)?;
    let mut out = Vec::new();
    for (tx, hx) in train_x.iter().zip(&held_x) {
        let rows = Rows::upload(gpu, tx.view(), train.1.classes.view())?;
        let probe = GpuProbe::fit(gpu, &rows, hyper)?;
        let train_loss = probe.last_loss(gpu, &rows)?;
        drop(rows);
        let held_rows = Rows::upload(gpu, hx.view(), held.1.classes.view())?;
        let predicted = probe.predict(gpu, &held_rows)?;
        let accuracy = Accuracy { train_loss, ..score(predicted.view(), held.1.classes.view(), held.1.flipped.view())? };
        out.push((accuracy, probe.weights(gpu)?, predicted));
    }
    Ok(out)
}

/// Writes the four files (staged, then renamed together) and returns the summary.
#[allow(clippy::too_many_arguments)]
fn write_all(args: &ProbeArgs, files: &[PathBuf; 4], hooks: &[String], rows: &[Row], models: &[(String, Model)], results: &[Vec<Probed>], held: &Targets, cut: usize) -> Result<String> {
    let probes: Vec<(String, String, super::Weights)> =
        models.iter().zip(results).flat_map(|((name, _), r)| hooks.iter().zip(r).map(move |(h, p)| (name.clone(), h.clone(), p.1.clone()))).collect();
    let best = (0..hooks.len()).max_by(|&a, &b| results[0][a].0.all.total_cmp(&results[0][b].0.all)).unwrap_or(0);
    // The board: the first held-out game, after its 20th move (or its last one if shorter).
    let row = held.positions.iter().take_while(|&&(g, t)| g == 0 && t <= 19).count().saturating_sub(1);
    let (g, t) = held.positions[row];
    let truth: Vec<i64> = held.classes.row(row).to_vec();
    let predicted: Vec<i64> = results[0][best].2.row(row).to_vec();
    let right = truth.iter().zip(&predicted).filter(|(a, b)| a == b).count();
    let title = format!("held-out game {}, after move {} - probe on {} ({right}/64 right)", cut + g, t, hooks[best]);
    let series: Vec<(String, Vec<f64>)> = models.iter().zip(results).map(|((name, _), r)| (format!("{name} model"), r.iter().map(|p| p.0.all).collect())).collect();
    let report = serde_json::json!({
        "model": args.model.display().to_string(),
        "weights": args.weights.display().to_string(),
        "games": args.games_file.as_ref().map_or_else(|| format!("{} random games, seed {}", args.games, args.seed), |p| p.display().to_string()),
        "train_games": cut,
        "heldout_games": held.positions.last().map_or(0, |p| p.0 + 1),
        "heldout_positions": held.positions.len(),
        "probe": { "steps": args.steps, "lr": args.lr, "weight_decay": args.weight_decay, "seed": args.probe_seed, "batch": "full" },
        "baseline_seed": (!args.no_baseline).then_some(args.baseline_seed),
        "hooks": rows,
    });
    let staged = [super::report::stage_json(&files[0], &report)?, super::report::stage_npz(&files[1], &probes, rows)?];
    super::figures::write_accuracy(&files[2], hooks, &series)?;
    super::figures::write_board(&files[3], &title, &truth, &predicted)?;
    for file in staged {
        file.commit()?;
    }
    let written: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    Ok(format!("{}wrote {}", super::report::table(rows), written.join(", ")))
}
