//! Random Othello data sets: reproducible by seed whatever the threads or batching, consistent
//! with the engine, uniform in the first move, streamed in order; and the boards relative to the
//! player to move that probes read.

use ndarray::{array, s, Array2, Array3, Axis};
use shaderlens::games::dataset::{relative_boards, to_move, EMPTY, MINE, THEIRS};
use shaderlens::games::{generate, replay, GameStream};

#[test]
fn a_data_set_does_not_depend_on_threads_or_batching() {
    let one = generate(7, 0, 300, 1).unwrap();
    let four = generate(7, 0, 300, 4).unwrap();
    assert_eq!(one, four);
    let tail = generate(7, 100, 50, 3).unwrap();
    assert_eq!(tail.tokens, one.tokens.slice(s![100..150, ..]));
    assert_eq!(tail.boards, one.boards.slice(s![100..150, .., ..]));
    let other_seed = generate(8, 0, 300, 2).unwrap();
    let same_rows = (0..300).filter(|&g| other_seed.tokens.row(g) == one.tokens.row(g)).count();
    assert!(same_rows < 3, "seeds 7 and 8 share {same_rows} of 300 games");
}

#[test]
fn generated_games_agree_with_a_replay_of_their_tokens() {
    let games = generate(1, 0, 500, 0).unwrap();
    assert_eq!(games.tokens.shape(), [500, 60]);
    assert_eq!(games.boards.shape(), [500, 60, 64]);
    assert_eq!(replay(games.tokens.view()).unwrap(), games);
    // Padding comes only after the end; every row starts with one of black's four moves.
    for row in games.tokens.axis_iter(Axis(0)) {
        let len = row.iter().take_while(|&&t| t != 0).count();
        assert!(row.iter().skip(len).all(|&t| t == 0));
        assert!([20, 27, 34, 41].contains(&row[0]));
    }
}

#[test]
fn the_first_move_is_uniform_among_the_four() {
    let games = generate(2026, 0, 8000, 0).unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for &t in games.tokens.column(0) {
        *counts.entry(t).or_insert(0usize) += 1;
    }
    // 2,000 expected each; the binomial standard deviation is about 39: 5 deviations allowed.
    assert_eq!(counts.len(), 4, "{counts:?}");
    for (&token, &n) in &counts {
        assert!((1805..=2195).contains(&n), "token {token} chosen {n} times of 8,000: {counts:?}");
    }
}

#[test]
fn the_stream_yields_the_data_set_in_order_whatever_the_workers() {
    let want = generate(5, 1000, 4 * 32, 1).unwrap();
    for workers in [1, 3] {
        let mut stream = GameStream::new(5, 1000, 32, workers, 2).unwrap();
        for k in 0..4 {
            let batch = stream.next_batch().unwrap();
            assert_eq!(batch.tokens, want.tokens.slice(s![k * 32..(k + 1) * 32, ..]), "batch {k} with {workers} workers");
            assert_eq!(batch.legal, want.legal.slice(s![k * 32..(k + 1) * 32, .., ..]));
        }
        // Dropping a stream with workers blocked on a full channel must return (it joins them).
        drop(stream);
    }
    assert!(GameStream::new(5, 0, 0, 1, 2).is_err());
    assert!(GameStream::new(5, 0, 8, 1, 0).is_err());
    assert!(GameStream::new(5, 0, 8, 5000, 2).err().expect("5000 workers are refused").to_string().contains("workers"));
    assert!(generate(5, 0, 8, 5000).unwrap_err().to_string().contains("threads"));
}

#[test]
fn to_move_follows_passes_and_the_end() {
    // Black, white, black, black (white passed), then the end.
    let player = array![[1i8, -1, 1, 1, 0, 0]];
    assert_eq!(to_move(player.view()), array![[-1i8, 1, 1, -1, 0, 0]]);
}

#[test]
fn relative_boards_say_mine_theirs_empty_for_the_player_to_move() {
    let mut boards = Array3::<i8>::zeros((1, 3, 64));
    boards[[0, 0, 0]] = 1;
    boards[[0, 0, 1]] = -1;
    boards[[0, 1, 0]] = 1;
    boards[[0, 1, 1]] = -1;
    boards[[0, 2, 0]] = 1; // after the end: player 0, must come out empty
    let player = Array2::from_shape_vec((1, 3), vec![1i8, -1, 0]).unwrap();
    let rel = relative_boards(boards.view(), player.view()).unwrap();
    // After black's move white is to move: black's stone is theirs.
    assert_eq!((rel[[0, 0, 0]], rel[[0, 0, 1]], rel[[0, 0, 2]]), (THEIRS, MINE, EMPTY));
    // After white's last move (nobody moves) the convention is the opponent of the last mover.
    assert_eq!((rel[[0, 1, 0]], rel[[0, 1, 1]]), (MINE, THEIRS));
    assert!(rel.slice(s![0, 2, ..]).iter().all(|&c| c == EMPTY));
    let bad = relative_boards(boards.view(), Array2::<i8>::zeros((1, 2)).view()).unwrap_err().to_string();
    assert!(bad.contains("disagree"), "{bad}");
}

#[test]
fn relative_boards_of_real_games_count_the_mover_s_stones() {
    let games = generate(3, 0, 50, 0).unwrap();
    let rel = relative_boards(games.boards.view(), games.player.view()).unwrap();
    let mover = to_move(games.player.view());
    for g in 0..50 {
        for t in 0..60 {
            let m = mover[[g, t]];
            let mine = games.boards.slice(s![g, t, ..]).iter().filter(|&&c| c != 0 && c == m).count();
            let rel_mine = rel.slice(s![g, t, ..]).iter().filter(|&&c| c == MINE).count();
            assert_eq!(mine, rel_mine, "game {g} move {t}");
        }
    }
}
