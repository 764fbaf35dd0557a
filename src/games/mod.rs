//! The games shaderlens trains small transformers on, and their data sets (SPEC's **Games**).
//!
//! - [`othello`]: the game on bitboards (moves, flips, passes, tokens 1…60, perft).
//! - [`dataset`]: random games as SPEC's games-file arrays, on many threads, reproducible by seed;
//!   replaying tokens from elsewhere; boards relative to the player to move for probes.
//! - [`stream`]: fresh batches made on background threads, ahead of a trainer.
//! - [`modular`]: modular arithmetic (the grokking data) with a seeded train/test split.
//! - [`cli`]: the `shaderlens games` command that writes these as npz files.

pub mod cli;
pub mod dataset;
pub mod modular;
pub mod othello;
pub mod stream;
mod write;

pub use dataset::{generate, relative_boards, replay, Games};
pub use stream::GameStream;
