//! A model's weights under TransformerLens's state-dict names, generic over what holds them
//! (float32 arrays read from an npz, float64 arrays for the host reference, GPU tensors).
//!
//! [`weight_shapes`] lists every weight a config implies, with its shape, in state-dict order;
//! [`Weights::from_fixture`] reads exactly those from an npz, refusing a missing, mis-shaped or
//! non-float32 weight and any array that is not a weight of this config (an `ln1.w` in an `LNPre`
//! model says the config and the weights disagree). The buffers `attn.mask` and `attn.IGNORE`, and
//! a fixture's `tokens`, `logits` and `cache.*`, are not weights and are skipped.

use crate::error::{Error, Result};
use crate::spec::attention_layer::AttentionWeights;
use crate::model::config::Config;

/// A norm's weight `w` and bias `b`, each \[d_model\] (\[d_mlp\] for `mlp.ln`); an RMS norm has
/// no bias.
#[derive(Clone, Debug)]
pub struct LayerNormWeights<T> {
    /// `w` \[d_model\].
    pub w: T,
    /// `b` \[d_model\] (LayerNorm only).
    pub b: Option<T>,
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
    /// `ln.w`, `ln.b` \[d_mlp\]: the LayerNorm after SoLU (`act_fn` `solu_ln` in an `LN` model).
    pub ln: Option<LayerNormWeights<T>>,
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
    let norm = |form: Option<crate::model::config::NormForm>, prefix: &str, n: usize, out: &mut Vec<(String, Vec<usize>)>| {
        let form = form.unwrap_or(crate::model::config::NormForm::layer_norm(false));
        if form.weight {
            out.push((format!("{prefix}.w"), vec![n]));
        }
        if form.bias {
            out.push((format!("{prefix}.b"), vec![n]));
        }
    };
    let ln = |prefix: &str, out: &mut Vec<(String, Vec<usize>)>| norm(config.block_norm(), prefix, dm, out);
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
            if config.mlp_norm().is_some() {
                norm(config.mlp_norm(), &format!("{p}.mlp.ln"), d_mlp, &mut out);
            }
        }
    }
    norm(config.final_norm(), "ln_final", dm, &mut out);
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
        let norm = |form: Option<crate::model::config::NormForm>, prefix: &str, take: &mut dyn FnMut(&str) -> Result<T>| {
            match form.filter(|f| f.weight) {
                None => Ok(None),
                Some(f) => {
                    let w = take(&format!("{prefix}.w"))?;
                    let b = if f.bias { Some(take(&format!("{prefix}.b"))?) } else { None };
                    Ok::<_, Error>(Some(LayerNormWeights { w, b }))
                }
            }
        };
        let ln = |prefix: &str, take: &mut dyn FnMut(&str) -> Result<T>| norm(config.block_norm(), prefix, take);
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
                let (w_in, b_in, w_out, b_out) = (m("W_in")?, m("b_in")?, m("W_out")?, m("b_out")?);
                let ln = norm(config.mlp_norm(), &format!("{p}.mlp.ln"), &mut take)?;
                let mlp = MlpWeights { w_in, b_in, w_out, b_out, ln };
                (ln2, Some(mlp))
            } else {
                (None, None)
            };
            blocks.push(BlockWeights { ln1, attn, ln2, mlp });
        }
        let ln_final = norm(config.final_norm(), "ln_final", &mut take)?;
        Ok(Self { w_e, w_pos, blocks, ln_final, w_u: take("unembed.W_U")?, b_u: take("unembed.b_U")? })
    }

    /// Every weight with its state-dict name, in state-dict order.
    pub fn named(&self) -> Vec<(String, &T)> {
        let mut out = vec![("embed.W_E".to_string(), &self.w_e), ("pos_embed.W_pos".to_string(), &self.w_pos)];
        fn ln<'a, T>(prefix: String, ln: &'a Option<LayerNormWeights<T>>, out: &mut Vec<(String, &'a T)>) {
            if let Some(ln) = ln {
                out.push((format!("{prefix}.w"), &ln.w));
                if let Some(b) = &ln.b {
                    out.push((format!("{prefix}.b"), b));
                }
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
                ln(format!("{p}.mlp.ln"), &m.ln, &mut out);
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
