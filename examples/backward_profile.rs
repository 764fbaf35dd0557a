//! Where a training step's time goes at Othello-GPT's size: each kind of backward kernel timed
//! alone (same clock as `bench`) at the shapes one step runs, times how often a step runs it,
//! beside the forward with every hook cached (what the backward's forward keeps). The step takes
//! the fused attention backward unless a pattern gradient is asked for; the pattern path's
//! attention rows are printed too, but left out of the sum. The parts do
//! not add up exactly to the step (each is timed in its own submission), but they rank it.
//!
//! `cargo run --release --example backward_profile [-- BATCH [ITERATIONS [PART]]]` (PART: only the
//! rows whose name contains it)

use ndarray::{ArrayD, Dimension, IxDyn};
use shaderlens::ops::attention::backward_fused;
use shaderlens::ops::backward::{activation, embedding, loss, permute, reduce, rows};
use shaderlens::ops::gelu::Gelu;
use shaderlens::ops::matmul::{record_gemm, Gemm};
use shaderlens::tensor::GpuTensor;
use shaderlens::timing::{median, Timer};
use shaderlens::Gpu;

type Rec<'a> = Box<dyn FnMut(&mut wgpu::CommandEncoder) -> shaderlens::Result<()> + 'a>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let batch: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(64);
    let iterations: usize = std::env::args().nth(2).map(|a| a.parse()).transpose()?.unwrap_or(2);
    let (seq, layers, dm, heads, dh, dmlp, vocab) = (59, 8, 512, 8, 64, 2048, 61);
    let r = batch * seq;
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.description());
    let t = |shape: &[usize]| -> shaderlens::Result<GpuTensor> {
        let a = ArrayD::from_shape_fn(IxDyn(shape), |ix| ((ix.slice().iter().sum::<usize>() % 13) as f32 - 6.0) * 0.05);
        GpuTensor::upload(&gpu, a.view(), "profile")
    };
    let (x_r_dm, g_r_dm, out_r_dm) = (t(&[r, dm])?, t(&[r, dm])?, t(&[r, dm])?);
    let (x_r_mlp, g_r_mlp, out_r_mlp) = (t(&[r, dmlp])?, t(&[r, dmlp])?, t(&[r, dmlp])?);
    let (w_dm_mlp, w_dm_dm) = (t(&[dm, dmlp])?, t(&[dm, dm])?);
    let (p, dp, ds) = (t(&[batch, heads, seq, seq])?, t(&[batch, heads, seq, seq])?, t(&[batch, heads, seq, seq])?);
    let (qh, dzh, outh) = (t(&[batch, heads, seq, dh])?, t(&[batch, heads, seq, dh])?, t(&[batch, heads, seq, dh])?);
    let (vec_dm, vec_mlp, scale, dscale) = (t(&[dm])?, t(&[dmlp])?, t(&[r, 1])?, t(&[r, 1])?);
    let logits = t(&[batch, seq, vocab])?;
    let dlogits = t(&[batch, seq, vocab])?;
    let (row_loss, loss_t) = (t(&[r])?, t(&[1])?);
    let targets: Vec<i32> = (0..r).map(|i| (i % vocab) as i32).collect();
    let target_buf = gpu_buffer(&gpu, bytemuck::cast_slice(&targets));
    let tokens: Vec<u32> = (0..r).map(|i| (i % vocab) as u32).collect();
    let index = embedding::TokenIndex::new(&tokens, vocab)?;
    let (offsets, positions) = (gpu_buffer(&gpu, bytemuck::cast_slice(&index.offsets)), gpu_buffer(&gpu, bytemuck::cast_slice(&index.positions)));
    let (w_e, w_pos) = (t(&[vocab, dm])?, t(&[seq, dm])?);
    let g3 = g_r_dm.reshaped(&[batch, seq, dm])?;
    let ta = Gemm { transpose_a: true, ..Gemm::default() };
    let tb = Gemm { transpose_b: true, ..Gemm::default() };
    let xt_dm_r = t(&[dm, r])?;
    let g = &gpu;
    // The fused attention backward as the step runs it: [B, S, H, d] tensors, the row statistics
    // of a fused forward recorded once before timing.
    let bshd = [batch, seq, heads, dh];
    let (fq, fk, fv, fz, fdz) = (t(&bshd)?, t(&bshd)?, t(&bshd)?, t(&bshd)?, t(&bshd)?);
    let (fdq, fdk, fdv) = (t(&bshd)?, t(&bshd)?, t(&bshd)?);
    let dims = shaderlens::reference::attention::AttentionDims { batch, heads, sq: seq, sk: seq, d: dh, dv: dh };
    let stats = t(&shaderlens::ops::attention::row_stats_shape(&dims))?;
    let mut e = gpu.encoder();
    backward_fused::record_bshd_forward(&gpu, &mut e, &fq, &fk, &fv, true, 0.125, &fz, &stats)?;
    gpu.submit_and_wait(e)?;
    let mut parts: Vec<(&str, usize, Rec<'_>)> = vec![
        ("fused attention backward [B,S,H,d]", layers, Box::new(|e| {
            let saved = backward_fused::Saved { q: &fq, k: &fk, v: &fv, out: &fz, row_stats: &stats };
            backward_fused::record_bshd_into(g, e, saved, &fdz, true, 0.125, backward_fused::Grads { dq: &fdq, dk: &fdk, dv: &fdv })
        })),
        ("fused attention forward keeping row statistics", layers, Box::new(|e| backward_fused::record_bshd_forward(g, e, &fq, &fk, &fv, true, 0.125, &fz, &stats))),
        ("gemm dW_in / dW_out (aᵀb, K = B·S)", 2 * layers, Box::new(|e| record_gemm(g, e, &x_r_dm, &g_r_mlp, &w_dm_mlp, &ta))),
        ("dW_in / dW_out as the step runs them: transposed copy + plain gemm", 2 * layers, Box::new(|e| {
            permute::swap_axes(g, e, &x_r_dm, [1, r, dm, 1], 1.0, &xt_dm_r, false)?;
            record_gemm(g, e, &xt_dm_r, &g_r_mlp, &w_dm_mlp, &Gemm::default())
        })),
        ("gemm dx through W_in / W_out (a bᵀ)", 2 * layers, Box::new(|e| record_gemm(g, e, &g_r_mlp, &w_dm_mlp, &out_r_dm, &tb))),
        ("gemm dW_Q/K/V/O (aᵀb, K = B·S)", 4 * layers, Box::new(|e| record_gemm(g, e, &x_r_dm, &g_r_dm, &w_dm_dm, &ta))),
        ("gemm dx through W_Q/K/V/O (a bᵀ)", 4 * layers, Box::new(|e| record_gemm(g, e, &g_r_dm, &w_dm_dm, &out_r_dm, &tb))),
        ("attention bmm (dV, dP, dQ, dK), pattern path only", 4 * layers, Box::new(|e| record_gemm(g, e, &p, &dzh, &outh, &ta))),
        ("softmax backward [B,H,S,S], pattern path only", layers, Box::new(|e| rows::softmax_backward(g, e, &p, &dp, &ds))),
        ("layer norm backward", 2 * layers + 1, Box::new(|e| rows::layer_norm_backward(g, e, &x_r_dm, &scale, &g_r_dm, 1e-5, rows::LayerNormStep::Both, &dscale, &out_r_dm, true))),
        ("column sums [B·S, d_model]", 10 * layers + 2, Box::new(|e| reduce::column_sums(g, e, &g_r_dm, Some(&x_r_dm), &vec_dm, false))),
        ("column sums [B·S, d_mlp]", layers, Box::new(|e| reduce::column_sums(g, e, &g_r_mlp, None, &vec_mlp, false))),
        ("gelu backward", layers, Box::new(|e| activation::record_into(g, e, Some(Gelu::Erf), &x_r_mlp, &g_r_mlp, &out_r_mlp))),
        ("axis swaps [B,S,H,d] (fused path: 3 a block; pattern path: 10)", 3 * layers, Box::new(|e| permute::swap_axes(g, e, &qh, [batch, heads, seq, dh], 0.125, &outh, false))),
        ("cross-entropy", 1, Box::new(|e| loss::record(g, e, &logits, &target_buf, r, &dlogits, &row_loss, &loss_t))),
        ("embedding backward", 1, Box::new(|e| {
            embedding::embed_backward(g, e, &g3, &offsets, &positions, &w_e, false)?;
            embedding::pos_embed_backward(g, e, &g3, &w_pos, false)
        })),
    ];
    let timer = Timer::new(&gpu);
    println!("clock: {}", timer.clock().as_str());
    let mut total = 0.0;
    let mut rows_out = Vec::new();
    let only: Option<String> = std::env::args().nth(3);
    for (name, count, record) in parts.iter_mut().filter(|(name, ..)| only.as_deref().is_none_or(|o| name.contains(o))) {
        timer.time(record.as_mut())?;
        let samples = timer.repeat(iterations, record.as_mut())?;
        let ms = median(&samples).unwrap_or(f64::NAN) * 1e3;
        if !name.contains("pattern path only") {
            total += ms * *count as f64;
        }
        rows_out.push((name.to_string(), *count, ms));
    }
    rows_out.sort_by(|a, b| (b.2 * b.1 as f64).total_cmp(&(a.2 * a.1 as f64)));
    println!("| part | per step | ms each | ms per step | share |\n|---|---|---|---|---|");
    for (name, count, ms) in rows_out {
        println!("| {name} | {count} | {ms:.2} | {:.1} | {:.0}% |", ms * count as f64, 100.0 * ms * count as f64 / total);
    }
    println!("sum of the parts (the fused step's; rows marked pattern path only left out): {total:.1} ms");
    Ok(())
}

fn gpu_buffer(gpu: &Gpu, data: &[u8]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    gpu.device().create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents: data, usage: wgpu::BufferUsages::STORAGE })
}
