//! Times the transformer forward pass at Othello-GPT's size (8 layers, d_model 512, 8 heads of 64,
//! d_mlp 2048, vocabulary 61, random weights) on a batch of 64 games of 59 moves, on the current
//! adapter: nothing cached (fused paths), the full cache left on the GPU, and the full cache read
//! back. Each is run once to warm up (pipelines compiled, scratch allocated), then timed.
//!
//! `cargo run --release --example transformer_speed [-- BATCH REPEATS]`

use std::time::Instant;

use ndarray::{ArrayD, IxDyn};
use shaderlens::transformer::{Config, Model, Names, Options, Weights};
use shaderlens::Gpu;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let batch = args.first().copied().unwrap_or(64);
    let repeats = args.get(1).copied().unwrap_or(3);
    let config = Config::from_json(
        r#"{"n_layers": 8, "d_model": 512, "n_heads": 8, "d_head": 64, "d_mlp": 2048, "d_vocab": 61,
            "d_vocab_out": 61, "n_ctx": 59, "act_fn": "gelu", "normalization_type": "LN",
            "attn_only": false, "eps": 1e-5, "positional_embedding_type": "standard"}"#,
    )?;
    let mut state = 1u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let weights = Weights::build(&config, |_, shape| {
        let n = shape.iter().product();
        ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|_| next() * 0.1).collect()).map_err(|e| shaderlens::Error::Shape(e.to_string()))
    })?;
    let tokens = ArrayD::from_shape_fn(IxDyn(&[batch, 59]), |ix| ((ix[0] * 17 + ix[1] * 5) % 61) as i64);
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.description());
    let model = Model::load(&gpu, config, &weights)?;
    let time = |what: &str, f: &mut dyn FnMut() -> shaderlens::Result<()>| -> shaderlens::Result<()> {
        f()?; // warm-up
        let start = Instant::now();
        for _ in 0..repeats {
            f()?;
        }
        let per = start.elapsed().as_secs_f64() / repeats as f64;
        println!("{what:<40} {:>9.1} ms per forward ({:.0} tokens/s)", per * 1e3, (batch * 59) as f64 / per);
        Ok(())
    };
    time("logits only (nothing cached)", &mut || model.run_gpu(&gpu, tokens.view(), &Options::default()).map(|_| ()))?;
    let all = Options { names: Names::All, interventions: &[] };
    time("full cache, kept on the GPU", &mut || model.run_gpu(&gpu, tokens.view(), &all).map(|_| ()))?;
    time("full cache, read back to the host", &mut || model.run(&gpu, tokens.view(), &all).map(|_| ()))?;
    Ok(())
}
