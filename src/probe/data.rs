//! What a probe reads and predicts: for every position t of every game with a move at t (and t
//! inside the model's context), the activation of each hook at t and the board after move t
//! relative to the player to move next; plus which squares are occupied and which move t flipped
//! (the harder cells: they changed without being played on).

use ndarray::{Array2, Axis};

use super::SQUARES;
use crate::error::{Error, Result};
use crate::games::othello::MAX_MOVES;
use crate::games::{relative_boards, Games};
use crate::gpu::Gpu;
use crate::transformer::{Model, Names, Options};

/// Games run through the model at once.
pub const GAMES_PER_RUN: usize = 64;

/// The positions of a set of games and their targets.
#[derive(Clone, Debug)]
pub struct Targets {
    /// `(game, t)` of every row, in order.
    pub positions: Vec<(usize, usize)>,
    /// \[rows, 64\]: 0 empty, 1 mine, 2 theirs.
    pub classes: Array2<i64>,
    /// \[rows, 64\]: squares whose colour move t flipped.
    pub flipped: Array2<bool>,
}

/// The positions the model sees: the model reads tokens 0..min(n_ctx, 59) (the last move is
/// never an input), and a position counts while the game has a move there.
pub fn input_len(n_ctx: usize) -> usize {
    n_ctx.min(MAX_MOVES - 1)
}

/// The targets of `games` for a model with context `n_ctx`.
pub fn targets(games: &Games, n_ctx: usize) -> Result<Targets> {
    let relative = relative_boards(games.boards.view(), games.player.view())?;
    let len = input_len(n_ctx);
    let positions: Vec<(usize, usize)> = (0..games.len()).flat_map(|g| (0..len).map(move |t| (g, t))).filter(|&(g, t)| games.player[[g, t]] != 0).collect();
    if positions.is_empty() {
        return Err(Error::Input("probe: the games hold no position to probe".into()));
    }
    let start = crate::games::othello::Board::start();
    let mut start_cells = [0i8; SQUARES];
    start.write_cells(&mut start_cells);
    let mut classes = Array2::zeros((positions.len(), SQUARES));
    let mut flipped = Array2::from_elem((positions.len(), SQUARES), false);
    for (r, &(g, t)) in positions.iter().enumerate() {
        for s in 0..SQUARES {
            classes[[r, s]] = i64::from(relative[[g, t, s]]);
            let before = if t == 0 { start_cells[s] } else { games.boards[[g, t - 1, s]] };
            flipped[[r, s]] = before != 0 && before != games.boards[[g, t, s]];
        }
    }
    Ok(Targets { positions, classes, flipped })
}

/// Checks that every hook is a `[batch, position, d]` activation of `model` and returns `d` of each.
pub fn hook_widths(model: &Model, hooks: &[String]) -> Result<Vec<usize>> {
    let config = model.config();
    Names::only(hooks).check(config)?;
    let all = crate::model::hooks::available(config, 1, 1);
    hooks
        .iter()
        .map(|name| {
            let hook = all.iter().find(|h| &h.name == name).ok_or_else(|| Error::Input(format!("probe: the model has no hook {name}")))?;
            match hook.shape.as_slice() {
                [1, 1, d] => Ok(*d),
                shape => Err(Error::Input(format!("probe: hook {name} has shape {shape:?} for one position; a probe reads [batch, position, d] activations such as blocks.0.hook_resid_post"))),
            }
        })
        .collect()
}

/// The activations \[rows, d\] of each hook at `positions` (rows in that order), from forward runs
/// over [`GAMES_PER_RUN`] games at a time.
pub fn activations(gpu: &Gpu, model: &Model, games: &Games, positions: &[(usize, usize)], hooks: &[String]) -> Result<Vec<Array2<f32>>> {
    let widths = hook_widths(model, hooks)?;
    let len = input_len(model.config().n_ctx);
    let mut out: Vec<Array2<f32>> = widths.iter().map(|&d| Array2::zeros((positions.len(), d))).collect();
    let options = Options { names: Names::only(hooks), interventions: &[] };
    let mut row = 0;
    for first in (0..games.len()).step_by(GAMES_PER_RUN) {
        let last = (first + GAMES_PER_RUN).min(games.len());
        let tokens = games.tokens.slice(ndarray::s![first..last, ..len]).to_owned().into_dyn();
        let run = model.run(gpu, tokens.view(), &options)?;
        let end = row + positions[row..].iter().take_while(|&&(g, _)| g < last).count();
        for (h, name) in hooks.iter().enumerate() {
            let act = run.cache.get(name).ok_or_else(|| Error::Gpu(format!("probe: {name} was not cached")))?;
            for (r, &(g, t)) in positions[row..end].iter().enumerate() {
                out[h].row_mut(row + r).assign(&act.index_axis(Axis(0), g - first).index_axis(Axis(0), t));
            }
        }
        row = end;
    }
    Ok(out)
}
