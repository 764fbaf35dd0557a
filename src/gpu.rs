//! The GPU context: adapter choice, device, limits, the pipeline cache and the one readback helper.
//!
//! [`Gpu::new`] picks an adapter the way wgpu programs conventionally do, honouring
//! `WGPU_BACKEND`, `WGPU_ADAPTER_NAME` and `WGPU_POWER_PREF` (note that `wgpu::Instance::default()`
//! reads none of them). [`Gpu::from_device`] wraps a device that a wgpu application already owns:
//! shaderlens never assumes it owns the device, it only records into encoders and submits its own
//! convenience work.
//!
//! Pipelines are compiled once per `Gpu` and kept in a cache keyed by shader, entry point and
//! override constants, so a kernel called a million times compiles once.
//!
//! Nothing wgpu reports aborts the process: work runs inside error scopes ([`Gpu::scoped`]),
//! errors outside them go to stderr, and a lost device makes every later call return
//! `Error::Gpu("device lost: …")`. `Gpu` is `Send + Sync`; on the GL backend its calls take
//! turns on one lock (see `turn.rs`), because GL has a single context that wgpu gives up waiting
//! for after a few seconds.

mod cache;
mod kernel;
pub mod layout;
pub mod shaders;
mod turn;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
pub use kernel::Kernel;
pub(crate) use turn::TurnGuard;
use turn::Turn;

/// How to get an adapter when none can be had; part of every "no adapter" message.
pub const NO_ADAPTER_HELP: &str = "shaderlens needs a wgpu adapter (Vulkan, Metal, DX12 or GL). \
On Linux without a GPU, install Mesa's CPU Vulkan driver lavapipe: \
`apt-get install -y mesa-vulkan-drivers` (or `WGPU_BACKEND=gl` with Mesa's llvmpipe: \
`apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri`). \
WGPU_BACKEND, WGPU_ADAPTER_NAME and WGPU_POWER_PREF choose among adapters.";

/// How long [`Gpu::read_bytes`] waits for a mapping callback after the GPU finished the copy.
const READBACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A WGSL shader known to shaderlens: a name for the cache and error messages, and its source.
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    /// File stem in `shaders/`, e.g. `"matmul"`.
    pub name: &'static str,
    /// The WGSL text, included at compile time.
    pub source: &'static str,
}

/// What makes a pipeline variant: shader, entry point and override constants.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PipelineKey {
    shader: &'static str,
    entry: &'static str,
    constants: Vec<(&'static str, u64)>,
}

/// How [`Gpu::with_options`] opens a device.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// The limits to request; `None` asks for the adapter's own. Lower limits (each within the
    /// adapter's) make a device that refuses what a smaller GPU would, e.g. for tests.
    pub limits: Option<wgpu::Limits>,
    /// Whether calls from several threads take turns on one lock: `None` serialises on the GL
    /// backend only (one GL context), `Some(true)` always, `Some(false)` never.
    pub serialize: Option<bool>,
}

/// A device and queue plus what shaderlens needs to dispatch on them.
///
/// `Gpu` is `Send + Sync`: share one across threads behind an `Arc`.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    description: String,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    pipelines: Mutex<HashMap<PipelineKey, (wgpu::ComputePipeline, wgpu::BindGroupLayout)>>,
    caches: cache::Caches,
    tune: crate::tune::TuneCache,
    /// Why the device was lost, once it has been.
    lost: Arc<Mutex<Option<String>>>,
    turn: Turn,
    dispatches: AtomicU64,
    submits: AtomicU64,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu").field("adapter", &self.description).finish()
    }
}

