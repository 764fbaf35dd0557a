//! TransformerLens's `HookedTransformerConfig` fields beyond SPEC's, and what shaderlens does with
//! each (SPEC, "Transformer"; the table in `docs/transformerlens.md` says the same in words).
//!
//! A config saved with `json.dump(model.cfg.to_dict(), f, default=str)` holds every field of
//! `HookedTransformerConfig` (TransformerLens 3.9: 87 of them). Those that cannot change the forward
//! pass (names, seeds, devices, initialisation, tokenizer settings, settings of features whose
//! switch is off) are [`Rule::Ignored`]. Those that can are either read into [`super::Config`]
//! ([`Rule::Used`]) or [`Rule::Refused`] unless their value is TransformerLens's no-op: then the
//! error names the field and its value, because silently ignoring it would compute another model
//! than the one described. A key that is not a TransformerLens field at all stays an error too, so
//! that a typo cannot pass.

use serde_json::{Map, Value};

/// What shaderlens does with one TransformerLens field.
#[derive(Clone, Copy, Debug)]
pub enum Rule {
    /// Read into the config (SPEC's keys and the variants shaderlens implements).
    Used,
    /// Cannot change the forward pass; the text says why.
    Ignored(&'static str),
    /// Changes the forward pass unless `no_op(value, config)` holds; `text` names the values that
    /// are accepted and what the feature is.
    Refused {
        /// Whether the value (in the context of the whole config) leaves the forward pass alone.
        no_op: fn(&Value, &Map<String, Value>) -> bool,
        /// The accepted values and the feature, for the error and the docs.
        text: &'static str,
    },
}

/// One row of the table: the field's name and its rule.
pub type Field = (&'static str, Rule);

fn is_false(v: &Value, _: &Map<String, Value>) -> bool {
    matches!(v, Value::Bool(false) | Value::Null)
}

fn is_null(v: &Value, _: &Map<String, Value>) -> bool {
    v.is_null()
}

/// A soft cap is off when it is null or not strictly positive (TransformerLens's
/// `softcap_enabled`).
fn cap_off(v: &Value, _: &Map<String, Value>) -> bool {
    match v {
        Value::Null => true,
        Value::Number(n) => n.as_f64().is_some_and(|c| c <= 0.0),
        _ => false,
    }
}

fn attn_only(config: &Map<String, Value>) -> bool {
    config.get("attn_only") == Some(&Value::Bool(true))
}

/// Features of the MLP: harmless in an attention-only model, which has none.
fn false_or_no_mlp(v: &Value, config: &Map<String, Value>) -> bool {
    is_false(v, config) || attn_only(config)
}

fn null_or_no_mlp(v: &Value, config: &Map<String, Value>) -> bool {
    v.is_null() || attn_only(config)
}

/// `n_key_value_heads` null, or equal to `n_heads` (grouped-query attention with groups of one
/// computes plain multi-head attention; its weights are read under TransformerLens's `_W_K`,
/// `_W_V`, `_b_K`, `_b_V` names).
fn kv_heads_plain(v: &Value, config: &Map<String, Value>) -> bool {
    v.is_null() || config.get("n_heads") == Some(v)
}

/// OLMo 2/3 and OLMoE get QK-norm and post-norm blocks from `original_architecture` alone.
fn not_olmo(v: &Value, _: &Map<String, Value>) -> bool {
    !matches!(v.as_str(), Some("OlmoeForCausalLM" | "Olmo2ForCausalLM" | "Olmo3ForCausalLM"))
}

const ROTARY_ONLY: &str = "used only by rotary embeddings, which are refused (positional_embedding_type)";
const GQA_ONLY: &str = "changes nothing with groups of one (n_key_value_heads null or n_heads, the only values accepted)";

/// Every field of TransformerLens 3.9's `HookedTransformerConfig`, in `to_dict()` order.
pub const FIELDS: &[Field] = &[
    ("d_model", Rule::Used),
    ("d_head", Rule::Used),
    ("n_layers", Rule::Used),
    ("n_ctx", Rule::Used),
    ("n_heads", Rule::Used),
    ("d_mlp", Rule::Used),
    ("d_vocab", Rule::Used),
    ("device", Rule::Ignored("where TransformerLens runs; shaderlens runs on its own adapter")),
    ("use_attn_result", Rule::Used),
    ("use_split_qkv_input", Rule::Used),
    ("default_prepend_bos", Rule::Ignored("tokenization only; shaderlens takes token ids")),
    ("positional_embedding_type", Rule::Used),
    (
        "n_key_value_heads",
        Rule::Refused { no_op: kv_heads_plain, text: "null or n_heads: grouped-query attention is not supported" },
    ),
    ("attn_only", Rule::Used),
    ("gated_mlp", Rule::Refused { no_op: false_or_no_mlp, text: "false (or attn_only): gated MLPs are not supported" }),
    ("uses_rms_norm", Rule::Ignored("not read by HookedTransformer (normalization_type decides)")),
    ("eps", Rule::Used),
    ("layer_norm_folding", Rule::Ignored("not read by HookedTransformer (an LNPre config says the weights were folded)")),
    ("act_fn", Rule::Used),
    ("normalization_type", Rule::Used),
    ("num_experts", Rule::Refused { no_op: null_or_no_mlp, text: "null (or attn_only): mixture of experts is not supported" }),
    ("experts_per_token", Rule::Refused { no_op: null_or_no_mlp, text: "null (or attn_only): mixture of experts is not supported" }),
    ("final_rms", Rule::Used),
    ("dtype", Rule::Ignored("the weights are float32 in the npz and shaderlens computes in float32")),
    ("model_name", Rule::Ignored("a name")),
    ("use_attn_scale", Rule::Used),
    ("attn_scale", Rule::Used),
    ("use_hook_mlp_in", Rule::Used),
    ("use_attn_in", Rule::Used),
    ("use_qk_norm", Rule::Refused { no_op: is_false, text: "false: QK-norm is not supported" }),
    ("clip_qkv", Rule::Refused { no_op: is_null, text: "null: clamping q, k and v is not supported" }),
    ("use_logn_attn", Rule::Refused { no_op: is_false, text: "false: log-n attention scaling is not supported" }),
    ("train_seq_length", Rule::Ignored("used only by log-n scaling and dynamic NTK rotary, which are refused")),
    ("use_dynamic_ntk_rope", Rule::Ignored(ROTARY_ONLY)),
    ("use_local_attn", Rule::Refused { no_op: is_false, text: "false: local (sliding-window) attention is not supported" }),
    ("ungroup_grouped_query_attention", Rule::Ignored(GQA_ONLY)),
    (
        "original_architecture",
        Rule::Refused {
            no_op: not_olmo,
            text: "another architecture: OlmoeForCausalLM, Olmo2ForCausalLM and Olmo3ForCausalLM imply QK-norm and post-norm blocks, which are not supported",
        },
    ),
    ("from_checkpoint", Rule::Ignored("where the weights came from")),
    ("checkpoint_index", Rule::Ignored("where the weights came from")),
    ("checkpoint_label_type", Rule::Ignored("where the weights came from")),
    ("checkpoint_value", Rule::Ignored("where the weights came from")),
    ("tokenizer_name", Rule::Ignored("tokenization only; shaderlens takes token ids")),
    ("window_size", Rule::Ignored("used only by local attention, which is refused (use_local_attn)")),
    ("attn_types", Rule::Ignored("used only by local attention, which is refused (use_local_attn)")),
    ("init_mode", Rule::Ignored("initialisation only; the weights are given")),
    ("n_devices", Rule::Ignored("how TransformerLens splits layers across devices")),
    ("attention_dir", Rule::Used),
    ("seed", Rule::Ignored("initialisation only; the weights are given")),
    ("initializer_range", Rule::Ignored("initialisation only; the weights are given")),
    ("init_weights", Rule::Ignored("initialisation only; the weights are given")),
    ("scale_attn_by_inverse_layer_idx", Rule::Used),
    ("d_vocab_out", Rule::Used),
    ("parallel_attn_mlp", Rule::Used),
    ("rotary_dim", Rule::Ignored(ROTARY_ONLY)),
    ("n_params", Rule::Ignored("a count TransformerLens derives")),
    ("use_hook_tokens", Rule::Used),
    ("tokenizer_prepends_bos", Rule::Ignored("tokenization only; shaderlens takes token ids")),
    ("post_embedding_ln", Rule::Refused { no_op: is_false, text: "false: a LayerNorm after the embedding is not supported" }),
    ("rotary_base", Rule::Ignored(ROTARY_ONLY)),
    ("rotary_base_local", Rule::Ignored(ROTARY_ONLY)),
    ("rotary_scaling_factor", Rule::Ignored(ROTARY_ONLY)),
    ("trust_remote_code", Rule::Ignored("loading from the hub only")),
    ("rotary_adjacent_pairs", Rule::Ignored(ROTARY_ONLY)),
    ("load_in_4bit", Rule::Refused { no_op: is_false, text: "false: 4-bit quantised weights are not supported" }),
    ("quantization_method", Rule::Ignored("not read by HookedTransformer's forward pass (load_in_4bit decides)")),
    (
        "relative_attention_max_distance",
        Rule::Ignored("used only by relative position bias, which is refused (positional_embedding_type)"),
    ),
    (
        "relative_attention_num_buckets",
        Rule::Ignored("used only by relative position bias, which is refused (positional_embedding_type)"),
    ),
    ("decoder_start_token_id", Rule::Ignored("encoder-decoder models only")),
    ("tie_word_embeddings", Rule::Ignored("HookedTransformer stores W_U as its own weight either way; the npz holds it")),
    (
        "use_normalization_before_and_after",
        Rule::Refused { no_op: is_false, text: "false: norms after attention and MLP are not supported" },
    ),
    ("attn_scores_soft_cap", Rule::Refused { no_op: cap_off, text: "<= 0 or null: soft-capping attention scores is not supported" }),
    ("output_logits_soft_cap", Rule::Refused { no_op: cap_off, text: "<= 0 or null: soft-capping logits is not supported" }),
    ("use_NTK_by_parts_rope", Rule::Ignored(ROTARY_ONLY)),
    ("NTK_by_parts_low_freq_factor", Rule::Ignored(ROTARY_ONLY)),
    ("NTK_by_parts_high_freq_factor", Rule::Ignored(ROTARY_ONLY)),
    ("NTK_by_parts_factor", Rule::Ignored(ROTARY_ONLY)),
    ("NTK_original_ctx_len", Rule::Ignored(ROTARY_ONLY)),
    ("use_yarn_rope", Rule::Ignored(ROTARY_ONLY)),
    ("yarn_factor", Rule::Ignored(ROTARY_ONLY)),
    ("yarn_attention_factor", Rule::Ignored(ROTARY_ONLY)),
    ("yarn_beta_fast", Rule::Ignored(ROTARY_ONLY)),
    ("yarn_beta_slow", Rule::Ignored(ROTARY_ONLY)),
    ("yarn_original_max_position_embeddings", Rule::Ignored(ROTARY_ONLY)),
    ("yarn_truncate", Rule::Ignored(ROTARY_ONLY)),
    ("yarn_global_attn_only", Rule::Ignored(ROTARY_ONLY)),
    ("use_attention_sinks", Rule::Refused { no_op: is_false, text: "false: attention sinks are not supported" }),
    ("norm_topk_prob", Rule::Ignored("used only by mixture of experts, which is refused (num_experts)")),
];

/// The rule for `key`, or `None` when it is not a TransformerLens field.
pub fn rule(key: &str) -> Option<Rule> {
    FIELDS.iter().find(|(name, _)| *name == key).map(|&(_, rule)| rule)
}

/// A JSON value as a short string for an error message (cut after 60 characters).
pub fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= 60 {
        return text;
    }
    let cut: String = text.chars().take(57).collect();
    format!("{cut}...")
}

/// Checks every key of `config` that is not [`Rule::Used`]: an unknown key or a refused field
/// whose value is not the no-op is an error message naming it.
pub fn check_others(config: &Map<String, Value>) -> Result<(), String> {
    for (key, value) in config {
        match rule(key) {
            None => {
                return Err(format!(
                    "unknown field `{key}`: neither one of SPEC's keys nor a field of TransformerLens's HookedTransformerConfig \
                     (a typo?)"
                ))
            }
            Some(Rule::Refused { no_op, text }) if !no_op(value, config) => {
                return Err(format!("{key} is {} but shaderlens needs {text}", short(value)))
            }
            _ => {}
        }
    }
    Ok(())
}
