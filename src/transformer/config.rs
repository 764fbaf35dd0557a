//! A model's configuration: SPEC's "Transformer" JSON under TransformerLens's field names.
//!
//! Parsing is strict on purpose. A key that is not one of SPEC's (say `rotary_dim` or
//! `parallel_attn_mlp`) or a value shaderlens does not implement (say `act_fn: "solu_ln"`) would
//! otherwise be silently ignored and the forward pass would compute a different model than the
//! one described, so both are refused with an error that names them.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::ops::gelu::Gelu;

/// The MLP's activation (`act_fn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `relu`.
    Relu,
    /// `gelu`: the exact, erf-based GELU (PyTorch's default).
    GeluErf,
    /// `gelu_new`: GPT-2's tanh approximation.
    GeluTanh,
}

impl Activation {
    /// TransformerLens's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::GeluErf => "gelu",
            Activation::GeluTanh => "gelu_new",
        }
    }

    /// The GELU form, for the GELU activations.
    pub fn gelu(self) -> Option<Gelu> {
        match self {
            Activation::Relu => None,
            Activation::GeluErf => Some(Gelu::Erf),
            Activation::GeluTanh => Some(Gelu::Tanh),
        }
    }
}

/// Where and how the residual stream is normalised (`normalization_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalization {
    /// `LN`: layer norm with weights `w` and biases `b`.
    Ln,
    /// `LNPre`: layer norm without weights (as after TransformerLens's `fold_ln`).
    LnPre,
    /// `null`: no normalisation at all (no `ln*` weights or hooks).
    None,
}

/// A checked model configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Attention heads per block.
    pub n_heads: usize,
    /// Size of each head.
    pub d_head: usize,
    /// Hidden size of the MLP; `None` exactly when `attn_only`.
    pub d_mlp: Option<usize>,
    /// Input vocabulary size (rows of `W_E`).
    pub d_vocab: usize,
    /// Output vocabulary size (columns of `W_U`).
    pub d_vocab_out: usize,
    /// Longest sequence (rows of `W_pos`).
    pub n_ctx: usize,
    /// The MLP's activation (unused by attention-only models).
    pub act_fn: Activation,
    /// Normalisation.
    pub normalization: Normalization,
    /// No MLPs: each block is attention only.
    pub attn_only: bool,
    /// Layer norm's epsilon.
    pub eps: f64,
}

/// The JSON as written, before its values are checked. Unknown keys are refused here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    n_layers: usize,
    d_model: usize,
    n_heads: usize,
    d_head: usize,
    d_mlp: Option<usize>,
    d_vocab: usize,
    d_vocab_out: usize,
    n_ctx: usize,
    act_fn: String,
    normalization_type: Option<String>,
    attn_only: bool,
    eps: f64,
    positional_embedding_type: String,
}

/// SPEC's config keys, in the order SPEC lists them.
pub const CONFIG_KEYS: [&str; 13] = [
    "n_layers",
    "d_model",
    "n_heads",
    "d_head",
    "d_mlp",
    "d_vocab",
    "d_vocab_out",
    "n_ctx",
    "act_fn",
    "normalization_type",
    "attn_only",
    "eps",
    "positional_embedding_type",
];

