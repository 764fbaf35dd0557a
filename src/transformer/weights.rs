//! A model's weights under TransformerLens's state-dict names, generic over what holds them
//! (float32 arrays read from an npz, float64 arrays for the host reference, GPU tensors).
//!
//! [`weight_shapes`] lists every weight a config implies, with its shape, in state-dict order;
//! [`Weights::from_fixture`] reads exactly those from an npz, refusing a missing, mis-shaped or
//! non-float32 weight and any array that is not a weight of this config (an `ln1.w` in an `LNPre`
//! model says the config and the weights disagree). The buffers `attn.mask` and `attn.IGNORE`, and
//! a fixture's `tokens`, `logits` and `cache.*`, are not weights and are skipped.

use ndarray::ArrayD;

use crate::error::{fmt_shape, Error, Result};
use crate::fixture::{Fixture, NpyArray};
use crate::reference::attention_layer::AttentionWeights;
use crate::transformer::config::Config;

/// A layer norm's weight `w` and bias `b`, each \[d_model\].
#[derive(Clone, Debug)]
pub struct LayerNormWeights<T> {
    /// `w` \[d_model\].
    pub w: T,
    /// `b` \[d_model\].
    pub b: T,
}

/// An MLP's weights.
#[derive(Clone, Debug)]
pub struct MlpWeights<T> {
    /// `W_in` \[d_model, d_mlp\].
    pub w_in: T,
    /// `b_in` \[d_mlp\].
    pub b_in: T,
    /// `W_out` \[d_mlp, d_model\].
    pub w_out: T,
    /// `b_out` \[d_model\].
    pub b_out: T,
}

/// One block's weights (`blocks.{l}.*`).
#[derive(Clone, Debug)]
pub struct BlockWeights<T> {
    /// `ln1.w`, `ln1.b` (only with `normalization_type` `LN`).
    pub ln1: Option<LayerNormWeights<T>>,
    /// `attn.*`.
    pub attn: AttentionWeights<T>,
    /// `ln2.w`, `ln2.b` (`LN` and not attention-only).
    pub ln2: Option<LayerNormWeights<T>>,
    /// `mlp.*` (not attention-only).
    pub mlp: Option<MlpWeights<T>>,
}

/// All weights of a model.
#[derive(Clone, Debug)]
pub struct Weights<T> {
    /// `embed.W_E` \[d_vocab, d_model\].
    pub w_e: T,
    /// `pos_embed.W_pos` \[n_ctx, d_model\].
    pub w_pos: T,
    /// `blocks.{l}`.
    pub blocks: Vec<BlockWeights<T>>,
    /// `ln_final.w`, `ln_final.b` (`LN` only).
    pub ln_final: Option<LayerNormWeights<T>>,
    /// `unembed.W_U` \[d_model, d_vocab_out\].
    pub w_u: T,
    /// `unembed.b_U` \[d_vocab_out\].
    pub b_u: T,
}

/// Every weight of a model with this config, `(state-dict name, shape)`, in state-dict order.
pub fn weight_shapes(config: &Config) -> Vec<(String, Vec<usize>)> {
    let (dm, h, dh) = (config.d_model, config.n_heads, config.d_head);
    let mut out = vec![
        ("embed.W_E".to_string(), vec![config.d_vocab, dm]),
        ("pos_embed.W_pos".to_string(), vec![config.n_ctx, dm]),
    ];
    let ln = |prefix: &str, out: &mut Vec<(String, Vec<usize>)>| {
        if config.has_ln_weights() {
            out.push((format!("{prefix}.w"), vec![dm]));
            out.push((format!("{prefix}.b"), vec![dm]));
        }
    };
    for l in 0..config.n_layers {
        let p = format!("blocks.{l}");
        ln(&format!("{p}.ln1"), &mut out);
        for (name, shape) in [
            ("W_Q", vec![h, dm, dh]),
            ("W_K", vec![h, dm, dh]),
            ("W_V", vec![h, dm, dh]),
            ("W_O", vec![h, dh, dm]),
            ("b_Q", vec![h, dh]),
            ("b_K", vec![h, dh]),
            ("b_V", vec![h, dh]),
            ("b_O", vec![dm]),
        ] {
            out.push((format!("{p}.attn.{name}"), shape));
        }
        if let Some(d_mlp) = config.mlp() {
            ln(&format!("{p}.ln2"), &mut out);
            for (name, shape) in
                [("W_in", vec![dm, d_mlp]), ("W_out", vec![d_mlp, dm]), ("b_in", vec![d_mlp]), ("b_out", vec![dm])]
            {
                out.push((format!("{p}.mlp.{name}"), shape));
            }
        }
    }
    ln("ln_final", &mut out);
    out.push(("unembed.W_U".to_string(), vec![dm, config.d_vocab_out]));
    out.push(("unembed.b_U".to_string(), vec![config.d_vocab_out]));
    out
}

