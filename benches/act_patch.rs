//! Criterion bench of activation patching (issue 17): SPEC's four sweeps (resid_pre, attn_out,
//! mlp_out by layer × position, z by layer × head: 76 patches) on a 2-layer model (d_model 64,
//! 2 heads, d_mlp 256, 61 tokens) with 2 prompt pairs of 12 tokens, batched (many patched runs per
//! submission) and one forward per patch, on the same adapter in one run. `scripts/
//! bench_tl_patching.py` times TransformerLens's `patching` functions on the same case (CPU torch).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::{ArrayD, IxDyn};
use shaderlens::analysis::patch_gpu::{act_patch, Batching};
use shaderlens::analysis::{Prompts, Sweep};
use shaderlens::bench::run::inputs;
use shaderlens::transformer::{Config, Model, Weights};
use shaderlens::Gpu;

const CONFIG: &str = r#"{"n_layers": 2, "d_model": 64, "n_heads": 2, "d_head": 32, "d_mlp": 256, "d_vocab": 61,
    "d_vocab_out": 61, "n_ctx": 12, "act_fn": "gelu", "normalization_type": "LN", "attn_only": false, "eps": 1e-5,
    "positional_embedding_type": "standard"}"#;
const BATCH: usize = 2;
const SEQ: usize = 12;

fn patching(c: &mut Criterion) {
    let gpu = Gpu::new().expect("a GPU adapter (see README: Adapters)");
    let config = Config::from_json(CONFIG).expect("config");
    let mut seed = 100;
    let weights = Weights::build(&config, |_, shape| {
        seed += 1;
        Ok(inputs(shape, seed).mapv(|x| 0.1 * x))
    })
    .expect("weights");
    let model = Model::load(&gpu, config.clone(), &weights).expect("model");
    let clean = ArrayD::from_shape_fn(IxDyn(&[BATCH, SEQ]), |ix| ((ix[0] * 17 + ix[1] * 5) % 61) as i64);
    let mut corrupt = clean.clone();
    for b in 0..BATCH {
        corrupt[[b, 3]] = (clean[[b, 3]] + 7) % 61;
    }
    let answer = ArrayD::from_shape_fn(IxDyn(&[BATCH]), |ix| (ix[0] * 3) as i64);
    let wrong = answer.mapv(|a| a + 1);
    let prompts = Prompts { clean, corrupt, answer, wrong };
    let sweeps = [Sweep::ResidPre, Sweep::AttnOut, Sweep::MlpOut, Sweep::ZAllPos];
    let patches: usize = sweeps.iter().map(|s| s.sites(&config, SEQ).len()).sum();
    eprintln!("adapter: {}", gpu.description());
    let mut group = c.benchmark_group("act_patch");
    group.sample_size(10);
    group.throughput(Throughput::Elements(patches as u64));
    for (name, batching) in [("batched", Batching::default()), ("one_per_patch", Batching::one_per_patch())] {
        group.bench_function(format!("{name}/B{BATCH}_S{SEQ}_L2_dm64/{patches}_patches"), |b| {
            b.iter(|| act_patch(&gpu, &model, &prompts, &sweeps, &batching).expect("sweeps"))
        });
    }
    group.finish();
}

criterion_group!(benches, patching);
criterion_main!(benches);
