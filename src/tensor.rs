//! GPU-resident float32 tensors: a storage buffer plus a C-order shape.
//!
//! Ops record into a caller's encoder and read and write `GpuTensor`s, so a chain of kernels never
//! leaves the GPU; [`GpuTensor::read`] brings one back as an ndarray array when the caller wants it.

use ndarray::{ArrayD, ArrayViewD, IxDyn};

use crate::error::{element_count, fmt_shape, Error, Result};
use crate::gpu::Gpu;

/// A contiguous, C-order float32 tensor in a GPU storage buffer.
#[derive(Debug, Clone)]
pub struct GpuTensor {
    buffer: wgpu::Buffer,
    shape: Vec<usize>,
}

/// Usages every shaderlens tensor buffer has: bound as storage, copied in and out.
pub const TENSOR_USAGES: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl GpuTensor {
    /// Allocates an uninitialised (zero-filled by wgpu) tensor of `shape`.
    ///
    /// Refuses, before touching the GPU, a tensor whose bytes exceed the device's
    /// `max_storage_buffer_binding_size` or `max_buffer_size`.
    pub fn empty(gpu: &Gpu, shape: &[usize], name: &str) -> Result<Self> {
        let bytes = check_size(gpu, shape, name)?;
        let _turn = gpu.turn();
        gpu.check_alive()?;
        let buffer = gpu.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size: bytes,
            usage: TENSOR_USAGES,
            mapped_at_creation: false,
        });
        Ok(Self { buffer, shape: shape.to_vec() })
    }

    /// Uploads an ndarray array (any layout; it is copied in C order).
    pub fn upload(gpu: &Gpu, array: ArrayViewD<'_, f32>, name: &str) -> Result<Self> {
        let _turn = gpu.turn();
        let tensor = Self::empty(gpu, array.shape(), name)?;
        if !array.is_empty() {
            let data: Vec<f32> = match array.as_slice() {
                Some(s) => s.to_vec(),
                None => array.iter().copied().collect(),
            };
            gpu.queue().write_buffer(&tensor.buffer, 0, bytemuck::cast_slice(&data));
        }
        Ok(tensor)
    }

    /// Checks, without touching the GPU, that a tensor of `shape` fits the device's binding and
    /// buffer limits (the ops check their outputs with it before uploading anything).
    pub fn check_fits(gpu: &Gpu, shape: &[usize], name: &str) -> Result<()> {
        check_size(gpu, shape, name).map(|_| ())
    }

    /// Wraps a buffer the application already owns (it needs `STORAGE`, and `COPY_SRC` to be read
    /// back). Fails if the buffer is smaller than `shape` needs.
    pub fn from_buffer(gpu: &Gpu, buffer: wgpu::Buffer, shape: &[usize], name: &str) -> Result<Self> {
        let needed = check_size(gpu, shape, name)?;
        if buffer.size() < needed {
            return Err(Error::Shape(format!(
                "{name} has shape {} ({needed} bytes) but its buffer holds only {} bytes",
                fmt_shape(shape),
                buffer.size()
            )));
        }
        if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(Error::Input(format!("{name}'s buffer lacks BufferUsages::STORAGE")));
        }
        Ok(Self { buffer, shape: shape.to_vec() })
    }

    /// The tensor's shape, C order.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The storage buffer (to bind it in an application's own passes).
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// The same data viewed with another shape of the same element count (no copy).
    pub fn reshaped(&self, shape: &[usize]) -> Result<Self> {
        if element_count(shape, "the new shape")? != self.len() {
            return Err(Error::Shape(format!(
                "cannot view a tensor of shape {} as {}",
                fmt_shape(&self.shape),
                fmt_shape(shape)
            )));
        }
        Ok(Self { buffer: self.buffer.clone(), shape: shape.to_vec() })
    }

    /// Reads the tensor back to the host. Submits and waits: call it after the work that writes it.
    pub fn read(&self, gpu: &Gpu) -> Result<ArrayD<f32>> {
        let bytes = gpu.read_bytes(&self.buffer, (self.len() * 4) as u64)?;
        let data: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
        ArrayD::from_shape_vec(IxDyn(&self.shape), data).map_err(|e| Error::Shape(e.to_string()))
    }
}

impl GpuTensor {
    /// Reads several tensors back with one submission and one wait (faster than one
    /// [`GpuTensor::read`] each when there are many, as in an activation cache).
    pub fn read_all(gpu: &Gpu, tensors: &[&GpuTensor]) -> Result<Vec<ArrayD<f32>>> {
        let requests: Vec<(&wgpu::Buffer, u64)> = tensors.iter().map(|t| (&t.buffer, (t.len() * 4) as u64)).collect();
        let all = gpu.read_many(&requests)?;
        tensors
            .iter()
            .zip(all)
            .map(|(t, bytes)| {
                let data: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
                ArrayD::from_shape_vec(IxDyn(&t.shape), data).map_err(|e| Error::Shape(e.to_string()))
            })
            .collect()
    }
}

/// Bytes a tensor of `shape` needs (at least 4, since wgpu buffers may not be empty), checked
/// against the device's binding and buffer limits.
fn check_size(gpu: &Gpu, shape: &[usize], name: &str) -> Result<u64> {
    let elements = element_count(shape, name)?;
    // Saturating: a tensor of 2^62 floats needs more bytes than a u64 counts, and more than any
    // device allows either way.
    let bytes = u64::try_from(elements as u128 * 4).unwrap_or(u64::MAX);
    let limits = gpu.limits();
    let what = || format!("{name} of shape {}", fmt_shape(shape));
    if bytes > limits.max_storage_buffer_binding_size {
        return Err(Error::Limit {
            what: what(),
            limit: "max_storage_buffer_binding_size",
            needed: bytes,
            allowed: limits.max_storage_buffer_binding_size,
        });
    }
    if bytes > limits.max_buffer_size {
        return Err(Error::Limit { what: what(), limit: "max_buffer_size", needed: bytes, allowed: limits.max_buffer_size });
    }
    if bytes / 4 > u64::from(u32::MAX) {
        return Err(Error::Limit {
            what: what(),
            limit: "32-bit element indices of the shaders",
            needed: bytes / 4,
            allowed: u64::from(u32::MAX),
        });
    }
    Ok(bytes.max(4))
}
