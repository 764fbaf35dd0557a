//! The Othello engine against what is known independently: perft counts from the start, positions
//! checked by hand (a pass, an early end, flips in several directions, lines that would wrap round
//! an edge), the token mapping, and random games written by the separate numpy engine of
//! scripts/othello_numpy.py (tests/data/games/othello_reference.npz), replayed array for array.

use std::fs::File;
use std::path::Path;

use ndarray::{s, Array2};
use ndarray_npy::NpzReader;
use shaderlens::games::othello::{flips, label, legal_moves, perft, square_of, squares, token_of, Board, Color};
use shaderlens::games::{replay, Games};

fn bits(squares: &[usize]) -> u64 {
    squares.iter().map(|&s| 1u64 << s).sum()
}

#[test]
fn perft_from_the_start_matches_the_known_counts() {
    let start = Board::start();
    let counts: Vec<u64> = (1..=7).map(|d| perft(&start, d)).collect();
    assert_eq!(counts, [4, 12, 56, 244, 1396, 8200, 55092]);
}

#[test]
fn the_start_position_and_black_s_four_moves() {
    let b = Board::start();
    assert_eq!(squares(b.white), [27, 36]);
    assert_eq!(squares(b.black), [28, 35]);
    assert_eq!(b.to_move, Some(Color::Black));
    assert_eq!(squares(b.legal()), [19, 26, 37, 44]);
    let mut cells = [9i8; 64];
    b.write_cells(&mut cells);
    assert_eq!((cells[27], cells[28], cells[35], cells[36]), (-1, 1, 1, -1));
    assert_eq!(cells.iter().filter(|&&c| c == 0).count(), 60);
}

#[test]
fn a_move_flips_every_bracketed_line_and_only_those() {
    // Black plays D3 (27): white lines north (19), east (28), south (35) and south-east (36) end in
    // black (11, 29, 43, 45) and flip; white to the west (26) ends on an empty square, and white to
    // the north-west (18) ends off any black stone: both stay.
    let black = bits(&[11, 29, 43, 45]);
    let white = bits(&[19, 28, 35, 36, 26, 18]);
    assert_eq!(squares(flips(black, white, 27)), [19, 28, 35, 36]);
    let mut b = Board::from_bits(black, white, Some(Color::Black)).unwrap();
    b.play(27).unwrap();
    assert_eq!(squares(b.black), [11, 19, 27, 28, 29, 35, 36, 43, 45]);
    assert_eq!(squares(b.white), [18, 26]);
    assert_eq!(b.to_move, Some(Color::White));
}

#[test]
fn lines_never_wrap_round_an_edge() {
    // Each placed square has a white neighbour by index (±1, ±7, ±9) that is on the far edge, with
    // black beyond it: a shift without an edge mask would call the move legal and flip.
    for (place, white, black) in [(7usize, 8usize, 9usize), (8, 7, 6), (15, 24, 33), (48, 39, 30), (8, 15, 22), (23, 16, 9)] {
        let (b, w) = (bits(&[black]), bits(&[white]));
        let column_step = (place % 8).abs_diff(white % 8);
        assert!(column_step > 1, "case {} is not a wrap-round case", label(place));
        assert_eq!(flips(b, w, place), 0, "placing {} flipped across the edge", label(place));
        assert_eq!(legal_moves(b, w) & (1 << place), 0, "{} counted as legal across the edge", label(place));
    }
}

#[test]
fn a_player_without_a_move_passes_and_the_game_can_end_early() {
    // Black A0; white A1 and B0. Black's moves: A2 (flips A1) and C0 (flips B0).
    let mut b = Board::from_bits(bits(&[0]), bits(&[1, 8]), Some(Color::Black)).unwrap();
    assert_eq!(squares(b.legal()), [2, 16]);
    b.play(2).unwrap();
    // White's lone B0 brackets nothing: white passes, black moves again.
    assert_eq!(b.to_move, Some(Color::Black));
    assert_eq!(squares(b.legal()), [16]);
    b.play(16).unwrap();
    // No white stones left: neither side can move; the game is over with 58 squares empty.
    assert_eq!(b.to_move, None);
    assert_eq!(squares(b.black), [0, 1, 2, 8, 16]);
    assert_eq!(b.white, 0);
    assert_eq!(b.legal(), 0);
    let err = b.play(3).unwrap_err().to_string();
    assert!(err.contains("after the end"), "{err}");
}

#[test]
fn settle_applies_a_pass_to_a_hand_made_position() {
    let mut b = Board::from_bits(bits(&[0, 1, 2]), bits(&[8]), Some(Color::White)).unwrap();
    b.settle();
    assert_eq!(b.to_move, Some(Color::Black));
    let mut done = Board::from_bits(bits(&[0]), 0, Some(Color::White)).unwrap();
    done.settle();
    assert_eq!(done.to_move, None);
}

