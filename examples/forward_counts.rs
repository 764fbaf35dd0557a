//! Counts what one forward pass at Othello-GPT's size (8 layers, d_model 512, 8 heads of 64,
//! d_mlp 2048, vocabulary 61, random weights) records and creates: dispatches, buffers and bind
//! groups, for the first pass (pipelines, scratch and tuning included) and the second (the steady
//! state, which should create nothing), with nothing cached and with every hook cached.
//!
//! `cargo run --release --example forward_counts [-- BATCH]`

use ndarray::{ArrayD, IxDyn};
use shaderlens::transformer::{Config, Model, Names, Options, Weights};
use shaderlens::Gpu;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let batch: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(8);
    let config = Config::from_json(
        r#"{"n_layers": 8, "d_model": 512, "n_heads": 8, "d_head": 64, "d_mlp": 2048, "d_vocab": 61,
            "d_vocab_out": 61, "n_ctx": 59, "act_fn": "gelu", "normalization_type": "LN",
            "attn_only": false, "eps": 1e-5, "positional_embedding_type": "standard"}"#,
    )?;
    let weights = Weights::build(&config, |_, shape| Ok(ArrayD::from_elem(IxDyn(shape), 0.01f32)))?;
    let tokens = ArrayD::from_shape_fn(IxDyn(&[batch, 59]), |ix| ((ix[0] * 17 + ix[1] * 5) % 61) as i64);
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.description());
    let model = Model::load(&gpu, config, &weights)?;
    let counters = |gpu: &Gpu| [gpu.dispatch_count(), gpu.buffers_created(), gpu.bind_groups_created()];
    for (what, names) in [("nothing cached", Names::Nothing), ("every hook cached", Names::All)] {
        let options = Options { names, interventions: &[] };
        // `run` reads its outputs back (they live in the model's scratch); `run_gpu` returns fresh
        // GPU tensors (the logits and every cached activation), which the caller keeps.
        for (call, pass) in [("run", "first"), ("run", "second"), ("run_gpu", "third")] {
            let before = counters(&gpu);
            if call == "run" {
                model.run(&gpu, tokens.view(), &options)?;
            } else {
                model.run_gpu(&gpu, tokens.view(), &options)?;
            }
            let after = counters(&gpu);
            println!(
                "{what:<18} {pass:<6} forward ({call:<7}): {:>4} dispatches, {:>4} buffers created, {:>4} bind groups created",
                after[0] - before[0],
                after[1] - before[1],
                after[2] - before[2]
            );
        }
    }
    Ok(())
}
