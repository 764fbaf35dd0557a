//! Othello next-move training (`data.game = "othello"`): the config and its refusals, the targets
//! and padding, the legal-move rate on hand-made logits, the games a resumed run sees, a games
//! file as the data, and a short GPU training of a tiny model whose held-out loss falls and whose
//! legal-move rate rises.

mod common;
#[path = "common/files.rs"]
mod files;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use files::Scratch;
use ndarray::{array, Array2, Array3, ArrayD, IxDyn};
use shaderlens::games::generate;
use shaderlens::games::othello::token_of;
use shaderlens::train::cli::trainer;
use shaderlens::train::config::{Data, TrainConfig};
use shaderlens::train::othello::{legal_move_counts, next_move, total_steps, OthelloData, OthelloSet, HELD_OUT_FIRST};
use shaderlens::train::run::{read_metrics, run, Control, Metrics, Outcome};

const REFERENCE_GAMES: &str = "tests/data/games/othello_reference.npz";

/// A tiny Othello model: one layer of width 16.
fn config(out: &Path, sets: &[&str]) -> TrainConfig {
    let text = format!(
        "seed = 3\nout = \"{}\"\nsteps = 4\nbatch = 4\neval_every = 2\ncheckpoint_every = 2\n[model]\nn_layers = 1\nd_model = 16\nn_heads = 2\nd_head = 8\nd_mlp = 32\nact_fn = \"gelu\"\n[data]\ngame = \"othello\"\nseed = 7\ntest_games = 4\n[optimizer]\nlr = 1e-2\nbeta2 = 0.95\nweight_decay = 0.1\n",
        out.display()
    );
    TrainConfig::from_toml(&text, &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

fn refusal(sets: &[&str]) -> String {
    let text = "steps = 4\nbatch = 4\n[data]\ngame = \"othello\"\n[model]\nd_model = 16\nn_heads = 2\nd_head = 8\n";
    TrainConfig::from_toml(text, &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap_err().to_string()
}

#[test]
fn othello_config_derives_the_vocabulary_and_round_trips() {
    let c = config(Path::new("/tmp/x"), &[]);
    assert_eq!((c.model.d_vocab, c.model.d_vocab_out, c.model.n_ctx), (61, 61, 59));
    assert_eq!(c.data, Data::Othello(OthelloData { seed: 7, test_games: 4, games: None }));
    assert_eq!(TrainConfig::from_toml(&c.to_toml(), &[]).unwrap(), c);
    for name in ["othello-small", "othello-gpt"] {
        let p = TrainConfig::preset(name, &[]).unwrap();
        assert!(matches!(p.data, Data::Othello(_)), "{name}");
        assert_eq!((p.model.d_vocab, p.model.n_ctx), (61, 59), "{name}");
    }
    let small = TrainConfig::preset("othello-small", &[]).unwrap();
    assert_eq!((small.model.n_layers, small.model.d_model, small.model.n_heads, small.model.d_mlp), (2, 128, 4, Some(512)));
    assert_eq!((small.optimizer.adamw.beta2, small.optimizer.adamw.weight_decay), (0.95, 0.1));
    let gpt = TrainConfig::preset("othello-gpt", &[]).unwrap();
    assert_eq!((gpt.model.n_layers, gpt.model.d_model, gpt.model.n_heads, gpt.model.d_head, gpt.model.d_mlp), (8, 512, 8, 64, Some(2048)));
    assert_eq!(gpt.optimizer.max_grad_norm, Some(1.0));
}

#[test]
fn othello_config_refusals_name_the_key() {
    assert!(refusal(&["data.p=7"]).contains("`data.p` is for modular data"));
    assert!(refusal(&["batch=full"]).contains("`batch` must be a number of games"));
    assert!(refusal(&["data.test_games=0"]).contains("`data.test_games` is 0"));
    assert!(refusal(&["model.n_ctx=60"]).contains("`model.n_ctx` is 60 but othello data needs 59"));
    assert!(refusal(&["model.d_vocab=60"]).contains("`model.d_vocab` is 60 but othello data needs 61"));
    assert!(refusal(&["data.test_games=-1"]).contains("data.test_games"));
    assert!(refusal(&["data.game=\"chess\""]).contains("must be \"modular\" or \"othello\""));
    let text = "epochs = 2\nbatch = 4\n[data]\ngame = \"othello\"\n[model]\nd_model = 16\nn_heads = 2\nd_head = 8\n";
    assert!(TrainConfig::from_toml(text, &[]).unwrap_err().to_string().contains("`epochs` needs a games file"));
}

#[test]
fn targets_are_the_next_moves_and_padding_is_ignored() {
    let mut tokens = Array2::<i64>::zeros((2, 60));
    for t in 0..60 {
        tokens[[0, t]] = (t as i64 % 60) + 1;
    }
    tokens.slice_mut(ndarray::s![1, ..3]).assign(&array![5, 9, 13]);
    let (input, targets) = next_move(tokens.view()).unwrap();
    assert_eq!(input.shape(), [2, 59]);
    assert_eq!(targets.shape(), [2, 59]);
    assert_eq!(input.row(0).to_vec(), (1..60).collect::<Vec<i64>>());
    assert_eq!(targets.row(0).to_vec(), (2..61).collect::<Vec<i64>>());
    assert_eq!(input.row(1).iter().take(4).copied().collect::<Vec<_>>(), [5, 9, 13, 0]);
    assert_eq!(targets.row(1).iter().take(3).copied().collect::<Vec<_>>(), [9, 13, -1]);
    assert!(targets.row(1).iter().skip(2).all(|&t| t == -1));
    assert!(next_move(Array2::<i64>::zeros((1, 59)).view()).unwrap_err().to_string().contains("[N, 60]"));
}

#[test]
fn legal_move_rate_counts_top1_predictions_in_the_legal_set() {
    // One game of three moves: positions 0 and 1 have a next move, position 2 is the end.
    let mut tokens = Array2::<i64>::zeros((1, 60));
    tokens.slice_mut(ndarray::s![0, ..3]).assign(&array![20, 18, 26]);
    let mut legal = Array3::<bool>::from_elem((1, 60, 64), false);
    legal[[0, 0, 10]] = true; // after move 0, square 10 (and only it) is legal
    legal[[0, 1, 40]] = true;
    legal[[0, 2, 50]] = true; // after the last move: not a position that counts
    let mut logits = ArrayD::<f64>::zeros(IxDyn(&[1, 59, 61]));
    logits[[0, 0, token_of(10).unwrap() as usize]] = 2.0; // legal
    logits[[0, 1, token_of(41).unwrap() as usize]] = 2.0; // not legal
    logits[[0, 2, token_of(50).unwrap() as usize]] = 2.0; // after the end: not counted
    assert_eq!(legal_move_counts(logits.view(), tokens.view(), legal.view()).unwrap(), (1, 2));
    logits[[0, 1, token_of(40).unwrap() as usize]] = 3.0;
    assert_eq!(legal_move_counts(logits.view(), tokens.view(), legal.view()).unwrap(), (2, 2));
    // Padding (token 0) as the top-1 prediction is never legal.
    logits[[0, 0, 0]] = 9.0;
    assert_eq!(legal_move_counts(logits.view(), tokens.view(), legal.view()).unwrap(), (1, 2));
    let bad = ArrayD::<f64>::zeros(IxDyn(&[1, 60, 61]));
    assert!(legal_move_counts(bad.view(), tokens.view(), legal.view()).unwrap_err().to_string().contains("[B, 59, V]"));
}

#[test]
fn streamed_batches_continue_the_game_index_across_a_resume() {
    let data = OthelloData { seed: 11, test_games: 3, games: None };
    let mut from_zero = OthelloSet::open(&data, 5, 0).unwrap();
    let batches: Vec<_> = (0..4).map(|s| from_zero.batch(s).unwrap()).collect();
    let mut resumed = OthelloSet::open(&data, 5, 2).unwrap();
    assert_eq!(resumed.batch(2).unwrap(), batches[2]);
    assert_eq!(resumed.batch(3).unwrap(), batches[3]);
    assert_eq!(batches[1].0, next_move(generate(11, 5, 5, 1).unwrap().tokens.view()).unwrap().0);
    assert_eq!(from_zero.test, generate(11, HELD_OUT_FIRST, 3, 1).unwrap());
    assert_ne!(batches[0], batches[1]);
}

#[test]
fn a_games_file_is_split_into_training_and_held_out_games() {
    let data = OthelloData { seed: 0, test_games: 28, games: Some(REFERENCE_GAMES.into()) };
    let tokens = shaderlens::train::othello::read_tokens(Path::new(REFERENCE_GAMES)).unwrap();
    let mut set = OthelloSet::open(&data, 30, 0).unwrap();
    assert_eq!(set.n_train, Some(100));
    assert_eq!(set.test.tokens, tokens.slice(ndarray::s![100.., ..]));
    let (input, _) = set.batch(3).unwrap(); // games 90..99, then 0..19
    assert_eq!(input.row(0), tokens.slice(ndarray::s![90, ..59]));
    assert_eq!(input.row(10), tokens.slice(ndarray::s![0, ..59]));
    let mut c = config(Path::new("/tmp/x"), &["data.test_games=28", "batch=30"]);
    c.data = Data::Othello(data.clone());
    c.length = shaderlens::train::config::Length::Epochs(2);
    assert_eq!(total_steps(&c).unwrap(), 8);
    let all = OthelloData { test_games: 128, ..data };
    assert!(OthelloSet::open(&all, 30, 0).err().unwrap().to_string().contains("leaves none for training"));
}

fn train(config: &TrainConfig, backend: &str, resume: bool, stop_at: Option<u64>) -> Outcome {
    let gpu = (backend == "gpu").then(common::gpu);
    let mut trainer = trainer(backend, config, gpu.as_deref()).unwrap();
    let stop = AtomicBool::new(false);
    let mut observe = |step: u64, _: Option<&Metrics>| {
        if Some(step) == stop_at {
            stop.store(true, Ordering::SeqCst);
        }
    };
    run(config, trainer.as_mut(), resume, Control { stop: &stop, observe: &mut observe }).unwrap()
}

#[test]
fn a_resumed_othello_run_sees_the_games_an_uninterrupted_one_sees() {
    let (a, b) = (Scratch::new("othello-whole"), Scratch::new("othello-resumed"));
    let whole = config(&a.0, &[]);
    assert_eq!(train(&whole, "reference", false, None), Outcome::Finished { steps: 4 });
    let split = config(&b.0, &[]);
    assert_eq!(train(&split, "reference", false, Some(2)), Outcome::Stopped { step: 2 });
    assert_eq!(train(&split, "reference", true, None), Outcome::Finished { steps: 4 });
    let strip = |p: &Path| read_metrics(p).unwrap().into_iter().map(|m| Metrics { tokens_per_s: 0.0, ..m }).collect::<Vec<_>>();
    let (m_whole, m_split) = (strip(&a.join("metrics.jsonl")), strip(&b.join("metrics.jsonl")));
    assert_eq!(m_whole, m_split);
    assert_eq!(m_whole.iter().map(|m| m.games_seen).collect::<Vec<_>>(), [Some(0), Some(8), Some(16)]);
    assert!(m_whole.iter().all(|m| m.legal_move_rate.is_some_and(|r| (0.0..=1.0).contains(&r))));
    assert!(a.join("curves.png").exists());
}

#[test]
fn a_tiny_othello_model_learns_on_the_gpu() {
    let dir = Scratch::new("othello-gpu");
    let c = config(&dir.0, &["steps=30", "batch=16", "eval_every=30", "checkpoint_every=30", "data.test_games=32"]);
    assert_eq!(train(&c, "gpu", false, None), Outcome::Finished { steps: 30 });
    let m = read_metrics(&dir.join("metrics.jsonl")).unwrap();
    let (first, last) = (&m[0], &m[m.len() - 1]);
    assert_eq!(last.games_seen, Some(480));
    let (l0, l1) = (first.test_loss.unwrap(), last.test_loss.unwrap());
    let (r0, r1) = (first.legal_move_rate.unwrap(), last.legal_move_rate.unwrap());
    assert!(l1 < l0 - 0.3, "held-out loss {l0} -> {l1}");
    assert!(r1 > r0 + 0.1, "legal-move rate {r0} -> {r1}");
}
