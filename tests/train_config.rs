//! `shaderlens train`'s config: strict keys and values named in errors, `--set` typed by the
//! field, presets, learning-rate schedules against hand-computed values, and the initial weights
//! (TransformerLens's gpt2 init: statistics, exact biases and norms, reproducible per seed).

use shaderlens::train::config::{Batch, Data, Length, TrainConfig};
use shaderlens::train::init::init_weights;
use shaderlens::train::schedule::Schedule;

const TINY: &str = r#"
steps = 20
[model]
n_layers = 1
d_model = 16
n_heads = 2
d_head = 8
[data]
p = 7
"#;

fn err(text: &str, sets: &[&str]) -> String {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    TrainConfig::from_toml(text, &sets).unwrap_err().to_string()
}

#[test]
fn defaults_fill_what_the_data_implies() {
    let c = TrainConfig::from_toml(TINY, &[]).unwrap();
    assert_eq!((c.model.d_vocab, c.model.d_vocab_out, c.model.n_ctx, c.model.d_mlp), (8, 7, 3, Some(64)));
    assert_eq!(c.length, Length::Steps(20));
    assert_eq!(c.batch, Batch::Full);
    assert!((c.initializer_range - 0.8 / 4.0).abs() < 1e-15);
    assert_eq!(c.optimizer.max_grad_norm, None);
    assert!(c.optimizer.decay_biases_and_norms, "torch decays every parameter by default");
    // The resolved config reads back as itself.
    assert_eq!(TrainConfig::from_toml(&c.to_toml(), &[]).unwrap(), c);
}

#[test]
fn unknown_keys_and_bad_values_are_refused_by_name() {
    assert!(err(&format!("learning_rate = 1\n{TINY}"), &[]).contains("unknown config key `learning_rate`"));
    assert!(err(&format!("{TINY}\n[optimizer]\nlr = \"fast\""), &[]).contains("`optimizer.lr` is \"fast\" but must be a finite number"));
    assert!(err(&format!("{TINY}\n[optimizer]\nbeta2 = 1.5"), &[]).contains("beta2"));
    assert!(err(&format!("{TINY}\n[schedule]\nkind = \"step\""), &[]).contains("`schedule.kind` is \"step\""));
    assert!(err(&TINY.replace("p = 7", "p = 8"), &[]).contains("`data.p` is 8 but must be a prime"));
    assert!(err(&TINY.replace("steps = 20", "steps = 20\nepochs = 3"), &[]).contains("exclude each other"));
    assert!(err(&format!("batch = 0\n{TINY}"), &[]).contains("`batch` is 0"));
    assert!(err(&TINY.replace("d_model = 16", "d_model = 16\nd_vocab = 99"), &[]).contains("`model.d_vocab` is 99 but modular data with p = 7 needs 8"));
    assert!(err(&TINY.replace("d_model = 16", "d_model = 16\nact_fn = \"swish\""), &[]).contains("act_fn"));
    assert!(err(&format!("{TINY}\nwarmup = 1"), &[]).contains("unknown config key `data.warmup`"));
    assert!(err(&format!("eval_every = 0\n{TINY}"), &[]).contains("`eval_every` is 0"));
    assert!(err(&TINY.replace("[data]", "[data]\ngame = \"othello\""), &[]).contains("othello"));
}

#[test]
fn set_overrides_a_field_typed_by_the_field() {
    let sets: Vec<String> =
        ["optimizer.lr=3e-4", "steps=7", "batch=5", "optimizer.max_grad_norm=1", "model.normalization_type=none", "out=x/y"].iter().map(|s| s.to_string()).collect();
    let c = TrainConfig::from_toml(TINY, &sets).unwrap();
    assert_eq!((c.optimizer.adamw.lr, c.length, c.batch, c.optimizer.max_grad_norm), (3e-4, Length::Steps(7), Batch::Size(5), Some(1.0)));
    assert_eq!(c.out, std::path::PathBuf::from("x/y"));
    assert!(!c.model.has_ln());
    assert!(err(TINY, &["optimizer.learning_rate=1"]).contains("unknown config key `optimizer.learning_rate`"));
    assert!(err(TINY, &["steps=many"]).contains("--set steps=many"));
    assert!(err(TINY, &["steps"]).contains("not key=value"));
    assert!(err(TINY, &["optimizer.decay_biases_and_norms=maybe"]).contains("true or false"));
}

