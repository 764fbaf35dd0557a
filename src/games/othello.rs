//! Othello on bitboards, exactly as SPEC's **Games → Othello** defines it.
//!
//! Square `i` (0…63) is row `i / 8`, column `i % 8` and bit `i` of a `u64`. A move generator shifts
//! the mover's stones through runs of the opponent's in each of the 8 directions (masking off the
//! column that a horizontal or diagonal shift wraps into, so a line never continues from one edge
//! to the other); a move's flips are the runs from the placed stone that end in a mover's stone,
//! found the same way, without branches. Tokens 1…60 name the 60 squares other
//! than the four centre squares, in increasing order; 0 is padding.

use crate::{Error, Result};

/// The four centre squares, occupied at the start and therefore never moves.
pub const CENTRE: [usize; 4] = [27, 28, 35, 36];
/// Moves in a full game: one per non-centre square, and the length of every games-file row.
pub const MAX_MOVES: usize = 60;

const NOT_COL0: u64 = 0xfefe_fefe_fefe_fefe;
const NOT_COL7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// One step in a direction: a positive `BY` moves towards higher squares; `MASK` clears the
/// column that a horizontal or diagonal step wraps into. Constants, so each direction compiles to
/// immediate shifts and the 8 directions unroll.
#[inline(always)]
fn step<const BY: i32, const MASK: u64>(bits: u64) -> u64 {
    (if BY > 0 { bits << BY } else { bits >> -BY }) & MASK
}

/// The opponent stones adjacent to `from` in one direction and continuing as a run (at most 6
/// long on an 8-wide board), computed without branches.
#[inline(always)]
fn run<const BY: i32, const MASK: u64>(from: u64, theirs: u64) -> u64 {
    let mut run = step::<BY, MASK>(from) & theirs;
    for _ in 0..5 {
        run |= step::<BY, MASK>(run) & theirs;
    }
    run
}

#[inline(always)]
fn moves_in<const BY: i32, const MASK: u64>(mine: u64, theirs: u64, empty: u64) -> u64 {
    step::<BY, MASK>(run::<BY, MASK>(mine, theirs)) & empty
}

#[inline(always)]
fn flips_in<const BY: i32, const MASK: u64>(placed: u64, mine: u64, theirs: u64) -> u64 {
    let line = run::<BY, MASK>(placed, theirs);
    // The run flips only if the square after its end holds one of the mover's stones: stepping the
    // run lands on its own squares and on that one (none if the run is empty).
    let closed = (step::<BY, MASK>(line) & mine != 0) as u64;
    line & closed.wrapping_neg()
}

/// Applies `$f::<BY, MASK>` in all 8 directions (east, west, south, north, the diagonals) and ORs
/// the results.
macro_rules! all_directions {
    ($f:ident($($arg:expr),*)) => {
        $f::<1, NOT_COL0>($($arg),*)
            | $f::<-1, NOT_COL7>($($arg),*)
            | $f::<8, { u64::MAX }>($($arg),*)
            | $f::<-8, { u64::MAX }>($($arg),*)
            | $f::<9, NOT_COL0>($($arg),*)
            | $f::<7, NOT_COL7>($($arg),*)
            | $f::<-7, NOT_COL0>($($arg),*)
            | $f::<-9, NOT_COL7>($($arg),*)
    };
}

/// A side: black moves first and is stored as 1 in games files, white as −1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Color {
    /// Moves first; 1 in `boards` and `player`.
    Black,
    /// −1 in `boards` and `player`.
    White,
}

impl Color {
    /// The other side.
    pub fn other(self) -> Color {
        match self {
            Color::Black => Color::White,
            Color::White => Color::Black,
        }
    }

    /// The value SPEC's games file stores for this colour (1 black, −1 white).
    pub fn value(self) -> i8 {
        match self {
            Color::Black => 1,
            Color::White => -1,
        }
    }
}

/// A position: both sides' stones and who is to move. The game is over when `to_move` is `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Board {
    /// Black's stones, one bit per square.
    pub black: u64,
    /// White's stones, one bit per square.
    pub white: u64,
    /// Who moves next; `None` once neither side has a legal move.
    pub to_move: Option<Color>,
}

