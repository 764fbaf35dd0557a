//! Othello next-move prediction for `shaderlens train` (`data.game = "othello"`): the data config,
//! the batches, the held-out games and the legal-move rate. The loop itself is
//! [`super::othello_run`].
//!
//! A game's tokens `[t_0 … t_59]` (SPEC's Games, padded with 0) give the model input `t_0 … t_58`
//! and the targets `t_1 … t_59`, with a padding target set to −1 (no loss, SPEC's Gradients): so
//! `d_vocab` = `d_vocab_out` = 61 and `n_ctx` = 59 follow from the data. Training games are fresh
//! random games of the data seed, game indices `i·B .. (i+1)·B` for update `i` (batch `B`), made
//! ahead on a background thread ([`GameStream`]); so a run resumed at update `k` sees exactly the
//! games the uninterrupted run saw after `k`. The held-out games are indices
//! [`HELD_OUT_FIRST`]`..` of the same seed, a range no run reaches. With `data.games = "file.npz"`
//! (SPEC's games file; only `tokens` is read, and replayed, so every move is checked) the last
//! `test_games` games are held out and update `i` takes the next `B` of the others, cyclically.

use std::path::{Path, PathBuf};

use ndarray::{s, Array2, ArrayView2, ArrayView3, ArrayViewD, Axis};
use toml::{Table, Value};

use super::config::{int, lookup, Batch, Data, Length, TrainConfig};
use crate::error::{Error, Result};
use crate::games::othello::{square_of, MAX_MOVES};
use crate::games::{generate, replay, GameStream, Games};

/// The sizes Othello data fixes in `[model]`: 61 tokens in and out (0 padding, 1…60 moves), 59
/// positions.
pub const DERIVED: [(&str, u64); 3] = [("d_vocab", 61), ("d_vocab_out", 61), ("n_ctx", MAX_MOVES as u64 - 1)];

/// The first game index of the held-out set of streamed games (training uses indices below it).
pub const HELD_OUT_FIRST: u64 = 1 << 62;

/// The default number of held-out games: enough for a rate to ±1 point, cheap on a CPU adapter.
pub const DEFAULT_TEST_GAMES: usize = 500;

/// Games evaluated per forward pass (bounds the logits held at once).
const EVAL_CHUNK: usize = 256;

/// The `[data]` of an Othello run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OthelloData {
    /// The random games' seed (training and held-out games).
    pub seed: u64,
    /// How many held-out games the evaluation uses.
    pub test_games: usize,
    /// A games file to train on instead of fresh random games.
    pub games: Option<PathBuf>,
}

impl OthelloData {
    /// Reads `[data]` with `game = "othello"` (`seed`, `test_games`, `games`), refusing modular keys
    /// and a run length or batch that streamed games cannot have.
    pub fn from_table(t: &Table) -> Result<Self> {
        for key in ["data.p", "data.op", "data.train_fraction"] {
            if lookup(t, key).is_some() {
                return Err(Error::Input(format!("config key `{key}` is for modular data, not data.game = \"othello\"")));
            }
        }
        let games = lookup(t, "data.games").and_then(Value::as_str).map(PathBuf::from);
        match lookup(t, "batch") {
            None | Some(Value::String(_)) => {
                return Err(Error::Input("config key `batch` must be a number of games per update for othello data".into()))
            }
            Some(_) => {}
        }
        if games.is_none() && lookup(t, "epochs").is_some() {
            return Err(Error::Input("config key `epochs` needs a games file (`data.games`): fresh random games have no epochs; give `steps`".into()));
        }
        let test_games = lookup(t, "data.test_games").map_or(DEFAULT_TEST_GAMES, |v| int(v) as usize);
        if test_games == 0 {
            return Err(Error::Input("config key `data.test_games` is 0 but the legal-move rate needs at least 1 held-out game".into()));
        }
        let seed = lookup(t, "data.seed").or_else(|| lookup(t, "seed")).map_or(0, int);
        Ok(OthelloData { seed, test_games, games })
    }

    /// `[data]` as written into a run's `config.toml`.
    pub fn to_table(&self) -> Table {
        let mut data = Table::new();
        data.insert("game".into(), Value::String("othello".into()));
        data.insert("seed".into(), Value::Integer(self.seed as i64));
        data.insert("test_games".into(), Value::Integer(self.test_games as i64));
        if let Some(path) = &self.games {
            data.insert("games".into(), Value::String(path.display().to_string()));
        }
        data
    }
}

