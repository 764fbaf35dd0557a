//! The environment variables shaderlens and wgpu read, checked up front by name.
//!
//! wgpu ignores a `WGPU_POWER_PREF` it does not know and drops unknown entries from a
//! `WGPU_BACKEND` list, the autotuner read any `SHADERLENS_AUTOTUNE` other than `off`/`0`/`false`
//! as "on", and a forced matmul variant was only checked when a matmul ran, so a typo silently
//! measured or computed something else than asked. [`check`] refuses every value that is not one
//! the code understands, naming the variable and the values it takes; the command line calls it
//! before any work, and library users may too.

use crate::error::{Error, Result};
use crate::ops::matmul::Variant;

/// The variables [`check`] knows, with the values each takes (case-insensitive, trimmed; an empty
/// value is the same as unset).
pub const VARIABLES: &[(&str, &str)] = &[
    ("WGPU_BACKEND", "a comma-separated list of vulkan, metal, dx12, gl"),
    ("WGPU_POWER_PREF", "high, low or none"),
    ("SHADERLENS_AUTOTUNE", "on, off, 1, 0, true or false"),
    ("SHADERLENS_MATMUL_VARIANT", "a matmul variant name"),
    ("SHADERLENS_CLOCK", "wall or timestamp"),
    ("SHADERLENS_BENCH_LARGE", "1 or 0"),
    ("SHADERLENS_TUNE_CACHE", "a file path, or off, 0 or false"),
    ("SHADERLENS_SPLIT_K", "on, off, 1, 0, true or false"),
];

/// Checks every variable of [`VARIABLES`] that is set; the first bad one is an error naming it,
/// its value and the values it takes.
pub fn check() -> Result<()> {
    for (name, _) in VARIABLES {
        if let Some(value) = std::env::var_os(name) {
            let value = value.into_string().map_err(|v| Error::Input(format!("{name}={v:?} is not UTF-8")))?;
            check_one(name, &value)?;
        }
    }
    Ok(())
}

/// Checks one variable's value (an unknown variable name is accepted: it is not ours).
pub fn check_one(name: &str, value: &str) -> Result<()> {
    let v = value.trim().to_ascii_lowercase();
    if v.is_empty() {
        return Ok(());
    }
    let ok = match name {
        "WGPU_BACKEND" => v.split(',').all(|b| {
            matches!(b.trim(), "vulkan" | "vk" | "dx12" | "d3d12" | "metal" | "mtl" | "opengl" | "gles" | "gl")
        }),
        "WGPU_POWER_PREF" => matches!(v.as_str(), "high" | "low" | "none"),
        "SHADERLENS_AUTOTUNE" | "SHADERLENS_SPLIT_K" => matches!(v.as_str(), "on" | "off" | "1" | "0" | "true" | "false"),
        "SHADERLENS_MATMUL_VARIANT" => Variant::from_name(value.trim()).is_some(),
        "SHADERLENS_CLOCK" => matches!(v.as_str(), "wall" | "timestamp"),
        // Any value but 0 turns the large sizes on, so a "false" would have meant "true".
        "SHADERLENS_BENCH_LARGE" => matches!(v.as_str(), "1" | "0"),
        _ => true,
    };
    if ok {
        return Ok(());
    }
    let takes = if name == "SHADERLENS_MATMUL_VARIANT" {
        Variant::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
    } else {
        VARIABLES.iter().find(|(n, _)| *n == name).map_or("", |(_, t)| t).to_string()
    };
    Err(Error::Input(format!("{name}={:?} is not a value it takes ({takes})", crate::scalar::cut(value, 200))))
}
