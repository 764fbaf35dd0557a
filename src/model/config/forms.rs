//! The parts of a config that pick among TransformerLens's forms of one component: which norm sits
//! where (`normalization_type`, `final_rms`, and the LayerNorm of `solu_ln`), and which optional
//! hooks the forward pass produces (`use_attn_result`, `use_split_qkv_input`, `use_attn_in`,
//! `use_hook_mlp_in`, `use_hook_tokens`). Kept apart from the parsing of SPEC's keys so that each
//! form has one home that the GPU forward, the float64 reference, the weights and the hooks read.

use serde_json::{Map, Value};

use super::{tl_fields, Activation, Config, Fields, Normalization};

/// One norm as TransformerLens computes it over the last axis: LayerNorm (centred) or RMS norm,
/// with or without its weight `w` and bias `b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormForm {
    /// RMS norm: `scale = sqrt(mean(x²) + eps)`, no centring (else LayerNorm's
    /// `sqrt(var + eps)` after subtracting the mean).
    pub rms: bool,
    /// Multiplied by a weight `w` after normalising.
    pub weight: bool,
    /// A bias `b` added after (LayerNorm with weights only).
    pub bias: bool,
}

impl NormForm {
    /// TransformerLens's LayerNorm, with weights or without (`LNPre`).
    pub const fn layer_norm(weights: bool) -> Self {
        Self { rms: false, weight: weights, bias: weights }
    }

    /// TransformerLens's RMSNorm, with its weight or without (`RMSPre`).
    pub const fn rms(weight: bool) -> Self {
        Self { rms: true, weight, bias: false }
    }
}

/// The optional hooks a config asks for; each adds hook points exactly as TransformerLens does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptionalHooks {
    /// `use_attn_result`: `attn.hook_result` \[B, S, H, d_model\], each head's `z W_O[h]`.
    pub attn_result: bool,
    /// `use_split_qkv_input`: `hook_q_input`, `hook_k_input`, `hook_v_input` \[B, S, H, d_model\],
    /// the residual stream repeated per head, each normalised by ln1 on its own.
    pub split_qkv_input: bool,
    /// `use_attn_in`: `hook_attn_in` \[B, S, H, d_model\], one per-head input for q, k and v.
    pub attn_in: bool,
    /// `use_hook_mlp_in`: `hook_mlp_in`, a copy of the MLP's input before ln2.
    pub mlp_in: bool,
    /// `use_hook_tokens`: `hook_tokens` \[B, S\], the token ids before the embedding.
    pub tokens: bool,
}

/// The TransformerLens switch of each optional hook, in `OptionalHooks`'s order.
const SWITCHES: [&str; 5] = ["use_attn_result", "use_split_qkv_input", "use_attn_in", "use_hook_mlp_in", "use_hook_tokens"];

impl OptionalHooks {
    /// Reads the five switches (absent or null: false).
    pub(super) fn read(f: &Fields<'_>) -> Result<Self, String> {
        let [attn_result, split_qkv_input, attn_in, mlp_in, tokens] = SWITCHES.map(|key| flag(f, key));
        Ok(Self { attn_result: attn_result?, split_qkv_input: split_qkv_input?, attn_in: attn_in?, mlp_in: mlp_in?, tokens: tokens? })
    }

    fn values(&self) -> [bool; 5] {
        [self.attn_result, self.split_qkv_input, self.attn_in, self.mlp_in, self.tokens]
    }

    /// Writes the five switches into a config object.
    pub(super) fn write(&self, map: &mut Map<String, Value>) {
        for (key, on) in SWITCHES.into_iter().zip(self.values()) {
            map.insert(key.to_string(), Value::Bool(on));
        }
    }

    /// Whether ln1 and the q, k, v projections read per-head inputs \[B, S, H, d_model\].
    pub fn per_head_inputs(&self) -> bool {
        self.attn_in || self.split_qkv_input
    }
}

/// An optional boolean TransformerLens field: false when absent or null.
pub(super) fn flag(f: &Fields<'_>, key: &str) -> Result<bool, String> {
    match f.or(key, &Value::Null) {
        Value::Null => Ok(false),
        v => v.as_bool().ok_or_else(|| format!("{key} is {} but must be true or false", tl_fields::short(v))),
    }
}

impl Config {
    /// The norm of `ln1` and `ln2` (`None` without normalisation).
    pub fn block_norm(&self) -> Option<NormForm> {
        match self.normalization {
            Normalization::Ln => Some(NormForm::layer_norm(true)),
            Normalization::LnPre => Some(NormForm::layer_norm(false)),
            Normalization::Rms => Some(NormForm::rms(true)),
            Normalization::RmsPre => Some(NormForm::rms(false)),
            Normalization::None => None,
        }
    }

    /// The norm of `ln_final`: the blocks' own, or an RMS norm with `final_rms` (TransformerLens
    /// reads `final_rms` for `LN` and `LNPre` only).
    pub fn final_norm(&self) -> Option<NormForm> {
        match self.normalization {
            Normalization::Ln if self.final_rms => Some(NormForm::rms(true)),
            Normalization::LnPre if self.final_rms => Some(NormForm::rms(false)),
            _ => self.block_norm(),
        }
    }

    /// The LayerNorm `mlp.ln` of `solu_ln` over d_mlp: with weights for `LN` models, without
    /// (LNPre) for every other normalisation, null included, as TransformerLens builds it.
    pub fn mlp_norm(&self) -> Option<NormForm> {
        (self.mlp().is_some() && self.act_fn == Activation::SoluLn)
            .then(|| NormForm::layer_norm(self.normalization == Normalization::Ln))
    }

    /// The variants of this module that a config uses, as `field value` (for
    /// [`Config::variants`]).
    pub(super) fn form_variants(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.normalization {
            Normalization::Rms => out.push("normalization_type \"RMS\"".to_string()),
            Normalization::RmsPre => out.push("normalization_type \"RMSPre\"".to_string()),
            _ => {}
        }
        if self.final_norm() != self.block_norm() {
            out.push("final_rms true".to_string());
        }
        if self.mlp().is_some() && matches!(self.act_fn, Activation::Solu | Activation::SoluLn) {
            out.push(format!("act_fn \"{}\"", self.act_fn.name()));
        }
        if self.shortformer {
            out.push("positional_embedding_type \"shortformer\"".to_string());
        }
        for (key, on) in SWITCHES.into_iter().zip(self.optional_hooks.values()) {
            if on {
                out.push(format!("{key} true"));
            }
        }
        out
    }
}
