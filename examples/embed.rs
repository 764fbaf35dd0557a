//! Embedding shaderlens in a wgpu application that owns its device.
//!
//! The application opens its own adapter and device (as any wgpu app does), hands clones of them to
//! [`shaderlens::Gpu::from_device`], uploads a tensor, records two kernels into ITS OWN command
//! encoder (no readback in between: the intermediate stays on the GPU), submits once, and reads the
//! result. Run it with `cargo run --release --example embed`.

use ndarray::{Array, IxDyn};
use shaderlens::ops::gelu::{self, Gelu};
use shaderlens::{Gpu, GpuTensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The application's own device: shaderlens does not need to own it.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
        .map_err(|e| format!("{e}: {}", shaderlens::gpu::NO_ADAPTER_HELP))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))?;
    let gpu = Gpu::from_device(device.clone(), queue.clone());

    // Work recorded into the application's encoder, submitted by the application.
    let x = Array::linspace(-3.0f32, 3.0, 7).into_shape_with_order(IxDyn(&[7]))?;
    let x = GpuTensor::upload(&gpu, x.view(), "x")?;
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("app") });
    let once = gelu::record(&gpu, &mut encoder, Gelu::Erf, &x)?;
    let twice = gelu::record(&gpu, &mut encoder, Gelu::Erf, &once)?;
    queue.submit([encoder.finish()]);

    let result = twice.read(&gpu)?;
    println!("adapter: {}", gpu.description());
    println!("gelu(gelu(x)) = {result}");
    Ok(())
}
