//! The activation-patching sweeps, with TransformerLens's semantics (`transformer_lens.patching`):
//! which hook each patches, which elements one patch takes from the clean run, and the shape of
//! the result.
//!
//! A patch replaces, in the corrupt run and for every row of the batch, the elements of one hook
//! that a position and/or a head selects with the clean run's values there; the sweep's value for
//! that patch is the metric averaged over the batch. Patches are listed in the row-major order of
//! the result array, so the i-th patch's value is the i-th element.

use crate::error::{Error, Result};
use crate::transformer::{Config, Intervention};

/// One sweep, by the key its result takes in a fixture (`patch.<key>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// `get_act_patch_resid_pre`: `blocks.{l}.hook_resid_pre` at one position, \[n_layers, S\].
    ResidPre,
    /// `get_act_patch_attn_out`: `blocks.{l}.hook_attn_out` at one position, \[n_layers, S\].
    AttnOut,
    /// `get_act_patch_mlp_out`: `blocks.{l}.hook_mlp_out` at one position, \[n_layers, S\].
    MlpOut,
    /// `get_act_patch_attn_head_out_all_pos`: head h's `attn.hook_z` everywhere, \[n_layers, n_heads\].
    ZAllPos,
    /// `get_act_patch_attn_head_out_by_pos`: head h's `attn.hook_z` at one position,
    /// \[n_layers, S, n_heads\].
    ZByPos,
    /// `get_act_patch_attn_head_q_all_pos`: head h's `attn.hook_q`, \[n_layers, n_heads\].
    QAllPos,
    /// `get_act_patch_attn_head_k_all_pos`: head h's `attn.hook_k`, \[n_layers, n_heads\].
    KAllPos,
    /// `get_act_patch_attn_head_v_all_pos`: head h's `attn.hook_v`, \[n_layers, n_heads\].
    VAllPos,
    /// `get_act_patch_attn_head_pattern_all_pos`: head h's `attn.hook_pattern`, \[n_layers, n_heads\].
    PatternAllPos,
}

/// Where one patch acts: a layer, and the position and head it selects (`None`: all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    /// The block.
    pub layer: usize,
    /// The position (the query position for the pattern), or every position.
    pub pos: Option<usize>,
    /// The head, or (for hooks without one) none.
    pub head: Option<usize>,
}

impl Sweep {
    /// Every sweep, in the order results are written.
    pub const ALL: [Sweep; 9] = [
        Sweep::ResidPre,
        Sweep::AttnOut,
        Sweep::MlpOut,
        Sweep::ZAllPos,
        Sweep::ZByPos,
        Sweep::QAllPos,
        Sweep::KAllPos,
        Sweep::VAllPos,
        Sweep::PatternAllPos,
    ];

    /// The key of its result (`patch.<key>` in a fixture or an output file).
    pub fn key(self) -> &'static str {
        match self {
            Sweep::ResidPre => "resid_pre",
            Sweep::AttnOut => "attn_out",
            Sweep::MlpOut => "mlp_out",
            Sweep::ZAllPos => "z_all_pos",
            Sweep::ZByPos => "z_by_pos",
            Sweep::QAllPos => "q_all_pos",
            Sweep::KAllPos => "k_all_pos",
            Sweep::VAllPos => "v_all_pos",
            Sweep::PatternAllPos => "pattern_all_pos",
        }
    }

    /// The sweep whose key is `key`.
    pub fn from_key(key: &str) -> Result<Sweep> {
        Sweep::ALL.into_iter().find(|s| s.key() == key).ok_or_else(|| {
            let known: Vec<&str> = Sweep::ALL.iter().map(|s| s.key()).collect();
            Error::Input(format!("unknown sweep {key:?}; known sweeps: {}", known.join(", ")))
        })
    }

    /// Whether `config`'s model has the sweep's hook (attention-only models have no MLP).
    pub fn available(self, config: &Config) -> bool {
        self != Sweep::MlpOut || config.mlp().is_some()
    }

    /// The hook it patches in block `layer`.
    pub fn hook(self, layer: usize) -> String {
        let leaf = match self {
            Sweep::ResidPre => "hook_resid_pre",
            Sweep::AttnOut => "hook_attn_out",
            Sweep::MlpOut => "hook_mlp_out",
            Sweep::ZAllPos | Sweep::ZByPos => "attn.hook_z",
            Sweep::QAllPos => "attn.hook_q",
            Sweep::KAllPos => "attn.hook_k",
            Sweep::VAllPos => "attn.hook_v",
            Sweep::PatternAllPos => "attn.hook_pattern",
        };
        format!("blocks.{layer}.{leaf}")
    }

    /// The shape of its result for `config` on S positions.
    pub fn shape(self, config: &Config, seq: usize) -> Vec<usize> {
        let (l, h) = (config.n_layers, config.n_heads);
        match self {
            Sweep::ResidPre | Sweep::AttnOut | Sweep::MlpOut => vec![l, seq],
            Sweep::ZByPos => vec![l, seq, h],
            _ => vec![l, h],
        }
    }

    /// Every patch of the sweep, in the row-major order of its result.
    pub fn sites(self, config: &Config, seq: usize) -> Vec<Site> {
        let (layers, heads) = (0..config.n_layers, config.n_heads);
        match self {
            Sweep::ResidPre | Sweep::AttnOut | Sweep::MlpOut => {
                layers.flat_map(|layer| (0..seq).map(move |p| Site { layer, pos: Some(p), head: None })).collect()
            }
            Sweep::ZByPos => layers
                .flat_map(|layer| (0..seq).flat_map(move |p| (0..heads).map(move |h| Site { layer, pos: Some(p), head: Some(h) })))
                .collect(),
            _ => layers.flat_map(|layer| (0..heads).map(move |h| Site { layer, pos: None, head: Some(h) })).collect(),
        }
    }
}

impl Site {
    /// The intervention that patches this site of `sweep` (every batch row; values to be given
    /// by the caller's `make`, e.g. a host array or a GPU tensor of the hook's shape).
    pub fn intervention(self, sweep: Sweep, make: impl FnOnce(String) -> Intervention) -> Intervention {
        let mut i = make(sweep.hook(self.layer));
        i.pos = self.pos;
        i.head = self.head;
        i
    }
}
