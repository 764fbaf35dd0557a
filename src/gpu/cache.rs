//! What a `Gpu` keeps between dispatches so that a steady state allocates nothing: uniform
//! buffers by content, bind groups by (pipeline, buffers), readback staging buffers by size, and
//! named scratch tensors; plus the counters that tests read to check it.
//!
//! - **Uniforms** are immutable and keyed by their bytes: the second forward pass of a model has
//!   the same `Params` as the first, so it finds every buffer already written (no write, no new
//!   buffer). Two dispatches in one encoder with different params get different buffers, so no
//!   write can overtake a dispatch that still needs the old value.
//! - **Bind groups** are keyed by the pipeline and every buffer bound (the uniform included). An
//!   entry holds clones of those buffer handles, so no buffer's identity can be reused while the
//!   entry exists; the cost is that an entry keeps its buffers alive. Entries unused for
//!   [`IDLE_EPOCHS`] submissions (an epoch is one [`super::Gpu::submit_and_wait`]) are dropped, and
//!   the cache never holds more than [`MAX_BIND_GROUPS`] (the least recently used go first).
//! - **Staging** buffers for readback are pooled by size (at most [`MAX_STAGING_BYTES`] in all).
//! - **Scratch** tensors (attention's accumulators, packed operands, stand-ins for absent optional
//!   inputs) are one per name, replaced when the size changes. Reusing one across dispatches of one
//!   encoder is safe: wgpu orders the passes of an encoder, and submissions, by their usage.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Bind groups kept at most.
pub(crate) const MAX_BIND_GROUPS: usize = 4096;
/// Submissions after which an unused bind group is dropped.
pub(crate) const IDLE_EPOCHS: u64 = 8;
/// Uniform buffers kept at most (the cache is emptied when it would hold more).
const MAX_UNIFORMS: usize = 16384;
/// Bytes of idle readback staging buffers kept at most.
pub(crate) const MAX_STAGING_BYTES: u64 = 256 << 20;

/// What identifies a bind group: the pipeline (whose own layout it was made for) and the buffers
/// at bindings 0, 1, … in order.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct BindKey {
    pub pipeline: wgpu::ComputePipeline,
    pub buffers: Vec<wgpu::Buffer>,
}

/// The caches and counters of one `Gpu`.
#[derive(Default)]
pub(crate) struct Caches {
    uniforms: Mutex<HashMap<Vec<u8>, wgpu::Buffer>>,
    bind_groups: Mutex<HashMap<BindKey, (wgpu::BindGroup, u64)>>,
    staging: Mutex<(HashMap<u64, Vec<wgpu::Buffer>>, u64)>,
    pub scratch: Mutex<HashMap<String, crate::tensor::GpuTensor>>,
    epoch: AtomicU64,
    /// While above 0, submissions do not count as epochs (timing and autotuning submit many
    /// times in a row; they must not age out the bind groups of the work they interrupt).
    pub epoch_holds: AtomicU64,
    pub buffers_created: AtomicU64,
    pub bind_groups_created: AtomicU64,
}

impl Caches {
    /// The uniform buffer holding `bytes`, made with `make` on first use.
    pub fn uniform(&self, bytes: &[u8], make: impl FnOnce() -> wgpu::Buffer) -> wgpu::Buffer {
        let mut map = self.uniforms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = map.get(bytes) {
            return b.clone();
        }
        if map.len() >= MAX_UNIFORMS {
            map.clear();
        }
        let b = make();
        map.insert(bytes.to_vec(), b.clone());
        b
    }

    /// The bind group for `key`, made with `make` on first use.
    pub fn bind_group(&self, key: BindKey, make: impl FnOnce() -> wgpu::BindGroup) -> wgpu::BindGroup {
        let now = self.epoch.load(Ordering::Relaxed);
        let mut map = self.bind_groups.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((group, used)) = map.get_mut(&key) {
            *used = now;
            return group.clone();
        }
        if map.len() >= MAX_BIND_GROUPS {
            let mut ages: Vec<u64> = map.values().map(|&(_, used)| used).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            map.retain(|_, (_, used)| *used > cut);
        }
        let group = make();
        map.insert(key, (group.clone(), now));
        group
    }

    /// Marks a submission: bind groups idle for [`IDLE_EPOCHS`] submissions are dropped (with the
    /// buffers they kept alive).
    pub fn next_epoch(&self) {
        if self.epoch_holds.load(Ordering::Relaxed) > 0 {
            return;
        }
        let now = self.epoch.fetch_add(1, Ordering::Relaxed) + 1;
        let mut map = self.bind_groups.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (_, used)| now.saturating_sub(*used) <= IDLE_EPOCHS);
    }

    /// A pooled staging buffer of `size` bytes, if one is idle.
    pub fn take_staging(&self, size: u64) -> Option<wgpu::Buffer> {
        let mut pool = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        let buffer = pool.0.get_mut(&size)?.pop()?;
        pool.1 -= size;
        Some(buffer)
    }

    /// Returns an unmapped staging buffer to the pool (or drops it when the pool is full).
    pub fn give_staging(&self, buffer: wgpu::Buffer) {
        let size = buffer.size();
        let mut pool = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        if pool.1 + size <= MAX_STAGING_BYTES {
            pool.1 += size;
            pool.0.entry(size).or_default().push(buffer);
        }
    }
}
