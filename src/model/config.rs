//! A model's configuration: SPEC's "Transformer" JSON under TransformerLens's field names, or the
//! whole `HookedTransformerConfig` as `json.dump(model.cfg.to_dict(), f, default=str)` writes it.
//!
//! Parsing is strict on purpose. SPEC's keys are read and checked here; every other key must be a
//! TransformerLens field, and [`tl_fields`] decides what happens to it: ignored when it cannot
//! change the forward pass, read when shaderlens implements it (the attention scale and direction
//! in `attention.rs`; the norms, SoLU, shortformer and the optional hooks in `forms.rs`), refused
//! by name with its value otherwise. A value shaderlens does not implement (say `act_fn: "silu"`)
//! or a key that TransformerLens does not know (a typo) would
//! otherwise be silently ignored and the forward pass would compute a different model than the
//! one described.

mod attention;
mod forms;
pub mod tl_fields;

pub use forms::{NormForm, OptionalHooks};

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::spec::gelu::Gelu;

/// The MLP's activation (`act_fn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `relu`.
    Relu,
    /// `gelu`: the exact, erf-based GELU (PyTorch's default).
    GeluErf,
    /// `gelu_new`: GPT-2's tanh approximation.
    GeluTanh,
    /// `gelu_pytorch_tanh`: PyTorch's `gelu(approximate="tanh")`, the same formula as `gelu_new`.
    GeluPytorchTanh,
    /// `gelu_fast`: the tanh approximation written `tanh(x · 0.7978845608 · (1 + 0.044715 x²))`;
    /// its constant differs from `sqrt(2/pi)` by 3.6e-12 relative (the float64 reference uses it
    /// as written, float32 cannot tell them apart).
    GeluFast,
    /// `solu`: SoLU, `x · softmax(x)` over the MLP's hidden axis.
    Solu,
    /// `solu_ln`: SoLU followed by a LayerNorm `mlp.ln` over the hidden axis (with `mlp.hook_mid`
    /// before it), as in TransformerLens's `solu-*l` toy models.
    SoluLn,
}

impl Activation {
    /// TransformerLens's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::GeluErf => "gelu",
            Activation::GeluTanh => "gelu_new",
            Activation::GeluPytorchTanh => "gelu_pytorch_tanh",
            Activation::GeluFast => "gelu_fast",
            Activation::Solu => "solu",
            Activation::SoluLn => "solu_ln",
        }
    }

    /// The activation TransformerLens calls `name`, if shaderlens implements it.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "relu" => Activation::Relu,
            "gelu" => Activation::GeluErf,
            "gelu_new" => Activation::GeluTanh,
            "gelu_pytorch_tanh" => Activation::GeluPytorchTanh,
            "gelu_fast" => Activation::GeluFast,
            "solu" => Activation::Solu,
            "solu_ln" => Activation::SoluLn,
            _ => return None,
        })
    }

    /// The GPU kernel's GELU form, for the GELU activations (the three tanh forms share one).
    pub fn gelu(self) -> Option<Gelu> {
        match self {
            Activation::Relu | Activation::Solu | Activation::SoluLn => None,
            Activation::GeluErf => Some(Gelu::Erf),
            Activation::GeluTanh | Activation::GeluPytorchTanh | Activation::GeluFast => Some(Gelu::Tanh),
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
    /// `RMS`: RMS norm (no centring, no bias) with weights `w`.
    Rms,
    /// `RMSPre`: RMS norm without weights.
    RmsPre,
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
    /// What attention scores are divided by (TransformerLens's `attn_scale`; 1 when
    /// `use_attn_scale` is false), before the layer factor of `scale_attn_by_inverse_layer_idx`.
    pub attn_scale: f64,
    /// `scale_attn_by_inverse_layer_idx`: block `l`'s scores are divided by `l + 1` as well.
    pub scale_attn_by_inverse_layer_idx: bool,
    /// `attention_dir`: `causal` (true) or `bidirectional` (false, no mask).
    pub causal: bool,
    /// `parallel_attn_mlp` (GPT-J): the MLP reads `ln2(resid_pre)` and both outputs are added to
    /// `resid_pre` at once; there is no `hook_resid_mid`.
    pub parallel_attn_mlp: bool,
    /// `final_rms`: the final norm is an RMS norm (with `w` for `LN`, without for `LNPre`).
    pub final_rms: bool,
    /// `positional_embedding_type: shortformer`: `W_pos` is added to the inputs of the queries
    /// and keys of every block (after ln1), not to the residual stream.
    pub shortformer: bool,
    /// The optional hooks the config asks for (`use_attn_result`, `use_split_qkv_input`, ...).
    pub optional_hooks: OptionalHooks,
}

/// SPEC's config keys, in the order SPEC lists them (all required).
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

/// The config's JSON object, read key by key with errors that name the key.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, key: &str) -> Result<&Value, String> {
        self.0.get(key).ok_or_else(|| format!("missing field `{key}` (SPEC's config keys are all required)"))
    }

    fn usize(&self, key: &str) -> Result<usize, String> {
        let v = self.get(key)?;
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("{key} is {} but must be a whole number >= 0", tl_fields::short(v)))
    }

    fn bool(&self, key: &str) -> Result<bool, String> {
        let v = self.get(key)?;
        v.as_bool().ok_or_else(|| format!("{key} is {} but must be true or false", tl_fields::short(v)))
    }

    fn f64(&self, key: &str) -> Result<f64, String> {
        let v = self.get(key)?;
        v.as_f64().ok_or_else(|| format!("{key} is {} but must be a number", tl_fields::short(v)))
    }

    /// An optional TransformerLens field: its value, or `default` when absent.
    fn or<'v>(&'v self, key: &str, default: &'v Value) -> &'v Value {
        self.0.get(key).unwrap_or(default)
    }
}