#[test]
fn illegal_input_is_an_error_not_a_panic() {
    let mut b = Board::start();
    for bad in [0, 27, 63, 64, 1000] {
        let err = b.play(bad).unwrap_err().to_string();
        assert!(err.contains("not legal") || err.contains("not on the board"), "{bad}: {err}");
    }
    assert!(Board::from_bits(1, 1, None).unwrap_err().to_string().contains("both sides"));
}

#[test]
fn tokens_are_the_non_centre_squares_in_order() {
    assert_eq!(token_of(0).unwrap(), 1);
    assert_eq!(token_of(26).unwrap(), 27);
    assert_eq!(token_of(29).unwrap(), 28);
    assert_eq!(token_of(34).unwrap(), 33);
    assert_eq!(token_of(37).unwrap(), 34);
    assert_eq!(token_of(63).unwrap(), 60);
    let mut previous = 0;
    for t in 1..=60 {
        let sq = square_of(t).unwrap();
        assert!(sq > previous || t == 1, "squares increase with tokens");
        assert!(![27, 28, 35, 36].contains(&sq));
        assert_eq!(token_of(sq).unwrap(), t);
        previous = sq;
    }
    for centre in [27, 28, 35, 36, 64] {
        assert!(token_of(centre).is_err());
    }
    for bad in [0, -1, 61] {
        assert!(square_of(bad).unwrap_err().to_string().contains("1..=60"));
    }
    assert_eq!((label(0), label(27), label(63)), ("A0".to_string(), "D3".to_string(), "H7".to_string()));
}

fn read_games(path: &Path) -> Games {
    let mut npz = NpzReader::new(File::open(path).expect("reference games file opens")).expect("is an npz");
    Games {
        tokens: npz.by_name::<ndarray::OwnedRepr<i64>, ndarray::Ix2>("tokens").expect("tokens"),
        boards: npz.by_name::<ndarray::OwnedRepr<i8>, ndarray::Ix3>("boards").expect("boards"),
        player: npz.by_name::<ndarray::OwnedRepr<i8>, ndarray::Ix2>("player").expect("player"),
        legal: npz.by_name::<ndarray::OwnedRepr<bool>, ndarray::Ix3>("legal").expect("legal"),
    }
}

#[test]
fn games_of_the_independent_numpy_engine_replay_exactly() {
    let want = read_games(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/games/othello_reference.npz"));
    // The file must exercise the rare rules, or this test proves little.
    let p = &want.player;
    let with_pass = (0..want.len()).filter(|&g| (1..60).any(|t| p[[g, t]] != 0 && p[[g, t]] == p[[g, t - 1]])).count();
    let short = (0..want.len()).filter(|&g| want.tokens[[g, 59]] == 0).count();
    assert!(want.len() >= 100 && with_pass >= 10 && short >= 10, "{} games, {with_pass} with a pass, {short} short", want.len());
    let got = replay(want.tokens.view()).expect("every reference move is legal for the Rust engine");
    for g in 0..want.len() {
        assert_eq!(got.player.row(g), want.player.row(g), "player of game {g}");
        for t in 0..60 {
            assert_eq!(got.boards.slice(s![g, t, ..]), want.boards.slice(s![g, t, ..]), "board of game {g} after move {t}");
            assert_eq!(got.legal.slice(s![g, t, ..]), want.legal.slice(s![g, t, ..]), "legal set of game {g} after move {t}");
        }
    }
    assert_eq!(got, want);
}

#[test]
fn replay_names_the_game_and_move_of_a_bad_token() {
    let mut tokens = Array2::<i64>::zeros((2, 60));
    tokens[[0, 0]] = 20; // square 19, legal
    tokens[[1, 0]] = 1; // square 0: not legal at the start
    let err = replay(tokens.view()).unwrap_err().to_string();
    assert!(err.contains("game 0") && err.contains("padding at move 1"), "{err}");
    tokens.row_mut(0).assign(&replay_first_game());
    let err = replay(tokens.view()).unwrap_err().to_string();
    assert!(err.contains("game 1, move 0") && err.contains("not legal"), "{err}");
    assert!(replay(Array2::<i64>::zeros((1, 59)).view()).unwrap_err().to_string().contains("[N, 60]"));
}

/// The first game of the reference file: a complete, legal row of tokens.
fn replay_first_game() -> ndarray::Array1<i64> {
    let games = read_games(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/games/othello_reference.npz"));
    games.tokens.row(0).to_owned()
}
