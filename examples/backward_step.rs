//! One training step's cost at Othello-GPT's size (8 layers, d_model 512, 8 heads of 64, d_mlp
//! 2048, vocabulary 61, random weights, next-token targets): the forward alone against the loss
//! with every parameter's gradient (forward and backward in one submission), timed in the same
//! run with the same clock as `bench`; the dispatches each records, what the second step creates
//! (nothing, in the steady state), and the GPU memory a step holds. The step runs on the fused
//! attention path (nothing asks for a pattern gradient); `pattern` is the same step on a second
//! copy of the model with every block's `hook_pattern_grad` asked for, which puts attention on
//! the pattern path (it also copies those gradients out: one \[B, H, S, S\] copy per block).
//!
//! `cargo run --release --example backward_step [-- BATCH [ITERATIONS [LAYERS [D_MODEL]]]]`

use ndarray::{ArrayD, IxDyn};
use shaderlens::timing::{median, Timer};
use shaderlens::transformer::{Config, GradOptions, Model, Names, Options, Seed, Weights};
use shaderlens::Gpu;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(std::env::args().nth(i).map(|a| a.parse()).transpose()?.unwrap_or(default))
    };
    let (batch, iterations, layers, d_model) = (arg(1, 64)?, arg(2, 2)?, arg(3, 8)?, arg(4, 512)?);
    let (seq, vocab) = (59, 61);
    let heads = (d_model / 64).max(1);
    let config = Config::from_json(&format!(
        r#"{{"n_layers": {layers}, "d_model": {d_model}, "n_heads": {heads}, "d_head": {}, "d_mlp": {}, "d_vocab": {vocab},
            "d_vocab_out": {vocab}, "n_ctx": {seq}, "act_fn": "gelu", "normalization_type": "LN",
            "attn_only": false, "eps": 1e-5, "positional_embedding_type": "standard"}}"#,
        d_model / heads,
        4 * d_model
    ))?;
    let mut state = 1u64;
    let weights = Weights::build(&config, |_, shape| {
        Ok(ArrayD::from_shape_simple_fn(IxDyn(shape), || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
        }))
    })?;
    let tokens = ArrayD::from_shape_fn(IxDyn(&[batch, seq]), |ix| ((ix[0] * 17 + ix[1] * 5) % vocab) as i64);
    let targets = ArrayD::from_shape_fn(IxDyn(&[batch, seq]), |ix| if ix[1] + 1 < seq { ((ix[0] * 17 + (ix[1] + 1) * 5) % vocab) as i64 } else { -1 });
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.description());
    println!("shape: batch {batch} x seq {seq}, {layers} layers, d_model {d_model}, {heads} heads, d_mlp {}", 4 * d_model);
    // Three copies, so that each one's memory is its own path's alone.
    let model_f = Model::load(&gpu, config.clone(), &weights)?;
    let model = Model::load(&gpu, config.clone(), &weights)?;
    let model_p = Model::load(&gpu, config, &weights)?;
    let seed = Seed::CrossEntropy(targets.view());
    let options = GradOptions::default();
    let options_p = GradOptions { names: Names::only((0..layers).map(|l| format!("blocks.{l}.attn.hook_pattern"))), interventions: &[] };
    let mut forward = |e: &mut wgpu::CommandEncoder| model_f.record(&gpu, e, tokens.view(), &Options::default()).map(drop);
    let mut backward = |e: &mut wgpu::CommandEncoder| model.record_backward(&gpu, e, tokens.view(), &seed, &options).map(drop);
    let mut pattern = |e: &mut wgpu::CommandEncoder| model_p.record_backward(&gpu, e, tokens.view(), &seed, &options_p).map(drop);
    let counters = |gpu: &Gpu| [gpu.dispatch_count(), gpu.buffers_created(), gpu.bind_groups_created()];
    let timer = Timer::new(&gpu);
    for (what, record) in [("forward", &mut forward as &mut dyn FnMut(&mut wgpu::CommandEncoder) -> shaderlens::Result<()>), ("forward+backward", &mut backward), ("pattern path", &mut pattern)] {
        timer.time(record)?; // first step: pipelines, scratch, tuning
        let before = counters(&gpu);
        timer.time(record)?;
        let after = counters(&gpu);
        println!(
            "{what:<17} steady step: {:>4} dispatches, {} buffers created, {} bind groups created",
            after[0] - before[0],
            after[1] - before[1],
            after[2] - before[2]
        );
    }
    // Interleaved, so that a busy machine slows both alike.
    let (mut f, mut b, mut p) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..iterations {
        f.push(timer.time(&mut forward)?);
        b.push(timer.time(&mut backward)?);
        p.push(timer.time(&mut pattern)?);
    }
    let [f, b, p] = [f, b, p].map(|x| median(&x).unwrap_or(f64::NAN));
    println!("clock: {}", timer.clock().as_str());
    println!("forward {:.1} ms, forward+backward {:.1} ms, ratio {:.2} (median of {iterations})", f * 1e3, b * 1e3, b / f);
    println!("pattern path: forward+backward {:.1} ms, ratio {:.2}", p * 1e3, p / f);
    let weight_bytes: u64 = model.weights().named().iter().map(|(_, t)| t.len() as u64 * 4).sum();
    let mib = |x: u64| x as f64 / 1048576.0;
    println!("weights {:.1} MiB; a step holds {:.1} MiB more (pattern path {:.1} MiB)", mib(weight_bytes), mib(model.backward_bytes()?), mib(model_p.backward_bytes()?));
    Ok(())
}