impl Config {
    /// Parses and checks a config from JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| Error::Input(format!("model config: not valid JSON: {}", crate::scalar::cut(&e.to_string(), 500))))?;
        let Value::Object(map) = value else {
            return Err(Error::Input(format!("model config: expected a JSON object, got {}", tl_fields::short(&value))));
        };
        Self::check(&map).map_err(|message| Error::Input(format!("model config: {message}")))
    }

    /// Reads and checks the config file at `path`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::io::read_to_string(path)?;
        Self::from_json(&text).map_err(|e| Error::File { path: path.display().to_string(), message: e.to_string() })
    }

    fn check(map: &Map<String, Value>) -> Result<Self, String> {
        let f = Fields(map);
        tl_fields::check_others(map)?;
        let attn_only = f.bool("attn_only")?;
        let act = f.get("act_fn")?;
        let act_fn = match (act.as_str().and_then(Activation::from_name), attn_only) {
            (Some(a), _) => a,
            // An attention-only model has no MLP: TransformerLens may leave act_fn null or set
            // anything.
            (None, true) => Activation::Relu,
            (None, false) => {
                return Err(format!(
                    "act_fn {} is not supported (use \"relu\", \"gelu\", \"gelu_new\", \"gelu_pytorch_tanh\", \"gelu_fast\", \"solu\" or \"solu_ln\")",
                    tl_fields::short(act)
                ))
            }
        };
        let normalization = match f.get("normalization_type")? {
            Value::String(s) if s == "LN" => Normalization::Ln,
            Value::String(s) if s == "LNPre" => Normalization::LnPre,
            Value::String(s) if s == "RMS" => Normalization::Rms,
            Value::String(s) if s == "RMSPre" => Normalization::RmsPre,
            Value::Null => Normalization::None,
            other => {
                return Err(format!(
                    "normalization_type {} is not supported (use \"LN\", \"LNPre\", \"RMS\", \"RMSPre\" or null)",
                    tl_fields::short(other)
                ))
            }
        };
        let pos = f.get("positional_embedding_type")?;
        let shortformer = match pos.as_str() {
            Some("standard") => false,
            Some("shortformer") => true,
            _ => {
                return Err(format!(
                    "positional_embedding_type {} is not supported (\"standard\" or \"shortformer\": a learned W_pos)",
                    tl_fields::short(pos)
                ))
            }
        };
        let n_layers = f.usize("n_layers")?;
        let mut sizes = [0; 6];
        for (slot, name) in sizes.iter_mut().zip(["d_model", "n_heads", "d_head", "d_vocab", "d_vocab_out", "n_ctx"]) {
            *slot = f.usize(name)?;
            if *slot == 0 {
                return Err(format!("{name} is 0 but must be at least 1"));
            }
        }
        let [d_model, n_heads, d_head, d_vocab, d_vocab_out, n_ctx] = sizes;
        // TransformerLens fills d_mlp in (4 d_model) for attention-only models too: ignored there.
        let d_mlp = if attn_only {
            f.get("d_mlp")?;
            None
        } else if f.get("d_mlp")?.is_null() {
            return Err("d_mlp is null but attn_only is false: the MLP needs a size".into());
        } else {
            match f.usize("d_mlp")? {
                0 => return Err("d_mlp is 0 but must be at least 1".into()),
                d => Some(d),
            }
        };
        let eps = f.f64("eps")?;
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(format!("eps is {eps} but must be a finite number >= 0"));
        }
        // The GPU computes in float32: an eps it cannot hold is refused here, not at run time.
        crate::scalar::to_f32("eps", eps).map_err(|e| e.to_string())?;
        let (attn_scale, scale_attn_by_inverse_layer_idx, causal) = attention::attention_fields(&f, d_head)?;
        let parallel = f.or("parallel_attn_mlp", &Value::Bool(false));
        let parallel_attn_mlp = match parallel {
            Value::Null => false,
            v => v.as_bool().ok_or_else(|| format!("parallel_attn_mlp is {} but must be true or false", tl_fields::short(v)))?,
        };
        if parallel_attn_mlp && attn_only {
            // TransformerLens itself fails on this model (its parallel block calls a missing MLP).
            return Err("parallel_attn_mlp is true but attn_only is true: there is no MLP to run in parallel".into());
        }
        let final_rms = forms::flag(&f, "final_rms")?;
        let optional_hooks = OptionalHooks::read(&f)?;
        Ok(Self {
            n_layers,
            d_model,
            n_heads,
            d_head,
            d_mlp,
            d_vocab,
            d_vocab_out,
            n_ctx,
            act_fn,
            normalization,
            attn_only,
            eps,
            attn_scale,
            scale_attn_by_inverse_layer_idx,
            causal,
            parallel_attn_mlp,
            final_rms,
            shortformer,
            optional_hooks,
        })
    }

    /// The config as JSON (what [`Config::from_json`] reads back): SPEC's keys and the
    /// TransformerLens fields shaderlens implements.
    pub fn to_json(&self) -> String {
        let normalization = match self.normalization {
            Normalization::Ln => serde_json::json!("LN"),
            Normalization::LnPre => serde_json::json!("LNPre"),
            Normalization::Rms => serde_json::json!("RMS"),
            Normalization::RmsPre => serde_json::json!("RMSPre"),
            Normalization::None => Value::Null,
        };
        let mut value = serde_json::json!({
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
            "positional_embedding_type": if self.shortformer { "shortformer" } else { "standard" },
            "use_attn_scale": true,
            "attn_scale": self.attn_scale,
            "scale_attn_by_inverse_layer_idx": self.scale_attn_by_inverse_layer_idx,
            "attention_dir": if self.causal { "causal" } else { "bidirectional" },
            "parallel_attn_mlp": self.parallel_attn_mlp,
            "final_rms": self.final_rms,
        });
        if let Value::Object(map) = &mut value {
            self.optional_hooks.write(map);
        }
        value.to_string()
    }

    /// Whether the blocks have norms (and ln hooks): anything but `null`.
    pub fn has_ln(&self) -> bool {
        self.normalization != Normalization::None
    }

    /// The MLP's hidden size, when the blocks have MLPs.
    pub fn mlp(&self) -> Option<usize> {
        if self.attn_only { None } else { self.d_mlp }
    }

    /// The TransformerLens variants beyond SPEC's plain model (scale `1/sqrt(d_head)`, causal)
    /// that this config uses, as `field value` (empty for a plain model). The GELU variants are
    /// not listed: each computes what the tanh kernel computes.
    pub fn variants(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.attn_scale != (self.d_head as f64).sqrt() {
            out.push(format!("attn_scale {} (use_attn_scale false means 1)", self.attn_scale));
        }
        if self.scale_attn_by_inverse_layer_idx {
            out.push("scale_attn_by_inverse_layer_idx true".to_string());
        }
        if !self.causal {
            out.push("attention_dir \"bidirectional\"".to_string());
        }
        if self.parallel_attn_mlp {
            out.push("parallel_attn_mlp true".to_string());
        }
        out.extend(self.form_variants());
        out
    }

    /// Refuses, naming the field, a config that uses a variant [`Config::variants`] lists: for a
    /// code path (`what`, e.g. "the backward pass") that implements SPEC's plain model only, so
    /// that it gives an error instead of computing another model.
    pub fn refuse_variants(&self, what: &str) -> Result<()> {
        match self.variants().first() {
            None => Ok(()),
            Some(v) => Err(Error::Input(format!("model config: {what} does not implement {v} yet"))),
        }
    }

    /// What block `layer`'s attention scores `q·k` are multiplied by: `1 / attn_scale`, divided
    /// again by `layer + 1` with `scale_attn_by_inverse_layer_idx` (TransformerLens divides by
    /// the product).
    pub fn score_scale(&self, layer: usize) -> f64 {
        let layer_factor = if self.scale_attn_by_inverse_layer_idx { (layer + 1) as f64 } else { 1.0 };
        1.0 / (self.attn_scale * layer_factor)
    }
}
