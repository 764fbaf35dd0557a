//! Whether a bench case fits before anything is allocated: `--shape` takes any numbers, and a
//! shape of 2^64 - 1 elements (an ndarray panic), a 40 GB matmul (an abort in the allocator) or a
//! model of a million layers (minutes of work, then an out-of-memory kill) must be refused up
//! front with the limit it exceeds.
//!
//! [`needs`] estimates, with checked arithmetic, the largest single GPU buffer a case binds and
//! the memory it takes on the host (float32 inputs, their float64 copies and the host reference's
//! outputs) and on the device (every buffer, plus a fixed overhead per buffer). [`check`] compares
//! them with the device's binding and buffer limits and with the memory the host has available
//! (CPU adapters such as lavapipe keep "device" memory on the host too).

use super::cases::Case;
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// What one buffer costs beyond its bytes (driver and wgpu bookkeeping), for the estimate.
const PER_BUFFER: u64 = 2048;

/// The estimate of [`needs`], in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs {
    /// The largest single GPU buffer.
    pub largest_buffer: u64,
    /// All GPU buffers together.
    pub device: u64,
    /// Host memory: inputs, float64 copies, reference outputs.
    pub host: u64,
}

/// The memory `case` needs, or an error when the count overflows (a shape no machine holds).
pub fn needs(case: &Case) -> Result<Needs> {
    let too_big = || Error::Input(format!("bench {} shape {:?} is too large to count in bytes", case.op, case.shape));
    let mul = |xs: &[u64]| xs.iter().try_fold(1u64, |a, &x| a.checked_mul(x)).ok_or_else(too_big);
    let s: Vec<u64> = case.shape.iter().map(|&d| d as u64).collect();
    // (buffers on the GPU in elements, host bytes)
    let (buffers, host): (Vec<u64>, u64) = match (case.op, s.as_slice()) {
        ("matmul", &[m, k, n]) => {
            let (a, b, out) = (mul(&[m, k])?, mul(&[k, n])?, mul(&[m, n])?);
            (vec![a, b, out], sum(&[mul(&[a, 12])?, mul(&[b, 12])?, mul(&[out, 8])?]).ok_or_else(too_big)?)
        }
        ("attention", &[b, h, seq, d]) => {
            let (qkv, pattern) = (mul(&[b, h, seq, d])?, mul(&[b, h, seq, seq])?);
            (vec![qkv, qkv, qkv, qkv, qkv, pattern], sum(&[mul(&[qkv, 44])?, mul(&[pattern, 8])?]).ok_or_else(too_big)?)
        }
        ("attention_backward", &[b, h, seq, d]) => {
            // q, k, v, d_out, out, dq, dk, dv and the packing scratch; the host reference keeps
            // the pattern, d pattern and d scores (and temporaries) in float64.
            let (qkv, pattern) = (mul(&[b, h, seq, d])?, mul(&[b, h, seq, seq])?);
            (vec![qkv; 12], sum(&[mul(&[qkv, 80])?, mul(&[pattern, 40])?]).ok_or_else(too_big)?)
        }
        ("transformer", &[batch, seq, layers, d_model]) => transformer(batch, seq, layers, d_model).ok_or_else(too_big)?,
        // A training step holds the forward's activations, their gradients, the parameters'
        // gradients and the optimizer's arenas (parameters, moments, gradients): about three
        // cached forwards' worth; the host trainer's float64 step likewise.
        ("train_step", &[batch, seq, layers, d_model, _]) => {
            let (buffers, host) = transformer(batch, seq, layers, d_model).ok_or_else(too_big)?;
            (buffers.iter().map(|&b| mul(&[b, 3])).collect::<Result<_>>()?, mul(&[host, 3])?)
        }
        (_, shape) => {
            let count = mul(shape)?;
            (vec![count, count], mul(&[count, 20])?)
        }
    };
    let largest = buffers.iter().copied().max().unwrap_or(0).checked_mul(4).ok_or_else(too_big)?;
    let mut device = 0u64;
    for b in &buffers {
        device = b.checked_mul(4).and_then(|x| x.checked_add(PER_BUFFER)).and_then(|x| x.checked_add(device)).ok_or_else(too_big)?;
    }
    Ok(Needs { largest_buffer: largest, device, host })
}