impl Default for Board {
    fn default() -> Self {
        Board::start()
    }
}

/// The empty squares that end a run of `theirs` stones starting next to one of `mine`: the legal
/// moves of the side owning `mine`.
#[inline]
pub fn legal_moves(mine: u64, theirs: u64) -> u64 {
    let empty = !(mine | theirs);
    all_directions!(moves_in(mine, theirs, empty))
}

/// The opponent stones that a stone placed on `square` by the owner of `mine` flips.
#[inline]
pub fn flips(mine: u64, theirs: u64, square: usize) -> u64 {
    let placed = 1u64 << (square & 63);
    all_directions!(flips_in(placed, mine, theirs))
}

impl Board {
    /// SPEC's start: white on 27 and 36, black on 28 and 35, black to move.
    pub fn start() -> Board {
        Board { black: (1 << 28) | (1 << 35), white: (1 << 27) | (1 << 36), to_move: Some(Color::Black) }
    }

    /// A position from its stones and the side to move. The side is taken as given (it may have no
    /// move, as in a hand-made position); use [`Board::settle`] to apply passes.
    pub fn from_bits(black: u64, white: u64, to_move: Option<Color>) -> Result<Board> {
        if black & white != 0 {
            return Err(Error::Input(format!(
                "othello position has squares {:?} held by both sides",
                squares(black & white)
            )));
        }
        Ok(Board { black, white, to_move })
    }

    /// The stones of `color`.
    pub fn stones(&self, color: Color) -> u64 {
        match color {
            Color::Black => self.black,
            Color::White => self.white,
        }
    }

    /// The legal moves of the side to move (none once the game is over).
    pub fn legal(&self) -> u64 {
        match self.to_move {
            Some(c) => legal_moves(self.stones(c), self.stones(c.other())),
            None => 0,
        }
    }

    /// Applies passes: if the side to move has no move, the other moves; if neither has, the game
    /// is over (`to_move` becomes `None`).
    pub fn settle(&mut self) {
        let Some(c) = self.to_move else { return };
        let (mine, theirs) = (self.stones(c), self.stones(c.other()));
        if legal_moves(mine, theirs) != 0 {
            return;
        }
        self.to_move = if legal_moves(theirs, mine) != 0 { Some(c.other()) } else { None };
    }

    /// Plays `square` for the side to move without checking it: the caller took it from
    /// [`Board::legal`]. Flips, hands the move over, applies passes, and returns the legal moves of
    /// whoever moves next (0 at the end), which the caller would otherwise compute again.
    #[inline]
    pub fn play_unchecked(&mut self, square: usize) -> u64 {
        let Some(c) = self.to_move else { return 0 };
        let (mut mine, mut theirs) = (self.stones(c), self.stones(c.other()));
        let f = flips(mine, theirs, square);
        mine |= f | (1u64 << square);
        theirs &= !f;
        match c {
            Color::Black => (self.black, self.white) = (mine, theirs),
            Color::White => (self.white, self.black) = (mine, theirs),
        }
        // Whoever moves next: the opponent, or the mover again if the opponent must pass.
        let reply = legal_moves(theirs, mine);
        if reply != 0 {
            self.to_move = Some(c.other());
            return reply;
        }
        let again = legal_moves(mine, theirs);
        self.to_move = if again != 0 { Some(c) } else { None };
        again
    }

    /// Plays `square` for the side to move, or says why it cannot be played.
    pub fn play(&mut self, square: usize) -> Result<()> {
        if square >= 64 {
            return Err(Error::Input(format!("othello square {square} is not on the board (0..64)")));
        }
        if self.to_move.is_none() {
            return Err(Error::Input(format!("othello move {} after the end of the game", label(square))));
        }
        if self.legal() & (1u64 << square) == 0 {
            return Err(Error::Input(format!(
                "othello move {} is not legal here (legal: {:?})",
                label(square),
                squares(self.legal()).into_iter().map(label).collect::<Vec<_>>()
            )));
        }
        self.play_unchecked(square);
        Ok(())
    }

