//! Every WGSL shader in `shaders/` must validate with naga and translate to every backend wgpu
//! targets: SPIR-V (Vulkan), MSL (Metal), HLSL (DX12) and GLSL ES 3.1 (GL). This checks Metal and
//! DX12 portability on a Linux machine that has neither.

use std::path::Path;

use naga::back;
use naga::valid::{Capabilities, ValidationFlags, Validator};

/// (file name, WGSL source as the crate compiles it) for every shader.
///
/// WGSL has no includes: a file `<prefix>_common.wgsl` holds declarations that the crate prepends
/// to each `<prefix>*.wgsl` (the longest matching prefix wins), so it is checked as part of them.
fn shaders() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("shaders/ is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no shaders found in {}", dir.display());
    let commons: Vec<(String, String)> = files
        .iter()
        .filter_map(|(name, src)| name.strip_suffix("_common.wgsl").map(|prefix| (prefix.to_string(), src.clone())))
        .collect();
    files
        .into_iter()
        .filter(|(name, _)| !name.ends_with("_common.wgsl"))
        .map(|(name, src)| {
            let common = commons.iter().filter(|(prefix, _)| name.starts_with(prefix.as_str())).max_by_key(|(prefix, _)| prefix.len());
            match common {
                Some((_, common)) => (name, format!("{common}{src}")),
                None => (name, src),
            }
        })
        .collect()
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