#[test]
fn presets_parse_and_grokking_is_nanda_et_al() {
    let c = TrainConfig::preset("grokking", &[]).unwrap();
    assert_eq!(c.data, Data::Modular { p: 113, op: shaderlens::games::modular::Op::Add, train_fraction: 0.3, seed: 598 });
    assert_eq!((c.model.n_layers, c.model.d_model, c.model.n_heads, c.model.d_head, c.model.d_mlp), (1, 128, 4, 32, Some(512)));
    assert!(!c.model.has_ln());
    assert_eq!((c.optimizer.adamw.lr, c.optimizer.adamw.weight_decay, c.optimizer.adamw.beta2), (1e-3, 1.0, 0.98));
    assert_eq!(c.schedule, Schedule::Warmup { warmup_steps: 10 });
    assert_eq!(c.total_steps(3830), 40_000);
    TrainConfig::preset("grokking-small", &["steps=5".into()]).unwrap();
    assert!(TrainConfig::preset("grok", &[]).unwrap_err().to_string().contains("no preset \"grok\""));
}

#[test]
fn schedules_give_hand_computed_rates() {
    let warm = Schedule::Warmup { warmup_steps: 10 };
    for (step, want) in [(0, 0.0), (5, 5e-4), (10, 1e-3), (1000, 1e-3)] {
        assert!((warm.lr(1e-3, step, 40_000) - want).abs() < 1e-18, "warmup step {step}");
    }
    assert_eq!(Schedule::Constant.lr(0.5, 77, 100), 0.5);
    let cos = Schedule::Cosine { warmup_steps: 2, final_lr: 0.1 };
    // Decay over updates 2..=11 of 12: q = (step - 2) / 9.
    for (step, want) in [(0, 0.0), (1, 0.5), (2, 1.0), (5, 0.1 + 0.9 * 0.75), (11, 0.1), (50, 0.1)] {
        assert!((cos.lr(1.0, step, 12) - want).abs() < 1e-12, "cosine step {step}: {}", cos.lr(1.0, step, 12));
    }
}

#[test]
fn epochs_count_mini_batches() {
    let c = TrainConfig::from_toml(&TINY.replace("steps = 20", "epochs = 3\nbatch = 10"), &[]).unwrap();
    assert_eq!(c.total_steps(29), 9);
}

#[test]
fn init_follows_transformer_lens_gpt2() {
    let c = TrainConfig::from_toml(&format!("{TINY}\n"), &["model.d_model=128".into(), "model.d_head=64".into()]).unwrap();
    let std = 0.8 / 128f64.sqrt();
    let w = init_weights(&c.model, c.initializer_range, 7).unwrap();
    let mut all = Vec::new();
    for (name, a) in w.named() {
        if name.contains("W_") {
            all.extend(a.iter().copied());
            assert!(a.iter().all(|&x| x as f32 as f64 == x), "{name} is float32");
        } else if name.ends_with(".w") {
            assert!(a.iter().all(|&x| x == 1.0), "{name} is 1");
        } else {
            assert!(a.iter().all(|&x| x == 0.0), "{name} is 0");
        }
    }
    let n = all.len() as f64;
    let mean = all.iter().sum::<f64>() / n;
    let sd = (all.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
    assert!(mean.abs() < 4.0 * std / n.sqrt(), "mean {mean}");
    assert!((sd / std - 1.0).abs() < 0.02, "std {sd} vs {std}");
    let within = all.iter().filter(|x| x.abs() < std).count() as f64 / n;
    assert!((within - 0.6827).abs() < 0.01, "a normal has 68.3 % within one sd, got {within}");
    let again = init_weights(&c.model, c.initializer_range, 7).unwrap();
    let other = init_weights(&c.model, c.initializer_range, 8).unwrap();
    assert_eq!(again.w_e, w.w_e);
    assert_ne!(other.w_e, w.w_e);
    assert!(init_weights(&c.model, -1.0, 7).unwrap_err().to_string().contains("initializer_range"));
}