impl Config {
    /// Parses and checks a config from JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| {
            let message = e.to_string();
            let hint = if message.contains("unknown field") {
                " (shaderlens implements only SPEC's keys; a model that needs another one is not supported)"
            } else {
                ""
            };
            Error::Input(format!("model config: {}{hint}", crate::scalar::cut(&message, 500)))
        })?;
        Self::check(raw)
    }

    /// Reads and checks the config file at `path`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::io::read_to_string(path)?;
        Self::from_json(&text).map_err(|e| Error::File { path: path.display().to_string(), message: e.to_string() })
    }

    fn check(raw: RawConfig) -> Result<Self> {
        let refuse = |message: String| Err(Error::Input(format!("model config: {}", crate::scalar::cut(&message, 500))));
        let act_fn = match raw.act_fn.as_str() {
            "relu" => Activation::Relu,
            "gelu" => Activation::GeluErf,
            "gelu_new" => Activation::GeluTanh,
            other => return refuse(format!("act_fn {other:?} is not supported (use \"relu\", \"gelu\" or \"gelu_new\")")),
        };
        let normalization = match raw.normalization_type.as_deref() {
            Some("LN") => Normalization::Ln,
            Some("LNPre") => Normalization::LnPre,
            None => Normalization::None,
            Some(other) => {
                return refuse(format!("normalization_type {other:?} is not supported (use \"LN\", \"LNPre\" or null)"))
            }
        };
        if raw.positional_embedding_type != "standard" {
            return refuse(format!(
                "positional_embedding_type {:?} is not supported (only \"standard\": a learned W_pos added to the embedding)",
                raw.positional_embedding_type
            ));
        }
        for (name, value) in [
            ("d_model", raw.d_model),
            ("n_heads", raw.n_heads),
            ("d_head", raw.d_head),
            ("d_vocab", raw.d_vocab),
            ("d_vocab_out", raw.d_vocab_out),
            ("n_ctx", raw.n_ctx),
        ] {
            if value == 0 {
                return refuse(format!("{name} is 0 but must be at least 1"));
            }
        }
        match (raw.attn_only, raw.d_mlp) {
            (true, Some(d)) => {
                return refuse(format!("d_mlp is {d} but attn_only is true: an attention-only model has no MLP, so d_mlp must be null"))
            }
            (false, None) => return refuse("d_mlp is null but attn_only is false: the MLP needs a size".into()),
            (false, Some(0)) => return refuse("d_mlp is 0 but must be at least 1".into()),
            _ => {}
        }
        if !(raw.eps.is_finite() && raw.eps >= 0.0) {
            return refuse(format!("eps is {} but must be a finite number >= 0", raw.eps));
        }
        // The GPU computes in float32: an eps it cannot hold is refused here, not at run time.
        crate::scalar::to_f32("eps", raw.eps).map_err(|e| Error::Input(format!("model config: {e}")))?;
        Ok(Self {
            n_layers: raw.n_layers,
            d_model: raw.d_model,
            n_heads: raw.n_heads,
            d_head: raw.d_head,
            d_mlp: raw.d_mlp,
            d_vocab: raw.d_vocab,
            d_vocab_out: raw.d_vocab_out,
            n_ctx: raw.n_ctx,
            act_fn,
            normalization,
            attn_only: raw.attn_only,
            eps: raw.eps,
        })
    }

    /// The config as SPEC's JSON (what [`Config::from_json`] reads back).
    pub fn to_json(&self) -> String {
        let normalization = match self.normalization {
            Normalization::Ln => serde_json::json!("LN"),
            Normalization::LnPre => serde_json::json!("LNPre"),
            Normalization::None => serde_json::Value::Null,
        };
        let value = serde_json::json!({
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "n_heads": self.n_heads,
            "d_head": self.d_head,
            "d_mlp": self.d_mlp,
            "d_vocab": self.d_vocab,
            "d_vocab_out": self.d_vocab_out,
            "n_ctx": self.n_ctx,
            "act_fn": self.act_fn.name(),
            "normalization_type": normalization,
            "attn_only": self.attn_only,
            "eps": self.eps,
            "positional_embedding_type": "standard",
        });
        value.to_string()
    }

    /// Whether the blocks have layer norms (and ln hooks): `LN` or `LNPre`.
    pub fn has_ln(&self) -> bool {
        self.normalization != Normalization::None
    }

    /// Whether the layer norms have weights (`LN`).
    pub fn has_ln_weights(&self) -> bool {
        self.normalization == Normalization::Ln
    }

    /// The MLP's hidden size, when the blocks have MLPs.
    pub fn mlp(&self) -> Option<usize> {
        if self.attn_only { None } else { self.d_mlp }
    }
}