impl Gpu {
    /// Opens a device on the adapter that the environment selects.
    ///
    /// `WGPU_BACKEND` (e.g. `vulkan`, `gl`, `metal`, `dx12`, comma-separated) limits the backends,
    /// `WGPU_ADAPTER_NAME` picks the first adapter whose name contains it (case-insensitive), and
    /// `WGPU_POWER_PREF` (`low`, `high`, `none`) guides the default choice. The device gets the
    /// adapter's real limits, not WebGPU's defaults, so that large buffers work where the hardware
    /// allows.
    pub fn new() -> Result<Self> {
        Self::with_options(GpuOptions::default())
    }

    /// [`Gpu::new`] with the given limits instead of the adapter's (see [`GpuOptions::limits`]).
    pub fn with_limits(limits: wgpu::Limits) -> Result<Self> {
        Self::with_options(GpuOptions { limits: Some(limits), ..GpuOptions::default() })
    }

    /// [`Gpu::new`] with options.
    pub fn with_options(options: GpuOptions) -> Result<Self> {
        pollster::block_on(Self::open(options))
    }

    /// The async form of [`Gpu::new`], for applications that already run an executor.
    pub async fn new_async() -> Result<Self> {
        Self::open(GpuOptions::default()).await
    }

    async fn open(options: GpuOptions) -> Result<Self> {
        let adapter = choose_adapter().await?;
        let info = adapter.get_info();
        let description = describe(&info);
        // Timestamp queries let `bench` and the autotuner time kernels on the GPU's own clock;
        // requested only where the adapter has them (they cost nothing unless used).
        let desc = wgpu::DeviceDescriptor {
            label: Some("shaderlens"),
            required_features: adapter.features() & wgpu::Features::TIMESTAMP_QUERY,
            required_limits: options.limits.unwrap_or_else(|| adapter.limits()),
            ..Default::default()
        };
        let (device, queue) = adapter
            .request_device(&desc)
            .await
            .map_err(|source| Error::RequestDevice { adapter: description.clone(), source })?;
        // Errors outside our own error scopes (e.g. a caller's misuse of a shared encoder) must not
        // abort the process; they are reported to stderr instead of wgpu's default panic.
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            eprintln!("shaderlens: uncaptured wgpu error: {e}");
        }));
        let gpu = Self::assemble(device, queue, description, info, options.serialize);
        let lost = gpu.lost.clone();
        gpu.device.set_device_lost_callback(move |reason, message| {
            let mut lost = lost.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *lost = Some(format!("{reason:?}: {message}"));
        });
        Ok(gpu)
    }

    /// Wraps a device and queue that a wgpu application already owns.
    ///
    /// shaderlens records into the caller's encoders and creates its own buffers and pipelines on
    /// this device; it installs neither an uncaptured-error handler nor a device-lost callback
    /// (those are the application's).
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        let info = device.adapter_info();
        let description = describe(&info);
        Self::assemble(device, queue, description, info, None)
    }

    fn assemble(device: wgpu::Device, queue: wgpu::Queue, description: String, info: wgpu::AdapterInfo, serialize: Option<bool>) -> Self {
        let limits = device.limits();
        let gl = info.backend == wgpu::Backend::Gl;
        let tune = crate::tune::TuneCache::from_env(crate::tune::persist::TuneFile::from_env(tune_device_key(&description, &info)));
        Self {
            device,
            queue,
            description,
            info,
            limits,
            pipelines: Mutex::new(HashMap::new()),
            caches: cache::Caches::default(),
            tune,
            lost: Arc::new(Mutex::new(None)),
            turn: Turn::new(serialize.unwrap_or(gl)),
            dispatches: AtomicU64::new(0),
            submits: AtomicU64::new(0),
        }
    }

    /// `Err(Error::Gpu("device lost: …"))` once the device has been lost (driver reset, removed
    /// GPU, `Device::destroy`), so that no call records onto a dead device.
    pub fn check_alive(&self) -> Result<()> {
        let lost = self.lost.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match lost.as_ref() {
            Some(reason) => Err(Error::Gpu(format!("device lost: {reason}"))),
            None => Ok(()),
        }
    }

    /// Takes this thread's turn on the device (a no-op unless calls are serialised).
    pub(crate) fn turn(&self) -> TurnGuard<'_> {
        self.turn.take()
    }

    /// Whether calls from several threads take turns (on GL by default; see [`GpuOptions`]).
    pub fn serialized(&self) -> bool {
        self.turn.enabled()
    }

    /// How many compute dispatches shaderlens has recorded on this `Gpu` (for tests that check
    /// that empty inputs dispatch nothing, and for profiling).
    pub fn dispatch_count(&self) -> u64 {
        self.dispatches.load(Ordering::Relaxed)
    }

    /// How many command submissions shaderlens has made on this `Gpu` (readbacks included), for
    /// profiling: `examples/train_step.rs` reports it per training update.
    pub fn submit_count(&self) -> u64 {
        self.submits.load(Ordering::Relaxed)
    }

    /// How many buffers shaderlens has created on this `Gpu` (tensors, uniforms, staging and
    /// scratch buffers). A steady-state forward pass (same shapes, second call onward) creates
    /// none: tests check it with this counter.
    pub fn buffers_created(&self) -> u64 {
        self.caches.buffers_created.load(Ordering::Relaxed)
    }

    /// How many bind groups shaderlens has created on this `Gpu` (zero per steady-state dispatch).
    pub fn bind_groups_created(&self) -> u64 {
        self.caches.bind_groups_created.load(Ordering::Relaxed)
    }

    /// Creates a buffer, counting it in [`Gpu::buffers_created`] (every buffer shaderlens makes
    /// goes through here).
    pub(crate) fn create_buffer(&self, desc: &wgpu::BufferDescriptor<'_>) -> wgpu::Buffer {
        self.caches.buffers_created.fetch_add(1, Ordering::Relaxed);
        self.device.create_buffer(desc)
    }

    /// Runs `f` with submissions not counted as epochs of the bind-group cache (see `cache.rs`):
    /// for timing and autotuning, which submit many times in the middle of other work.
    pub(crate) fn without_epochs<T>(&self, f: impl FnOnce() -> T) -> T {
        self.caches.epoch_holds.fetch_add(1, Ordering::Relaxed);
        let out = f();
        self.caches.epoch_holds.fetch_sub(1, Ordering::Relaxed);
        out
    }

    /// The scratch tensor called `name` of `shape`, made on first use and when the shape changes.
    /// Its contents are whatever the last user left: only for kernels that write before they read.
    pub(crate) fn scratch(&self, name: &str, shape: &[usize]) -> Result<crate::tensor::GpuTensor> {
        let mut map = self.caches.scratch.lock().map_err(|_| Error::Gpu("scratch cache poisoned".into()))?;
        if let Some(t) = map.get(name).filter(|t| t.shape() == shape) {
            return Ok(t.clone());
        }
        let t = crate::tensor::GpuTensor::empty(self, shape, name)?;
        map.insert(name.to_string(), t.clone());
        Ok(t)
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The device's limits (the adapter's own, when opened by [`Gpu::new`]).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The adapter's name, vendor, device type and backend as wgpu reports them.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The autotuner's settings and remembered winners for this device (see [`crate::tune`]).
    pub fn tune(&self) -> &crate::tune::TuneCache {
        &self.tune
    }

    /// A one-line description of the adapter and backend, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)`.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Returns the cached pipeline for `entry` in `shader` with the given override constants,
    /// compiling it on first use.
    pub(crate) fn pipeline(
        &self,
        shader: Shader,
        entry: &'static str,
        constants: &[(&'static str, u64)],
    ) -> Result<(wgpu::ComputePipeline, wgpu::BindGroupLayout)> {
        let key = PipelineKey { shader: shader.name, entry, constants: constants.to_vec() };
        let _turn = self.turn();
        let mut cache = self.pipelines.lock().map_err(|_| Error::Gpu("pipeline cache poisoned".into()))?;
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let pipeline = self.scoped(|| {
            let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader.name),
                source: wgpu::ShaderSource::Wgsl(shader.source.into()),
            });
            let consts: Vec<(&str, f64)> = constants.iter().map(|&(n, v)| (n, v as f64)).collect();
            let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &consts,
                    ..Default::default()
                },
                cache: None,
            });
            let layout = pipeline.get_bind_group_layout(0);
            Ok((pipeline, layout))
        })
        .map_err(|e| Error::Gpu(format!("compiling {}.wgsl entry {entry}: {e}", shader.name)))?;
        cache.insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// Runs `f` inside error scopes for validation, out-of-memory and internal errors, turning
    /// anything wgpu reports into an [`Error::Gpu`] instead of a panic.
    /// It also takes this thread's turn for the whole of `f` (see [`GpuOptions::serialize`]), and
    /// fails at once when the device is lost.
    pub fn scoped<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let _turn = self.turn();
        self.check_alive()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let errors = [validation.pop(), internal.pop(), oom.pop()].map(pollster::block_on);
        let error = errors.into_iter().flatten().next();
        if error.is_some() || out.is_err() {
            // A lost device shows up first as errors on its objects; wgpu tells the device-lost
            // callback only when it next polls. Poll, so that the error says what happened.
            let _ = self.device.poll(wgpu::PollType::Poll);
            self.check_alive()?;
        }
        if let Some(e) = error {
            return Err(Error::Gpu(e.to_string()));
        }
        out
    }

    /// The uniform buffer holding `bytes` (a `#[repr(C)]` struct that matches a WGSL struct),
    /// shared by every dispatch with the same params (uniforms are never written twice).
    fn uniform(&self, bytes: &[u8]) -> wgpu::Buffer {
        self.caches.uniform(bytes, || self.buffer_with("shaderlens params", bytes, wgpu::BufferUsages::UNIFORM))
    }

    /// A storage buffer holding `contents` that never changes, shared by every caller asking for
    /// the same bytes (e.g. matmul's batch offsets), so that steady-state calls create nothing.
    pub(crate) fn constant_storage(&self, contents: &[u8]) -> wgpu::Buffer {
        let mut key = b"storage:".to_vec();
        key.extend_from_slice(contents);
        self.caches.uniform(&key, || self.buffer_with("shaderlens constants", contents, wgpu::BufferUsages::STORAGE))
    }

    /// A buffer holding `contents` (a multiple of 4 bytes), written through the queue before the
    /// next submission. Not wgpu's `create_buffer_init`: that panics when the device is lost,
    /// where this only makes an error for the surrounding scope.
    pub(crate) fn buffer_with(&self, label: &str, contents: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
        let _turn = self.turn();
        let buffer = self.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (contents.len() as u64).max(4),
            usage: usage | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if !contents.is_empty() {
            self.queue.write_buffer(&buffer, 0, contents);
        }
        buffer
    }

    /// Records one dispatch of `pipeline` with the conventional bindings of every shaderlens
    /// shader: binding 0 is the uniform `params`, bindings 1.. are the storage `buffers` in order.
    /// The uniform buffer and the bind group come from the caches (see [`Kernel`]).
    pub(crate) fn record_dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        layout: &wgpu::BindGroupLayout,
        params: &[u8],
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) {
        let _turn = self.turn();
        self.dispatches.fetch_add(1, Ordering::Relaxed);
        let params = self.uniform(params);
        let mut all = Vec::with_capacity(buffers.len() + 1);
        all.push(params);
        all.extend(buffers.iter().map(|&b| b.clone()));
        let key = cache::BindKey { pipeline: pipeline.clone(), buffers: all };
        let bind_group = self.caches.bind_group(key.clone(), || {
            self.caches.bind_groups_created.fetch_add(1, Ordering::Relaxed);
            let entries: Vec<wgpu::BindGroupEntry<'_>> = key
                .buffers
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
                .collect();
            self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout, entries: &entries })
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
    }

    /// A new command encoder on this device.
    pub fn encoder(&self) -> wgpu::CommandEncoder {
        self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("shaderlens") })
    }

    /// Submits `encoder` and waits for the GPU to finish it.
    pub fn submit_and_wait(&self, encoder: wgpu::CommandEncoder) -> Result<()> {
        let _turn = self.turn();
        self.check_alive()?;
        let index = self.queue.submit([encoder.finish()]);
        self.submits.fetch_add(1, Ordering::Relaxed);
        self.caches.next_epoch();
        self.device
            .poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: None })
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
        Ok(())
    }

    /// Copies `size` bytes of `buffer` (which needs `COPY_SRC`) back to the host.
    pub fn read_bytes(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let mut all = self.read_many(&[(buffer, size)])?;
        all.pop().ok_or_else(|| Error::Gpu("readback returned nothing".into()))
    }

    /// Copies the first `size` bytes of each buffer (each needs `COPY_SRC`; sizes multiples of 4)
    /// back to the host with one submission and one wait.
    ///
    /// This is the one place that maps buffers: `map_async` and `poll` change with most wgpu
    /// releases, so they live here and nowhere else.
    pub fn read_many(&self, buffers: &[(&wgpu::Buffer, u64)]) -> Result<Vec<Vec<u8>>> {
        let _turn = self.turn();
        self.check_alive()?;
        let mut encoder = self.encoder();
        let mut staging = Vec::with_capacity(buffers.len());
        for &(buffer, size) in buffers {
            if size == 0 {
                staging.push(None);
                continue;
            }
            let target = self.caches.take_staging(size).unwrap_or_else(|| {
                self.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("shaderlens readback"),
                    size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            });
            encoder.copy_buffer_to_buffer(buffer, 0, &target, 0, size);
            staging.push(Some(target));
        }
        self.submit_and_wait(encoder)?;
        let (sender, receiver) = std::sync::mpsc::channel();
        let mut pending = 0;
        for target in staging.iter().flatten() {
            let sender = sender.clone();
            target.map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = sender.send(r);
            });
            pending += 1;
        }
        drop(sender);
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for readback: {e}")))?;
        self.check_alive()?;
        // A callback runs in whichever thread's poll gets to it first: maybe another one, a
        // moment after our own poll returned. Wait for each, polling again now and then, but do
        // not hang if the device is lost (a callback may then never run).
        let deadline = std::time::Instant::now() + READBACK_TIMEOUT;
        let mut mapped = 0;
        while mapped < pending {
            match receiver.recv_timeout(std::time::Duration::from_millis(20)) {
                Ok(result) => {
                    result.map_err(|e| Error::Gpu(format!("mapping readback buffer: {e}")))?;
                    mapped += 1;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    self.check_alive()?;
                    return Err(Error::Gpu("readback callback was dropped without running".into()));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    self.check_alive()?;
                    if std::time::Instant::now() > deadline {
                        return Err(Error::Gpu(format!("readback did not complete within {READBACK_TIMEOUT:?}")));
                    }
                    let _ = self.device.poll(wgpu::PollType::Poll);
                }
            }
        }
        staging
            .iter()
            .map(|target| match target {
                None => Ok(Vec::new()),
                Some(target) => {
                    let bytes = target
                        .get_mapped_range(..)
                        .map_err(|e| Error::Gpu(format!("reading mapped buffer: {e}")))?
                        .to_vec();
                    target.unmap();
                    self.caches.give_staging(target.clone());
                    Ok(bytes)
                }
            })
            .collect()
    }

    /// Workgroup counts for `count` workgroups laid out on a 2-D grid, because one dimension
    /// holds at most `max_compute_workgroups_per_dimension` (65535 on most adapters).
    ///
    /// Shaders recover the linear index as `wg.y * num_workgroups.x + wg.x` and ignore indices
    /// at or past `count`.
    pub(crate) fn grid(&self, count: u64, what: &str) -> Result<[u32; 3]> {
        let max = u64::from(self.limits.max_compute_workgroups_per_dimension).max(1);
        if count == 0 {
            return Ok([0, 1, 1]);
        }
        let x = count.min(max);
        let y = count.div_ceil(x);
        if y > max {
            return Err(Error::Limit {
                what: what.to_string(),
                limit: "max_compute_workgroups_per_dimension (squared)",
                needed: count,
                allowed: max * max,
            });
        }
        Ok([x as u32, y as u32, 1])
    }
}

