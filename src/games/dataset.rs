//! Random Othello games as SPEC's games-file arrays, generated on many threads.
//!
//! Game `g` of a data set with seed `s` draws its moves from its own PCG stream derived from
//! `(s, g)` alone, so a data set is the same whatever the number of threads and whichever batch a
//! game falls in: games `0..N` of seed `s` are the first `N` games of every longer set with that
//! seed. Each move is chosen uniformly among the legal moves (SPEC).

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis};
use rand::RngExt;
use rand_pcg::Pcg64;

use super::othello::{write_mask, Board, Color, MAX_MOVES, TOKEN_OF_SQUARE};
use crate::{Error, Result};

/// Squares on the board, the last axis of `boards` and `legal`.
pub const SQUARES: usize = 64;

/// Bytes one game takes in memory (and in an uncompressed games file): tokens, boards, player,
/// legal. Used to refuse data sets that cannot fit.
pub const BYTES_PER_GAME: usize = MAX_MOVES * (8 + SQUARES + 1 + SQUARES);

/// A batch of games in SPEC's games-file layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Games {
    /// int64 [N, 60]: the moves as tokens 1…60, padded with 0 after the end.
    pub tokens: Array2<i64>,
    /// int8 [N, 60, 64]: the board after move t (1 black, −1 white, 0 empty; all 0 after the end).
    pub boards: Array3<i8>,
    /// int8 [N, 60]: the colour that made move t (0 after the end).
    pub player: Array2<i8>,
    /// bool [N, 60, 64]: the legal moves of whoever moves next after move t (none after the end).
    pub legal: Array3<bool>,
}

impl Games {
    /// The number of games.
    pub fn len(&self) -> usize {
        self.tokens.nrows()
    }

    /// True when the batch holds no game.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The RNG of game `index` of the data set with `seed`: a PCG64 whose stream (its increment) is
/// unique to the pair and whose state is a hash of it, so no two games share a sequence.
pub fn game_rng(seed: u64, index: u64) -> Pcg64 {
    let a = splitmix64(seed);
    let b = splitmix64(a ^ splitmix64(index));
    Pcg64::new(((a as u128) << 64) | b as u128, ((seed as u128) << 64) | index as u128)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce5_e9b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One game's rows of the four arrays, zeroed on entry.
struct Rows<'a> {
    tokens: &'a mut [i64],
    boards: &'a mut [i8],
    player: &'a mut [i8],
    legal: &'a mut [bool],
}

impl Rows<'_> {
    /// Records move `t`: `square` played by `mover`, leaving `board` where `next` is legal.
    #[inline]
    fn record(&mut self, t: usize, square: usize, mover: Color, board: &Board, next: u64) {
        self.tokens[t] = TOKEN_OF_SQUARE[square] as i64;
        self.player[t] = mover.value();
        board.write_cells(&mut self.boards[t * SQUARES..(t + 1) * SQUARES]);
        if next != 0 {
            write_mask(next, &mut self.legal[t * SQUARES..(t + 1) * SQUARES]);
        }
    }
}

/// Plays one random game into `rows` (zeroed), choosing uniformly among the legal moves.
fn play_random(rng: &mut Pcg64, rows: &mut Rows) {
    let mut board = Board::start();
    let mut legal = board.legal();
    let mut t = 0;
    while let Some(mover) = board.to_move {
        let mut moves = legal;
        let pick = rng.random_range(0..moves.count_ones());
        for _ in 0..pick {
            moves &= moves - 1;
        }
        let square = moves.trailing_zeros() as usize;
        legal = board.play_unchecked(square);
        rows.record(t, square, mover, &board, legal);
        t += 1;
    }
}

/// The four arrays of `n` games as flat vectors, before they become ndarrays.
struct Buffers {
    tokens: Vec<i64>,
    boards: Vec<i8>,
    player: Vec<i8>,
    legal: Vec<bool>,
}

