//! The attention fields of a config (`use_attn_scale`, `attn_scale`,
//! `scale_attn_by_inverse_layer_idx`, `attention_dir`), read with TransformerLens's defaults.

use serde_json::Value;

use super::{tl_fields, Fields};

/// `use_attn_scale` / `attn_scale`, `scale_attn_by_inverse_layer_idx` and `attention_dir`, with
/// TransformerLens's defaults when absent (SPEC-only configs): `(attn_scale, by_layer, causal)`.
pub(super) fn attention_fields(f: &Fields<'_>, d_head: usize) -> Result<(f64, bool, bool), String> {
    let default_scale = (d_head as f64).sqrt();
    let use_scale = f.or("use_attn_scale", &Value::Bool(true));
    let use_scale = use_scale
        .as_bool()
        .ok_or_else(|| format!("use_attn_scale is {} but must be true or false", tl_fields::short(use_scale)))?;
    let attn_scale = if use_scale {
        let v = f.or("attn_scale", &Value::Null);
        match v {
            // TransformerLens's "not set": sqrt(d_head).
            Value::Null => default_scale,
            _ => match v.as_f64() {
                Some(-1.0) => default_scale,
                Some(s) if s.is_finite() && s > 0.0 => s,
                _ => {
                    return Err(format!(
                        "attn_scale is {} but must be a finite number > 0 (or -1 for sqrt(d_head)) when use_attn_scale is true",
                        tl_fields::short(v)
                    ))
                }
            },
        }
    } else {
        1.0
    };
    let by_layer = f.or("scale_attn_by_inverse_layer_idx", &Value::Bool(false));
    let by_layer = by_layer.as_bool().ok_or_else(|| {
        format!("scale_attn_by_inverse_layer_idx is {} but must be true or false", tl_fields::short(by_layer))
    })?;
    let dir = f.or("attention_dir", &Value::Null);
    let causal = match dir.as_str() {
        None if dir.is_null() => true,
        Some("causal") => true,
        Some("bidirectional") => false,
        _ => {
            return Err(format!(
                "attention_dir is {} but shaderlens needs \"causal\" or \"bidirectional\"",
                tl_fields::short(dir)
            ))
        }
    };
    Ok((attn_scale, by_layer, causal))
}