fn sum(xs: &[u64]) -> Option<u64> {
    xs.iter().try_fold(0u64, |a, &x| a.checked_add(x))
}

/// The transformer case's buffers (weights and the activations of a run that caches every hook)
/// and host bytes (weights in float32 and float64, the host forward's activations in float64).
fn transformer(batch: u64, seq: u64, layers: u64, dm: u64) -> Option<(Vec<u64>, u64)> {
    let heads = (dm / 64).max(1);
    let dh = dm / heads;
    let dmlp = dm.checked_mul(4)?;
    let vocab = 61u64;
    let tokens = batch.checked_mul(seq)?;
    let square = batch.checked_mul(heads)?.checked_mul(seq)?.checked_mul(seq)?;
    let proj = heads.checked_mul(dm)?.checked_mul(dh)?;
    let mlp = dm.checked_mul(dmlp)?;
    let mut layer = vec![proj, proj, proj, proj, heads * dh, heads * dh, heads * dh, dm, mlp, mlp, dmlp, dm, dm, dm, dm, dm];
    // Activations of one layer when everything is cached: about ten [B, S, d_model] tensors, two
    // [B, S, d_mlp] and the scores and pattern.
    let resid = tokens.checked_mul(dm)?;
    layer.extend(std::iter::repeat_n(resid, 10));
    layer.extend([tokens.checked_mul(dmlp)?, tokens.checked_mul(dmlp)?, square, square]);
    let per_layer_elements = sum(&layer)?;
    let per_layer_buffers = layer.len() as u64;
    let weights_per_layer = sum(&layer[..16])?;
    let activations_per_layer = sum(&layer[16..])?;
    let mut buffers = vec![vocab.checked_mul(dm)?, seq.checked_mul(dm)?, dm.checked_mul(vocab)?, tokens.checked_mul(vocab)?];
    // One entry per layer would itself be the allocation this check exists to avoid: the layers
    // are summed as counts instead.
    let elements = per_layer_elements.checked_mul(layers)?;
    let overhead_elements = per_layer_buffers.checked_mul(layers)?.checked_mul(PER_BUFFER / 4)?;
    buffers.push(elements.checked_add(overhead_elements)?);
    // The host holds the weights in float32 and float64, and the host forward a layer's
    // activations at a time (twice, for the residual stream it carries).
    let host = weights_per_layer.checked_mul(layers)?.checked_mul(12)?.checked_add(activations_per_layer.checked_mul(16)?)?;
    Some((buffers, host))
}

/// Refuses `case` when a buffer exceeds the device's binding or buffer limit, or when the memory
/// it needs exceeds what the host has available (device memory counted as host memory on CPU
/// adapters).
pub fn check(gpu: &Gpu, case: &Case) -> Result<()> {
    let needs = needs(case)?;
    let limits = gpu.limits();
    let what = || format!("bench {} shape {:?}", case.op, case.shape);
    // The transformer's (and training step's) summed layers are not one buffer; its real largest buffer is checked
    // when it is created.
    if !matches!(case.op, "transformer" | "train_step") {
        for (limit, allowed) in
            [("max_storage_buffer_binding_size", limits.max_storage_buffer_binding_size), ("max_buffer_size", limits.max_buffer_size)]
        {
            if needs.largest_buffer > allowed {
                return Err(Error::Limit { what: format!("{} (a buffer)", what()), limit, needed: needs.largest_buffer, allowed });
            }
        }
    }
    let cpu = gpu.adapter_info().device_type == wgpu::DeviceType::Cpu;
    let on_host = if cpu { needs.host.saturating_add(needs.device) } else { needs.host };
    if let Some(available) = available_memory() {
        if on_host > available {
            return Err(Error::Input(format!(
                "{} needs about {} MiB of host memory but {} MiB are available",
                what(),
                on_host >> 20,
                available >> 20
            )));
        }
    }
    Ok(())
}

/// The host's available memory (Linux: `MemAvailable` of /proc/meminfo), if it can be known.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}