    /// The board as SPEC's games file stores it: 1 black, −1 white, 0 empty, one entry per square.
    #[inline]
    pub fn write_cells(&self, out: &mut [i8]) {
        for (byte, cells) in out.chunks_exact_mut(8).enumerate().take(8) {
            let b = BLACK_BYTES[((self.black >> (8 * byte)) & 0xff) as usize];
            let w = WHITE_BYTES[((self.white >> (8 * byte)) & 0xff) as usize];
            for (cell, v) in cells.iter_mut().zip((b | w).to_le_bytes()) {
                *cell = v as i8;
            }
        }
    }
}

/// Writes `bits` as 64 bools, eight at a time (the `legal` rows of a games file).
#[inline]
pub(crate) fn write_mask(bits: u64, out: &mut [bool]) {
    for (byte, cells) in out.chunks_exact_mut(8).enumerate().take(8) {
        let spread = BLACK_BYTES[((bits >> (8 * byte)) & 0xff) as usize].to_le_bytes();
        for (cell, v) in cells.iter_mut().zip(spread) {
            *cell = v != 0;
        }
    }
}

/// Byte `k` of entry `m` is 1 where bit `k` of `m` is set: eight black cells at once.
static BLACK_BYTES: [u64; 256] = spread(0x01);
/// Byte `k` of entry `m` is 0xff (−1 as i8) where bit `k` of `m` is set: eight white cells at once.
static WHITE_BYTES: [u64; 256] = spread(0xff);

const fn spread(value: u64) -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut m = 0;
    while m < 256 {
        let mut k = 0;
        while k < 8 {
            if m & (1 << k) != 0 {
                table[m] |= value << (8 * k);
            }
            k += 1;
        }
        m += 1;
    }
    table
}

/// The set squares of `bits`, in increasing order.
pub fn squares(mut bits: u64) -> Vec<usize> {
    let mut out = Vec::with_capacity(bits.count_ones() as usize);
    while bits != 0 {
        out.push(bits.trailing_zeros() as usize);
        bits &= bits - 1;
    }
    out
}

/// The literature's label of a square: row letter and column digit (`A0` … `H7`).
pub fn label(square: usize) -> String {
    format!("{}{}", (b'A' + (square / 8) as u8) as char, square % 8)
}

/// The token (1…60) of a non-centre square, or an error for a centre or off-board square.
pub fn token_of(square: usize) -> Result<i64> {
    if square >= 64 || CENTRE.contains(&square) {
        return Err(Error::Input(format!("othello square {square} has no token (centre squares and squares ≥ 64 never are moves)")));
    }
    let below = CENTRE.iter().filter(|&&c| c < square).count();
    Ok((square - below + 1) as i64)
}

/// The square of a token (1…60), or an error for padding (0) or a value out of range.
pub fn square_of(token: i64) -> Result<usize> {
    if !(1..=60).contains(&token) {
        return Err(Error::Input(format!("othello token {token} is not a move (moves are 1..=60; 0 is padding)")));
    }
    Ok(SQUARE_OF_TOKEN[token as usize] as usize)
}

/// Token (index) → square; entry 0 (padding) is unused.
static SQUARE_OF_TOKEN: [u8; 61] = {
    let mut table = [0u8; 61];
    let (mut t, mut s) = (1, 0);
    while s < 64 {
        if !(s == 27 || s == 28 || s == 35 || s == 36) {
            table[t] = s as u8;
            t += 1;
        }
        s += 1;
    }
    table
};

/// Token of each square (0 for the centre), for the hot path of game generation.
pub(crate) static TOKEN_OF_SQUARE: [u8; 64] = {
    let mut table = [0u8; 64];
    let mut t = 1;
    while t < 61 {
        table[SQUARE_OF_TOKEN[t] as usize] = t as u8;
        t += 1;
    }
    table
};

/// The number of move paths of `depth` plies from `board` (a pass is not a ply; a finished game
/// ends its path early and counts once). The classic check of a move generator.
pub fn perft(board: &Board, depth: u32) -> u64 {
    if depth == 0 || board.to_move.is_none() {
        return 1;
    }
    let mut moves = board.legal();
    let mut total = 0;
    while moves != 0 {
        let sq = moves.trailing_zeros() as usize;
        moves &= moves - 1;
        let mut next = *board;
        next.play_unchecked(sq);
        total += perft(&next, depth - 1);
    }
    total
}
