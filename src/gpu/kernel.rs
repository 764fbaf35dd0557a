//! Kernel objects: one compute pipeline with its bind-group layout and the Rust type of its
//! uniform `Params`, built once per [`Gpu`] (the pipeline cache makes [`Gpu::kernel`] cheap after
//! the first call) and launched into a caller's encoder.
//!
//! Every shaderlens shader binds the uniform `params` at binding 0 and its storage buffers at
//! bindings 1, 2, … in order. Launching allocates nothing in a steady state: the uniform buffer
//! is found by content and the bind group by (pipeline, buffers) in the `Gpu`'s caches
//! (`cache.rs`), so a second forward pass of the same shapes creates no buffer and no bind group.
//! The `Params` type parameter ties each kernel to its struct, whose layout a test checks against
//! the WGSL with naga's layouter (`tests/params_layout.rs`).

use std::marker::PhantomData;

use super::Gpu;
use crate::error::Result;

/// A compiled kernel: pipeline, bind-group layout, and the `Params` struct it takes.
pub struct Kernel<P> {
    name: &'static str,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    _params: PhantomData<fn(&P)>,
}

impl<P> Clone for Kernel<P> {
    fn clone(&self) -> Self {
        Self { name: self.name, pipeline: self.pipeline.clone(), layout: self.layout.clone(), _params: PhantomData }
    }
}

impl<P> std::fmt::Debug for Kernel<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").field("entry", &self.name).finish()
    }
}

impl<P: bytemuck::Pod> Kernel<P> {
    /// Wraps a pipeline of entry point `name`.
    pub(crate) fn new(name: &'static str, pipeline: wgpu::ComputePipeline, layout: wgpu::BindGroupLayout) -> Self {
        Self { name, pipeline, layout, _params: PhantomData }
    }

    /// The entry point's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Records one dispatch of `workgroups` workgroups into `encoder` with `params` at binding 0
    /// and `buffers` at bindings 1.. (nothing is submitted).
    pub fn record(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        params: &P,
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) {
        gpu.record_dispatch(encoder, &self.pipeline, &self.layout, bytemuck::bytes_of(params), buffers, workgroups);
    }
}

impl Gpu {
    /// The kernel for `entry` in `shader` with the given override constants, compiled on first use.
    pub fn kernel<P: bytemuck::Pod>(
        &self,
        shader: super::Shader,
        entry: &'static str,
        constants: &[(&'static str, u64)],
    ) -> Result<Kernel<P>> {
        let (pipeline, layout) = self.pipeline(shader, entry, constants)?;
        Ok(Kernel::new(entry, pipeline, layout))
    }
}
