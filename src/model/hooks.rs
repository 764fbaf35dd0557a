//! TransformerLens's hook points: their names, shapes and axes, and the names filter of a cache.
//!
//! [`hooks`] lists every hook that `HookedTransformer.run_with_cache` returns by default for a
//! config, in the order of the forward pass, under the same names and with the same shapes. Its
//! rules follow TransformerLens 3.9: models without normalisation have no `ln*` hooks,
//! attention-only models have no `ln2`, `mlp.*`, `hook_resid_mid` or `hook_mlp_out`, parallel
//! blocks (`parallel_attn_mlp`) no `hook_resid_mid`, and
//! `hook_pos_embed` is \[B, S, d_model\] (broadcast over the batch). The optional hooks
//! (`hook_tokens`, `hook_attn_in`, `hook_{q,k,v}_input`, `attn.hook_result`, `hook_mlp_in`) appear
//! when the config asks for them; with per-head attention inputs ln1's hooks gain a head axis, and
//! `solu_ln` adds `mlp.hook_mid` and the `mlp.ln` hooks.

use std::collections::BTreeSet;

use ndarray::Dimension;

use crate::error::{fmt_shape, Error, Result};
use crate::model::config::Config;

/// One hook point of a model run on B sequences of S tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    /// TransformerLens's name, e.g. `blocks.0.attn.hook_z`.
    pub name: String,
    /// The activation's shape.
    pub shape: Vec<usize>,
    /// The axis of sequence positions (for \[B, H, S, S\] tensors, the query position).
    pub pos_axis: usize,
    /// The axis of attention heads, for hooks that have one.
    pub head_axis: Option<usize>,
}

/// Every default hook of `config` for tokens \[batch, seq\], in forward order.
pub fn hooks(config: &Config, batch: usize, seq: usize) -> Vec<Hook> {
    let (dm, h, dh) = (config.d_model, config.n_heads, config.d_head);
    let mut out = Vec::new();
    let mut push = |name: String, shape: Vec<usize>| {
        // [B, S, H, dh] for q, k, v, z; [B, H, S, S] for the scores and the pattern.
        let (pos_axis, head_axis) = if name.ends_with("hook_attn_scores") || name.ends_with("hook_pattern") {
            (2, Some(1))
        } else if shape.len() == 4 {
            (1, Some(2))
        } else {
            (1, None)
        };
        out.push(Hook { name, shape, pos_axis, head_axis });
    };
    let resid = vec![batch, seq, dm];
    let scale = vec![batch, seq, 1];
    let heads = vec![batch, seq, h, dh];
    let square = vec![batch, h, seq, seq];
    let optional = config.optional_hooks;
    if optional.tokens {
        push("hook_tokens".into(), vec![batch, seq]);
    }
    push("hook_embed".into(), resid.clone());
    push("hook_pos_embed".into(), resid.clone());
    let ln = |push: &mut dyn FnMut(String, Vec<usize>), prefix: &str| {
        if config.has_ln() {
            push(format!("{prefix}.hook_scale"), scale.clone());
            push(format!("{prefix}.hook_normalized"), resid.clone());
        }
    };
    let per_head = vec![batch, seq, h, dm];
    for l in 0..config.n_layers {
        let p = format!("blocks.{l}");
        push(format!("{p}.hook_resid_pre"), resid.clone());
        if optional.attn_in {
            push(format!("{p}.hook_attn_in"), per_head.clone());
        }
        if optional.split_qkv_input {
            for name in ["hook_q_input", "hook_k_input", "hook_v_input"] {
                push(format!("{p}.{name}"), per_head.clone());
            }
        }
        if optional.per_head_inputs() {
            // ln1 normalises each head's input: [B, S, H, 1] and [B, S, H, d_model].
            if config.has_ln() {
                push(format!("{p}.ln1.hook_scale"), vec![batch, seq, h, 1]);
                push(format!("{p}.ln1.hook_normalized"), per_head.clone());
            }
        } else {
            ln(&mut push, &format!("{p}.ln1"));
        }
        for name in ["hook_q", "hook_k", "hook_v"] {
            push(format!("{p}.attn.{name}"), heads.clone());
        }
        push(format!("{p}.attn.hook_attn_scores"), square.clone());
        push(format!("{p}.attn.hook_pattern"), square.clone());
        push(format!("{p}.attn.hook_z"), heads.clone());
        if optional.attn_result {
            push(format!("{p}.attn.hook_result"), per_head.clone());
        }
        push(format!("{p}.hook_attn_out"), resid.clone());
        if let Some(d_mlp) = config.mlp() {
            if !config.parallel_attn_mlp {
                push(format!("{p}.hook_resid_mid"), resid.clone());
            }
            if optional.mlp_in {
                push(format!("{p}.hook_mlp_in"), resid.clone());
            }
            ln(&mut push, &format!("{p}.ln2"));
            let hidden = vec![batch, seq, d_mlp];
            push(format!("{p}.mlp.hook_pre"), hidden.clone());
            if config.mlp_norm().is_some() {
                // solu_ln: SoLU's output, then the LayerNorm over d_mlp.
                push(format!("{p}.mlp.hook_mid"), hidden.clone());
                push(format!("{p}.mlp.ln.hook_scale"), scale.clone());
                push(format!("{p}.mlp.ln.hook_normalized"), hidden.clone());
            }
            push(format!("{p}.mlp.hook_post"), hidden);
            push(format!("{p}.hook_mlp_out"), resid.clone());
        }
        push(format!("{p}.hook_resid_post"), resid.clone());
    }
    ln(&mut push, "ln_final");
    push("unembed.hook_in".into(), resid);
    push("unembed.hook_out".into(), vec![batch, seq, config.d_vocab_out]);
    out
}