/// A readable one-line description of an adapter: name, backend, device type and driver.
/// The key this adapter's autotune winners are kept under on disk: its description and ids, and
/// the source of every kernel the autotuner chooses among.
fn tune_device_key(description: &str, info: &wgpu::AdapterInfo) -> String {
    let tuned = [shaders::MATMUL.source, shaders::MATMUL_TILED.source];
    crate::tune::persist::device_key(description, info.vendor, info.device, &tuned)
}

fn describe(info: &wgpu::AdapterInfo) -> String {
    let driver: Vec<&str> = [info.driver.as_str(), info.driver_info.as_str()]
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let driver = if driver.is_empty() { String::new() } else { format!(", driver {}", driver.join(" ")) };
    format!("{} ({:?} backend, {:?}{driver})", info.name, info.backend, info.device_type)
}

/// Chooses the adapter as `WGPU_BACKEND`, `WGPU_ADAPTER_NAME` and `WGPU_POWER_PREF` say.
///
/// Without `WGPU_BACKEND`, the primary backends (Vulkan, Metal, DX12) are searched first and GL
/// only when they have no adapter: probing GL's EGL displays is slow and noisy on headless Linux.
async fn choose_adapter() -> Result<wgpu::Adapter> {
    let requested = std::env::var("WGPU_BACKEND").ok();
    let searches = match wgpu::Backends::from_env() {
        Some(b) if b.is_empty() => {
            return Err(Error::NoAdapter(format!(
                "WGPU_BACKEND={:?} names no backend wgpu knows (use vulkan, metal, dx12 or gl). {NO_ADAPTER_HELP}",
                requested.unwrap_or_default()
            )))
        }
        Some(b) => vec![b],
        None => vec![wgpu::Backends::PRIMARY, wgpu::Backends::all()],
    };
    let backend_note = requested.map(|b| format!(" with WGPU_BACKEND={b}")).unwrap_or_default();
    let mut seen: Vec<String> = Vec::new();
    for backends in searches {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends,
            ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
        });
        let adapters = instance.enumerate_adapters(backends).await;
        if adapters.is_empty() {
            continue;
        }
        if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
            let wanted_lower = wanted.to_lowercase();
            for adapter in adapters {
                let info = adapter.get_info();
                if info.name.to_lowercase().contains(&wanted_lower) {
                    return Ok(adapter);
                }
                let name = describe(&info);
                if !seen.contains(&name) {
                    seen.push(name);
                }
            }
            continue;
        }
        let power_preference = wgpu::PowerPreference::from_env().unwrap_or_default();
        return instance
            .request_adapter(&wgpu::RequestAdapterOptions { power_preference, ..Default::default() })
            .await
            .map_err(|e| Error::NoAdapter(format!("no suitable GPU adapter{backend_note} ({e}). {NO_ADAPTER_HELP}")));
    }
    match std::env::var("WGPU_ADAPTER_NAME") {
        Ok(wanted) if !seen.is_empty() => Err(Error::NoAdapter(format!(
            "WGPU_ADAPTER_NAME={wanted:?} matches none of the adapters{backend_note}: {}. {NO_ADAPTER_HELP}",
            seen.join("; ")
        ))),
        _ => Err(Error::NoAdapter(format!("no GPU adapter found{backend_note}. {NO_ADAPTER_HELP}"))),
    }
}