/// Model input and targets of games `tokens` \[N, 60\]: `tokens[:, :59]` and `tokens[:, 1:]` with
/// padding targets −1.
pub fn next_move(tokens: ArrayView2<'_, i64>) -> Result<(Array2<i64>, Array2<i64>)> {
    if tokens.ncols() != MAX_MOVES {
        return Err(Error::Shape(format!("othello tokens have shape {:?}; expected [N, {MAX_MOVES}]", tokens.shape())));
    }
    let input = tokens.slice(s![.., ..MAX_MOVES - 1]).to_owned();
    let targets = tokens.slice(s![.., 1..]).mapv(|t| if t == 0 { -1 } else { t });
    Ok((input, targets))
}

/// The legal-move count of `logits` \[B, 59, V\] on games `tokens` \[B, 60\] with `legal`
/// \[B, 60, 64\]: `(hits, positions)`, where the positions are those before the game's end
/// (position t has a next move, `tokens[b, t + 1] != 0`) and a hit is a position whose top-1 token
/// (the first largest logit) is a move in `legal[b, t]`, the legal set after move t.
pub fn legal_move_counts(logits: ArrayViewD<'_, f64>, tokens: ArrayView2<'_, i64>, legal: ArrayView3<'_, bool>) -> Result<(usize, usize)> {
    let (b, positions) = (tokens.nrows(), MAX_MOVES - 1);
    if logits.ndim() != 3 || logits.shape()[..2] != [b, positions] || tokens.ncols() != MAX_MOVES || legal.shape() != [b, MAX_MOVES, 64] {
        return Err(Error::Shape(format!(
            "legal-move rate: logits {:?}, tokens {:?} and legal {:?} must be [B, 59, V], [B, 60] and [B, 60, 64]",
            logits.shape(),
            tokens.shape(),
            legal.shape()
        )));
    }
    let (mut hits, mut count) = (0, 0);
    for g in 0..b {
        for t in 0..positions {
            if tokens[[g, t + 1]] == 0 {
                break;
            }
            count += 1;
            let row = logits.slice(s![g, t, ..]);
            let best = row.iter().enumerate().fold((0, f64::NEG_INFINITY), |m, (i, &x)| if x > m.1 { (i, x) } else { m });
            if let Ok(square) = square_of(best.0 as i64) {
                hits += usize::from(legal[[g, t, square]]);
            }
        }
    }
    Ok((hits, count))
}

/// The held-out games' loss, accuracy (top-1 = the move played) and legal-move rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GameEvaluation {
    /// Loss and accuracy over the positions with a next move.
    pub eval: super::Evaluation,
    /// Fraction of those positions whose top-1 prediction is legal.
    pub legal_move_rate: f64,
}

/// Evaluates `backend` on `games`, [`EVAL_CHUNK`] games per forward pass (the logits are read back;
/// for 500 held-out games that is 7 MB).
pub fn evaluate_games(backend: &mut dyn super::Backend, games: &Games) -> Result<GameEvaluation> {
    let (mut loss, mut right, mut count, mut hits) = (0.0, 0.0, 0usize, 0usize);
    for start in (0..games.len()).step_by(EVAL_CHUNK) {
        let end = (start + EVAL_CHUNK).min(games.len());
        let tokens = games.tokens.slice(s![start..end, ..]);
        let (input, targets) = next_move(tokens)?;
        let n = targets.iter().filter(|&&t| t >= 0).count();
        if n == 0 {
            continue;
        }
        let logits = backend.logits(input.view())?;
        let e = super::evaluate_logits(logits.view(), targets.view())?;
        let (h, positions) = legal_move_counts(logits.view(), tokens, games.legal.slice(s![start..end, .., ..]))?;
        debug_assert_eq!(positions, n);
        (loss, right, count, hits) = (loss + e.loss * n as f64, right + e.accuracy * n as f64, count + n, hits + h);
    }
    if count == 0 {
        return Err(Error::Input("othello evaluation: no game has a move after its first".into()));
    }
    let eval = super::Evaluation { loss: loss / count as f64, accuracy: right / count as f64 };
    Ok(GameEvaluation { eval, legal_move_rate: hits as f64 / count as f64 })
}