/// Every default hook name of `config`, in forward order (what `--cache all` caches).
pub fn hook_names(config: &Config) -> Vec<String> {
    hooks(config, 1, 1).into_iter().map(|h| h.name).collect()
}

/// Every hook a run of `config` can produce when asked: the default ones and, when the config
/// does not set `use_attn_result`, each block's `attn.hook_result` on request (computed from z
/// and W_O: interpretability work asks for it constantly), in forward order.
pub fn available(config: &Config, batch: usize, seq: usize) -> Vec<Hook> {
    hooks(&with_results(config, true), batch, seq)
}

/// `config` with `attn.hook_result` produced when `on` (else as it is).
fn with_results(config: &Config, on: bool) -> std::borrow::Cow<'_, Config> {
    if !on || config.optional_hooks.attn_result {
        return std::borrow::Cow::Borrowed(config);
    }
    let mut c = config.clone();
    c.optional_hooks.attn_result = true;
    std::borrow::Cow::Owned(c)
}

/// The config a run computes: `config`, with `use_attn_result` turned on when the names filter
/// or an intervention asks for an `attn.hook_result` the config does not produce (the numbers are
/// the same; the output projection then goes head by head through the hook).
pub fn run_config<'a>(
    config: &'a Config,
    names: &Names,
    interventions: &[crate::model::intervention::Intervention],
) -> std::borrow::Cow<'a, Config> {
    let result = |n: &str| n.ends_with(".attn.hook_result");
    let asked = match names {
        Names::Only(set) => set.iter().any(|n| result(n)),
        _ => false,
    } || interventions.iter().any(|i| result(&i.hook));
    with_results(config, asked)
}

/// Which activations a run caches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Names {
    /// None: the forward pass alone (the fastest path).
    #[default]
    Nothing,
    /// Every default hook, as TransformerLens's `run_with_cache()` without a filter.
    All,
    /// Only these hooks (TransformerLens's `names_filter` as a list).
    Only(BTreeSet<String>),
}

impl Names {
    /// A filter of the given names.
    pub fn only<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        Names::Only(names.into_iter().map(|s| s.as_ref().to_string()).collect())
    }

    /// Whether hook `name` is cached.
    pub fn contains(&self, name: &str) -> bool {
        match self {
            Names::Nothing => false,
            Names::All => true,
            Names::Only(set) => set.contains(name),
        }
    }

    /// Refuses a name that is not a hook of `config`, on request included ([`available`]): a
    /// typo would otherwise cache nothing.
    pub fn check(&self, config: &Config) -> Result<()> {
        if let Names::Only(set) = self {
            let known: Vec<String> = available(config, 1, 1).into_iter().map(|h| h.name).collect();
            for name in set {
                check_name(&known, name)?;
            }
        }
        Ok(())
    }
}