impl Buffers {
    /// Zeroed arrays for `n` games, or an error when their size overflows.
    fn zeroed(n: usize) -> Result<Buffers> {
        n.checked_mul(BYTES_PER_GAME)
            .ok_or_else(|| Error::Input(format!("{n} othello games need more bytes than a usize can count")))?;
        Ok(Buffers {
            tokens: vec![0; n * MAX_MOVES],
            boards: vec![0; n * MAX_MOVES * SQUARES],
            player: vec![0; n * MAX_MOVES],
            legal: vec![false; n * MAX_MOVES * SQUARES],
        })
    }

    fn into_games(self) -> Games {
        let n = self.tokens.len() / MAX_MOVES;
        // The vectors were sized for exactly these shapes by `zeroed`.
        let shape_err = "games arrays sized by Buffers::zeroed";
        Games {
            tokens: Array2::from_shape_vec((n, MAX_MOVES), self.tokens).expect(shape_err),
            boards: Array3::from_shape_vec((n, MAX_MOVES, SQUARES), self.boards).expect(shape_err),
            player: Array2::from_shape_vec((n, MAX_MOVES), self.player).expect(shape_err),
            legal: Array3::from_shape_vec((n, MAX_MOVES, SQUARES), self.legal).expect(shape_err),
        }
    }
}

impl<'a> Rows<'a> {
    /// Game `g`'s rows within slices holding whole games.
    fn of(tokens: &'a mut [i64], boards: &'a mut [i8], player: &'a mut [i8], legal: &'a mut [bool], g: usize) -> Rows<'a> {
        let (one, cells) = (g * MAX_MOVES..(g + 1) * MAX_MOVES, g * MAX_MOVES * SQUARES..(g + 1) * MAX_MOVES * SQUARES);
        Rows { tokens: &mut tokens[one.clone()], boards: &mut boards[cells.clone()], player: &mut player[one], legal: &mut legal[cells] }
    }
}

/// The most threads a caller may ask for: more is a typo, not a machine.
pub const MAX_THREADS: usize = 1024;

/// `threads` checked against [`MAX_THREADS`], 0 meaning one per core.
pub(crate) fn thread_count(threads: usize, what: &str) -> Result<usize> {
    match threads {
        0 => Ok(default_threads()),
        t if t > MAX_THREADS => Err(Error::Input(format!("{what} {t} is more than {MAX_THREADS}; 0 means one per core"))),
        t => Ok(t),
    }
}

/// Threads to use when the caller says 0: the machine's parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Games `first .. first + n` of the random data set with `seed`, on `threads` threads (0: one per
/// core). The result does not depend on `threads`. `progress` is called with the number of games
/// finished so far, now and then, from the worker threads.
pub fn generate_with_progress(
    seed: u64,
    first: u64,
    n: usize,
    threads: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Games> {
    first
        .checked_add(n as u64)
        .ok_or_else(|| Error::Input(format!("othello games {first}..{first}+{n} run past the last game index (2^64)")))?;
    let mut buffers = Buffers::zeroed(n)?;
    let threads = thread_count(threads, "threads")?.clamp(1, n.max(1));
    // Small slices keep the threads busy to the end and the progress reports frequent.
    let per_chunk = n.div_ceil(threads * 8).clamp(1, 4096);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let chunks = std::sync::Mutex::new(
        buffers
            .tokens
            .chunks_mut(per_chunk * MAX_MOVES)
            .zip(buffers.boards.chunks_mut(per_chunk * MAX_MOVES * SQUARES))
            .zip(buffers.player.chunks_mut(per_chunk * MAX_MOVES))
            .zip(buffers.legal.chunks_mut(per_chunk * MAX_MOVES * SQUARES))
            .enumerate(),
    );
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let chunk = chunks.lock().map(|mut it| it.next()).unwrap_or(None);
                let Some((c, (((tok, brd), ply), lgl))) = chunk else { break };
                let base = first + (c * per_chunk) as u64;
                let games = tok.len() / MAX_MOVES;
                for g in 0..games {
                    let mut rows = Rows::of(tok, brd, ply, lgl, g);
                    play_random(&mut game_rng(seed, base + g as u64), &mut rows);
                }
                let finished = done.fetch_add(games, std::sync::atomic::Ordering::Relaxed) + games;
                progress(finished);
            });
        }
    });
    Ok(buffers.into_games())
}