/// Whether an npz key is something other than a weight that may sit beside the weights: a
/// TransformerLens buffer, or a fixture's tokens and expected values.
pub fn is_not_a_weight(key: &str) -> bool {
    key.ends_with("attn.mask")
        || key.ends_with("attn.IGNORE")
        || key == "tokens"
        || key == "logits"
        || key.starts_with("cache.")
}

impl<T> Weights<T> {
    /// Builds the weights of `config` by calling `get(name, shape)` for every weight.
    pub fn build(config: &Config, mut get: impl FnMut(&str, &[usize]) -> Result<T>) -> Result<Self> {
        let shapes = weight_shapes(config);
        let mut take = |name: &str| {
            let shape = shapes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.as_slice())
                .ok_or_else(|| Error::Input(format!("no weight {name} in this config")))?;
            get(name, shape)
        };
        let ln = |prefix: &str, take: &mut dyn FnMut(&str) -> Result<T>| -> Result<Option<LayerNormWeights<T>>> {
            if !config.has_ln_weights() {
                return Ok(None);
            }
            Ok(Some(LayerNormWeights { w: take(&format!("{prefix}.w"))?, b: take(&format!("{prefix}.b"))? }))
        };
        let w_e = take("embed.W_E")?;
        let w_pos = take("pos_embed.W_pos")?;
        let mut blocks = Vec::with_capacity(config.n_layers);
        for l in 0..config.n_layers {
            let p = format!("blocks.{l}");
            let ln1 = ln(&format!("{p}.ln1"), &mut take)?;
            let mut a = |name: &str| take(&format!("{p}.attn.{name}"));
            let attn = AttentionWeights {
                w_q: a("W_Q")?,
                w_k: a("W_K")?,
                w_v: a("W_V")?,
                b_q: a("b_Q")?,
                b_k: a("b_K")?,
                b_v: a("b_V")?,
                w_o: a("W_O")?,
                b_o: a("b_O")?,
            };
            let (ln2, mlp) = if config.mlp().is_some() {
                let ln2 = ln(&format!("{p}.ln2"), &mut take)?;
                let mut m = |name: &str| take(&format!("{p}.mlp.{name}"));
                let mlp = MlpWeights { w_in: m("W_in")?, b_in: m("b_in")?, w_out: m("W_out")?, b_out: m("b_out")? };
                (ln2, Some(mlp))
            } else {
                (None, None)
            };
            blocks.push(BlockWeights { ln1, attn, ln2, mlp });
        }
        let ln_final = ln("ln_final", &mut take)?;
        Ok(Self { w_e, w_pos, blocks, ln_final, w_u: take("unembed.W_U")?, b_u: take("unembed.b_U")? })
    }

    /// Every weight with its state-dict name, in state-dict order.
    pub fn named(&self) -> Vec<(String, &T)> {
        let mut out = vec![("embed.W_E".to_string(), &self.w_e), ("pos_embed.W_pos".to_string(), &self.w_pos)];
        fn ln<'a, T>(prefix: String, ln: &'a Option<LayerNormWeights<T>>, out: &mut Vec<(String, &'a T)>) {
            if let Some(ln) = ln {
                out.push((format!("{prefix}.w"), &ln.w));
                out.push((format!("{prefix}.b"), &ln.b));
            }
        }
        for (l, block) in self.blocks.iter().enumerate() {
            let p = format!("blocks.{l}");
            ln(format!("{p}.ln1"), &block.ln1, &mut out);
            let a = &block.attn;
            for (name, t) in [
                ("W_Q", &a.w_q),
                ("W_K", &a.w_k),
                ("W_V", &a.w_v),
                ("W_O", &a.w_o),
                ("b_Q", &a.b_q),
                ("b_K", &a.b_k),
                ("b_V", &a.b_v),
                ("b_O", &a.b_o),
            ] {
                out.push((format!("{p}.attn.{name}"), t));
            }
            ln(format!("{p}.ln2"), &block.ln2, &mut out);
            if let Some(m) = &block.mlp {
                for (name, t) in [("W_in", &m.w_in), ("W_out", &m.w_out), ("b_in", &m.b_in), ("b_out", &m.b_out)] {
                    out.push((format!("{p}.mlp.{name}"), t));
                }
            }
        }
        ln("ln_final".to_string(), &self.ln_final, &mut out);
        out.push(("unembed.W_U".to_string(), &self.w_u));
        out.push(("unembed.b_U".to_string(), &self.b_u));
        out
    }

    /// The same weights converted one by one with `f(name, weight)` (e.g. uploaded to the GPU).
    pub fn try_map<U>(&self, config: &Config, mut f: impl FnMut(&str, &T) -> Result<U>) -> Result<Weights<U>> {
        let named = self.named();
        Weights::build(config, |name, _| {
            let (_, t) = named
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| Error::Input(format!("weight {name} is missing")))?;
            f(name, t)
        })
    }
}