/// Errors unless `name` is one of `known`, suggesting the closest known name.
pub(crate) fn check_name(known: &[String], name: &str) -> Result<()> {
    if known.iter().any(|k| k == name) {
        return Ok(());
    }
    let suggestion = known
        .iter()
        .filter(|k| k.ends_with(name.rsplit('.').next().unwrap_or(name)))
        .take(3)
        .cloned()
        .collect::<Vec<_>>();
    let hint = if suggestion.is_empty() { String::new() } else { format!(" (did you mean {}?)", suggestion.join(", ")) };
    Err(Error::Input(format!("{name:?} is not a hook of this model{hint}")))
}

/// The hook called `name` among `hooks`, or an error naming it.
pub(crate) fn find<'a>(hooks: &'a [Hook], name: &str) -> Result<&'a Hook> {
    hooks.iter().find(|h| h.name == name).ok_or_else(|| {
        let known: Vec<String> = hooks.iter().map(|h| h.name.clone()).collect();
        check_name(&known, name).err().unwrap_or_else(|| Error::Input(format!("{name:?} is not a hook of this model")))
    })
}

/// Cached activations by hook name, in forward order (like TransformerLens's `ActivationCache`).
#[derive(Clone, Debug)]
pub struct Cache<T> {
    entries: Vec<(String, T)>,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Self { entries: Vec::new() }
    }
}

impl<T> Cache<T> {
    /// The activation of hook `name`, if it was cached.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The cached hook names, in forward order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// `(name, activation)` pairs in forward order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.entries.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Number of cached activations.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `(name, activation)` pairs, in forward order.
    pub fn into_entries(self) -> Vec<(String, T)> {
        self.entries
    }

    /// Adds an activation (the forward passes call this in forward order). A hook that fires
    /// again (ln1 once per q, k and v input with `use_split_qkv_input`) keeps its place and takes
    /// the last value, as TransformerLens's cache dictionary does.
    pub(crate) fn push(&mut self, name: &str, value: T) {
        match self.entries.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((name.to_string(), value)),
        }
    }

    /// The same cache with every activation converted by `f`.
    pub fn try_map<U>(self, mut f: impl FnMut(&str, T) -> Result<U>) -> Result<Cache<U>> {
        let entries = self.entries.into_iter().map(|(n, t)| f(&n, t).map(|u| (n, u))).collect::<Result<_>>()?;
        Ok(Cache { entries })
    }
}

/// Checks tokens \[B, S\] against the config (ids in `[0, d_vocab)`, `1 <= S <= n_ctx`, `B >= 1`)
/// and returns `(B, S)`.
pub fn check_tokens(config: &Config, tokens: ndarray::ArrayViewD<'_, i64>) -> Result<(usize, usize)> {
    let &[batch, seq] = tokens.shape() else {
        return Err(Error::Shape(format!("tokens are {} but must be [batch, positions]", fmt_shape(tokens.shape()))));
    };
    if batch == 0 || seq == 0 {
        return Err(Error::Shape(format!("tokens are {}: there must be at least one sequence and one position", fmt_shape(tokens.shape()))));
    }
    if seq > config.n_ctx {
        return Err(Error::Shape(format!("tokens have {seq} positions but the model's n_ctx is {}", config.n_ctx)));
    }
    if let Some((index, &bad)) = tokens.indexed_iter().find(|(_, &t)| t < 0 || t as u64 >= config.d_vocab as u64) {
        return Err(Error::Input(format!(
            "token {bad} at {:?} is out of range: token ids must lie in [0, {}) (d_vocab)",
            index.slice(),
            config.d_vocab
        )));
    }
    Ok((batch, seq))
}

/// Checks every intervention against the run's hooks (name, selection, patch shape).
pub fn check_interventions(hooks: &[Hook], interventions: &[crate::model::intervention::Intervention]) -> Result<()> {
    for intervention in interventions {
        intervention.selection(find(hooks, &intervention.hook)?)?;
    }
    Ok(())
}
