//! Every WGSL shader in `shaders/` must validate with naga and translate to every backend wgpu
//! targets: SPIR-V (Vulkan), MSL (Metal), HLSL (DX12) and GLSL ES 3.1 (GL). This checks Metal and
//! DX12 portability on a Linux machine that has neither.

use std::path::Path;

use naga::back;
use naga::valid::{Capabilities, ValidationFlags, Validator};

/// (kernel name, WGSL source as the crate compiles it) for every kernel, from the crate's one
/// table of shaders (WGSL has no includes: shared pieces are prepended, see `gpu::shaders`).
fn shaders() -> Vec<(String, String)> {
    shaderlens::gpu::shaders::ALL.iter().map(|s| (format!("{}.wgsl", s.name), s.source.to_string())).collect()
}

/// Every file in `shaders/` is compiled: it is a kernel of the table, or a piece that some
/// kernel's assembled source contains.
#[test]
fn every_wgsl_file_is_compiled() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let all = shaderlens::gpu::shaders::ALL;
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("shaders/ is readable") {
        let path = entry.expect("directory entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()).filter(|_| path.extension().is_some_and(|x| x == "wgsl")) else {
            continue;
        };
        count += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let used = all.iter().any(|s| s.name == stem) || all.iter().any(|s| s.source.contains(text.as_str()));
        assert!(used, "shaders/{stem}.wgsl is neither a kernel in gpu::shaders::ALL nor a piece of one");
    }
    assert!(count >= all.len(), "found {count} files for {} kernels", all.len());
}

/// Parses and validates with the capabilities every wgpu adapter has (no optional features), then
/// resolves override constants to their defaults as a pipeline without overrides would.
fn validated(name: &str, source: &str) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    let info = Validator::new(ValidationFlags::all(), Capabilities::empty())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    let (module, info) = back::pipeline_constants::process_overrides(&module, &info, None, &back::PipelineConstants::default())
        .unwrap_or_else(|e| panic!("{name}: overrides: {e}"));
    (module.into_owned(), info.into_owned())
}

#[test]
fn every_shader_translates_to_every_backend() {
    for (name, source) in shaders() {
        let (module, info) = validated(&name, &source);
        back::spv::write_vec(&module, &info, &back::spv::Options::default(), None)
            .unwrap_or_else(|e| panic!("{name}: SPIR-V: {e}"));
        back::msl::write_string(&module, &info, &back::msl::Options::default(), &back::msl::PipelineOptions::default())
            .unwrap_or_else(|e| panic!("{name}: MSL: {e}"));
        let mut hlsl = String::new();
        back::hlsl::Writer::new(&mut hlsl, &back::hlsl::Options::default(), &back::hlsl::PipelineOptions::default())
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{name}: HLSL: {e}"));
        let entry_points: Vec<String> = module.entry_points.iter().map(|e| e.name.clone()).collect();
        assert!(!entry_points.is_empty(), "{name} has no entry point");
        for entry_point in entry_points {
            let options = back::glsl::Options {
                version: back::glsl::Version::Embedded { version: 310, is_webgl: false },
                ..Default::default()
            };
            let pipeline = back::glsl::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: entry_point.clone(),
                multiview: None,
            };
            let mut glsl = String::new();
            back::glsl::Writer::new(&mut glsl, &module, &info, &options, &pipeline, naga::proc::BoundsCheckPolicies::default())
                .and_then(|mut w| w.write())
                .unwrap_or_else(|e| panic!("{name}: GLSL ES 3.1, entry {entry_point}: {e}"));
        }
    }
}