impl Weights<ArrayD<f32>> {
    /// Reads the weights of `config` from an npz (a fixture or a user's export): float32 arrays
    /// under TransformerLens's state-dict names. Refuses a missing, mis-shaped or non-float32
    /// weight and any array that is not a weight of this config, naming it.
    pub fn from_fixture(config: &Config, npz: &Fixture) -> Result<Self> {
        let shapes = weight_shapes(config);
        for key in npz.names() {
            if !is_not_a_weight(key) && !shapes.iter().any(|(n, _)| *n == ungrouped_name(key)) {
                return Err(Error::Input(format!(
                    "the weights hold {key:?}, which is not a weight of this config ({}); the config and the weights \
                     disagree",
                    describe(config)
                )));
            }
        }
        Self::build(config, |name, shape| {
            let array = match npz.get(name).or_else(|e| grouped_name(name).map_or(Err(e), |g| npz.get(&g))) {
                Ok(NpyArray::F32(a)) => a.as_standard_layout().into_owned(),
                Ok(other) => return Err(Error::Input(format!("weight {name} is {} but weights must be float32", other.dtype()))),
                Err(_) => {
                    return Err(Error::Input(format!(
                        "weight {name} {} is missing (a model with this config needs it)",
                        fmt_shape(shape)
                    )))
                }
            };
            if array.shape() != shape {
                return Err(Error::Shape(format!(
                    "weight {name} is {} but this config needs {}",
                    fmt_shape(array.shape()),
                    fmt_shape(shape)
                )));
            }
            Ok(array)
        })
    }
}

/// TransformerLens's name for key/value weight `name` in a grouped-query attention layer
/// (`blocks.0.attn.W_K` -> `blocks.0.attn._W_K`), which a config with `n_key_value_heads` equal
/// to `n_heads` stores (same shapes, same numbers).
fn grouped_name(name: &str) -> Option<String> {
    let (prefix, leaf) = name.rsplit_once('.')?;
    matches!(leaf, "W_K" | "W_V" | "b_K" | "b_V").then(|| format!("{prefix}._{leaf}"))
}

/// The plain name of a weight that may be under its grouped-query name ([`grouped_name`]).
fn ungrouped_name(key: &str) -> String {
    match key.rsplit_once('.') {
        Some((prefix, leaf @ ("_W_K" | "_W_V" | "_b_K" | "_b_V"))) => format!("{prefix}.{}", &leaf[1..]),
        _ => key.to_string(),
    }
}

/// A short description of a config for error messages.
fn describe(config: &Config) -> String {
    format!(
        "n_layers {}, normalization_type {}, attn_only {}",
        config.n_layers,
        match config.normalization {
            crate::transformer::config::Normalization::Ln => "LN",
            crate::transformer::config::Normalization::LnPre => "LNPre",
            crate::transformer::config::Normalization::None => "null",
        },
        config.attn_only
    )
}