/// Where an Othello run's training games come from.
pub enum Source {
    /// Fresh random games, made ahead on a background thread.
    Stream(Box<GameStream>),
    /// A games file's training games, taken `batch` at a time, cyclically.
    File { tokens: Array2<i64>, batch: usize },
}

/// An Othello run's data: the training source and the held-out games.
pub struct OthelloSet {
    /// The training games.
    pub source: Source,
    /// The held-out games.
    pub test: Games,
    /// Training games in a games file (`None`: an endless stream).
    pub n_train: Option<usize>,
}

impl OthelloSet {
    /// The data of `data` for updates of `batch` games, the first being update `first`.
    pub fn open(data: &OthelloData, batch: usize, first: u64) -> Result<Self> {
        match &data.games {
            None => {
                let start = first.checked_mul(batch as u64).filter(|&s| s < HELD_OUT_FIRST);
                let start = start.ok_or_else(|| Error::Input(format!("othello: update {first} of {batch} games runs into the held-out games")))?;
                let test = generate(data.seed, HELD_OUT_FIRST, data.test_games, 0)?;
                let stream = GameStream::new(data.seed, start, batch, 1, 4)?;
                Ok(OthelloSet { source: Source::Stream(Box::new(stream)), test, n_train: None })
            }
            Some(path) => {
                let tokens = read_tokens(path)?;
                let n = tokens.nrows();
                if n <= data.test_games {
                    return Err(Error::File {
                        path: path.display().to_string(),
                        message: format!("it holds {n} games, but data.test_games = {} leaves none for training", data.test_games),
                    });
                }
                let split = n - data.test_games;
                let test = replay(tokens.slice(s![split.., ..]))?;
                let tokens = tokens.slice(s![..split, ..]).to_owned();
                Ok(OthelloSet { source: Source::File { tokens, batch }, test, n_train: Some(split) })
            }
        }
    }

    /// The input and targets of update `step` (streamed: the next batch, which is `step`'s when
    /// the updates are taken in order from the one the set was opened at).
    pub fn batch(&mut self, step: u64) -> Result<(Array2<i64>, Array2<i64>)> {
        match &mut self.source {
            Source::Stream(stream) => next_move(stream.next_batch()?.tokens.view()),
            Source::File { tokens, batch } => {
                let n = tokens.nrows() as u64;
                let first = (step % n) * (*batch as u64) % n;
                let rows: Vec<usize> = (0..*batch as u64).map(|i| ((first + i) % n) as usize).collect();
                next_move(tokens.select(Axis(0), &rows).view())
            }
        }
    }
}

/// Reads a games file's `tokens` \[N, 60\] and replays them (every move must be legal).
pub fn read_tokens(path: &Path) -> Result<Array2<i64>> {
    let file_error = |message: String| Error::File { path: path.display().to_string(), message };
    let fixture = crate::fixture::Fixture::open(path)?;
    let tokens = fixture.int_array("tokens").map_err(|e| file_error(e.to_string()))?;
    let tokens = tokens.into_dimensionality::<ndarray::Ix2>().map_err(|_| file_error("`tokens` must be [N, 60]".into()))?;
    replay(tokens.view()).map_err(|e| file_error(e.to_string()))?;
    Ok(tokens)
}

/// The number of updates of `config`'s run (reads a games file to count its games).
pub fn total_steps(config: &TrainConfig) -> Result<u64> {
    match (&config.data, config.length) {
        (Data::Modular { p, op, train_fraction, seed }, _) => {
            let n = crate::games::modular::ModularData::new(*p, *op, *train_fraction, *seed)?.train_tokens.nrows();
            Ok(config.total_steps(n))
        }
        (Data::Othello(_), Length::Steps(n)) => Ok(n),
        (Data::Othello(OthelloData { games: Some(path), test_games, .. }), Length::Epochs(_)) => {
            let n = read_tokens(path)?.nrows().saturating_sub(*test_games);
            Ok(config.total_steps(n))
        }
        (Data::Othello(_), Length::Epochs(_)) => Err(Error::Input("othello runs of fresh games are counted in steps".into())),
    }
}

/// Games per update of an Othello run (a number, as [`OthelloData::from_table`] checked).
pub fn batch_size(config: &TrainConfig) -> Result<usize> {
    match config.batch {
        Batch::Size(b) => Ok(b),
        Batch::Full => Err(Error::Input("othello runs need a number of games per update (`batch`)".into())),
    }
}