/// Games `first .. first + n` of the random data set with `seed` on `threads` threads (0: one per
/// core): the batch API the trainer and the CLI share.
pub fn generate(seed: u64, first: u64, n: usize, threads: usize) -> Result<Games> {
    generate_with_progress(seed, first, n, threads, &|_| {})
}

/// Replays `tokens` [N, 60] (moves, then 0 padding) through the engine and returns the whole games
/// file they imply, or an error naming the first game and move that is not legal. Checks a games
/// file written by anyone else.
pub fn replay(tokens: ArrayView2<i64>) -> Result<Games> {
    if tokens.ncols() != MAX_MOVES {
        return Err(Error::Shape(format!("othello tokens have shape {:?}; expected [N, {MAX_MOVES}]", tokens.shape())));
    }
    let n = tokens.nrows();
    let mut buffers = Buffers::zeroed(n)?;
    for (g, row) in tokens.axis_iter(Axis(0)).enumerate() {
        let Buffers { tokens: tok, boards: brd, player: ply, legal: lgl } = &mut buffers;
        let mut rows = Rows::of(tok, brd, ply, lgl, g);
        let mut board = Board::start();
        for (t, &token) in row.iter().enumerate() {
            let Some(mover) = board.to_move else {
                if token != 0 {
                    return Err(Error::Input(format!("game {g}: token {token} at move {t} comes after the end of the game (expected padding 0)")));
                }
                continue;
            };
            if token == 0 {
                return Err(Error::Input(format!("game {g}: padding at move {t} but the game is not over")));
            }
            let square = super::othello::square_of(token).map_err(|e| Error::Input(format!("game {g}, move {t}: {e}")))?;
            board.play(square).map_err(|e| Error::Input(format!("game {g}, move {t}: {e}")))?;
            rows.record(t, square, mover, &board, board.legal());
        }
    }
    Ok(buffers.into_games())
}

/// Class of a square relative to the player to move, for board probes.
pub const EMPTY: i8 = 0;
/// The square holds a stone of the player to move.
pub const MINE: i8 = 1;
/// The square holds a stone of the player who just moved (the opponent of the one to move).
pub const THEIRS: i8 = 2;

/// The colour to move after each move t (int8 [N, 60], 1 black, −1 white): `player[t + 1]`, which
/// accounts for passes. After a game's last move, where nobody moves, it is the opponent of the
/// last mover (as if the game went on); after the end (padding) 0.
pub fn to_move(player: ArrayView2<i8>) -> Array2<i8> {
    let mut out = Array2::zeros(player.raw_dim());
    for (mut o, p) in out.axis_iter_mut(Axis(0)).zip(player.axis_iter(Axis(0))) {
        for t in 0..p.len() {
            o[t] = match (p[t], p.get(t + 1).copied().unwrap_or(0)) {
                (0, _) => 0,
                (_, next) if next != 0 => next,
                (last, _) => -last,
            };
        }
    }
    out
}

/// The boards relative to the player to move after each move (int8 [N, 60, 64]): [`MINE`],
/// [`THEIRS`] or [`EMPTY`], the "mine / theirs / empty" form that Othello-GPT's linear probes read.
/// Rows after the end are all [`EMPTY`]. `boards` and `player` are as in a games file.
pub fn relative_boards(boards: ArrayView3<i8>, player: ArrayView2<i8>) -> Result<Array3<i8>> {
    if boards.shape()[..2] != *player.shape() || boards.shape()[2] != SQUARES {
        return Err(Error::Shape(format!(
            "othello boards {:?} and player {:?} disagree; expected [N, T, 64] and [N, T]",
            boards.shape(),
            player.shape()
        )));
    }
    let mover = to_move(player);
    let mut out = Array3::zeros(boards.raw_dim());
    ndarray::Zip::from(out.lanes_mut(Axis(2))).and(boards.lanes(Axis(2))).and(&mover).for_each(|mut o, b, &m| {
        for (o, &cell) in o.iter_mut().zip(b.iter()) {
            *o = if cell == 0 || m == 0 {
                EMPTY
            } else if cell == m {
                MINE
            } else {
                THEIRS
            };
        }
    });
    Ok(out)
}
