//! A training run's config: one TOML file that says everything (model, data, optimizer, schedule,
//! length, batch, evaluation and checkpoint intervals, seed, output folder), read strictly
//! ([`super::fields`] names every key), with `--set key=value` overrides and shipped presets.
//!
//! The model table uses TransformerLens's field names and goes through the same strict reader as
//! a model file ([`Config::from_json`]); `d_vocab` (p + 1), `d_vocab_out` (p) and `n_ctx` (3)
//! follow from the data when left out (61, 61 and 59 for Othello, [`super::othello::DERIVED`]). The resolved config ([`TrainConfig::to_toml`]) lists every
//! value, so the `config.toml` a run writes reproduces it alone.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::fields::{apply_set, check_table};
use super::schedule::Schedule;
use crate::error::{Error, Result};
use crate::games::modular::Op;
use crate::reference::backward::adamw::AdamW;
use crate::transformer::Config;

/// The shipped presets, by name (`--preset NAME`).
pub const PRESETS: &[(&str, &str)] = &[
    ("grokking", include_str!("../../presets/grokking.toml")),
    ("grokking-small", include_str!("../../presets/grokking-small.toml")),
    ("othello-small", include_str!("../../presets/othello-small.toml")),
    ("othello-gpt", include_str!("../../presets/othello-gpt.toml")),
];

/// What the model trains on.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// SPEC's modular arithmetic: every `(a, b)` of `a op b mod p`, split by `train_fraction`.
    Modular { p: u64, op: Op, train_fraction: f64, seed: u64 },
    /// Othello next-move prediction ([`super::othello`]): fresh random games of `seed` (or the
    /// games file `games`), and `test_games` held-out games.
    Othello(super::othello::OthelloData),
}

/// The optimizer: AdamW's hyper-parameters (the learning rate is the schedule's peak), which
/// parameters decay, and gradient clipping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Optimizer {
    /// AdamW's hyper-parameters; `lr` is the base rate the schedule scales.
    pub adamw: AdamW,
    /// Decay every parameter (torch's default) or exempt biases and layer-norm weights.
    pub decay_biases_and_norms: bool,
    /// Clip the global gradient norm to this (`None`: no clipping).
    pub max_grad_norm: Option<f64>,
    /// Grokfast's EMA gradient filter before clipping and AdamW (`None`: off).
    pub grokfast: Option<super::grokfast::Grokfast>,
}

/// How many examples each update sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batch {
    /// The whole training set every update.
    Full,
    /// Mini-batches of this size, reshuffled every epoch.
    Size(usize),
}

/// A resolved training config.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// The model.
    pub model: Config,
    /// TransformerLens's `initializer_range`: the standard deviation of every `W_*`.
    pub initializer_range: f64,
    /// The data.
    pub data: Data,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// The learning-rate schedule.
    pub schedule: Schedule,
    /// The number of updates (`epochs` are converted when the data size is known).
    pub length: Length,
    /// The batch.
    pub batch: Batch,
    /// Evaluate (and redraw the curves) every this many updates.
    pub eval_every: u64,
    /// Write a checkpoint every this many updates.
    pub checkpoint_every: u64,
    /// Seeds the initial weights (and the data, unless `data.seed` is given).
    pub seed: u64,
    /// The output folder.
    pub out: PathBuf,
    /// Grokking's progress measures at each evaluation of a modular-addition run, with this many
    /// key frequencies (`progress_key_frequencies`; 0: not measured). See
    /// [`crate::analysis::progress`].
    pub progress_key_frequencies: u64,
}

/// How long the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    /// This many updates.
    Steps(u64),
    /// This many passes over the training set.
    Epochs(u64),
}

impl TrainConfig {
    /// Reads a config from TOML text, after applying the `--set` overrides in order.
    pub fn from_toml(text: &str, sets: &[String]) -> Result<Self> {
        let mut table: Table = text.parse().map_err(|e: toml::de::Error| Error::Input(format!("config: {}", e.message())))?;
        check_table(&table)?;
        for set in sets {
            apply_set(&mut table, set)?;
        }
        Self::from_table(&table)
    }

    /// Reads a config file (see [`TrainConfig::from_toml`]).
    pub fn from_file(path: &Path, sets: &[String]) -> Result<Self> {
        let text = crate::io::read_to_string(path)?;
        Self::from_toml(&text, sets).map_err(|e| Error::File { path: path.display().to_string(), message: e.to_string() })
    }

    /// A shipped preset, with overrides.
    pub fn preset(name: &str, sets: &[String]) -> Result<Self> {
        let text = PRESETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).ok_or_else(|| {
            Error::Input(format!("no preset {name:?} (presets: {})", PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")))
        })?;
        Self::from_toml(text, sets).map_err(|e| Error::Input(format!("preset {name}: {e}")))
    }

    fn from_table(t: &Table) -> Result<Self> {
        let get = |key: &str| lookup(t, key);
        let data = read_data(t)?;
        let model = match &data {
            Data::Modular { p, .. } => read_model(t, &[("d_vocab", p + 1), ("d_vocab_out", *p), ("n_ctx", 3)], &format!("modular data with p = {p}"))?,
            Data::Othello(_) => read_model(t, &super::othello::DERIVED, "othello data")?,
        };
        let initializer_range = match get("model.initializer_range") {
            Some(v) => positive("model.initializer_range", float(v))?,
            None => 0.8 / (model.d_model as f64).sqrt(),
        };
        if let Some(mode) = get("model.init_mode").and_then(Value::as_str) {
            if mode != "gpt2" {
                return Err(Error::Input(format!("config key `model.init_mode` is {mode:?} but only \"gpt2\" is implemented")));
            }
        }
        let length = match (get("steps"), get("epochs")) {
            (Some(_), Some(_)) => return Err(Error::Input("config keys `steps` and `epochs` exclude each other: give one".into())),
            (Some(v), None) => Length::Steps(int(v)),
            (None, Some(v)) => Length::Epochs(int(v)),
            (None, None) => return Err(Error::Input("config key `steps` (or `epochs`) is missing".into())),
        };
        let batch = match get("batch") {
            None => Batch::Full,
            Some(Value::String(_)) => Batch::Full,
            Some(v) => Batch::Size(int(v) as usize),
        };
        let every = |key: &str, default: u64| -> Result<u64> {
            let n = get(key).map(int).unwrap_or(default);
            if n == 0 {
                return Err(Error::Input(format!("config key `{key}` is 0 but must be at least 1")));
            }
            Ok(n)
        };
        Ok(TrainConfig {
            model,
            initializer_range,
            data,
            optimizer: read_optimizer(t)?,
            schedule: Schedule::from_table(t)?,
            length,
            batch,
            eval_every: every("eval_every", 100)?,
            checkpoint_every: every("checkpoint_every", 1000)?,
            seed: get("seed").map(int).unwrap_or(0),
            out: PathBuf::from(get("out").and_then(Value::as_str).unwrap_or("runs/train")),
            progress_key_frequencies: get("progress_key_frequencies").map(int).unwrap_or(5),
        })
    }

    /// The resolved config as TOML: every value explicit, readable by [`TrainConfig::from_toml`].
    pub fn to_toml(&self) -> String {
        let mut top = Table::new();
        top.insert("seed".into(), Value::Integer(self.seed as i64));
        top.insert("out".into(), Value::String(self.out.display().to_string()));
        match self.length {
            Length::Steps(n) => top.insert("steps".into(), Value::Integer(n as i64)),
            Length::Epochs(n) => top.insert("epochs".into(), Value::Integer(n as i64)),
        };
        top.insert(
            "batch".into(),
            match self.batch {
                Batch::Full => Value::String("full".into()),
                Batch::Size(n) => Value::Integer(n as i64),
            },
        );
        top.insert("eval_every".into(), Value::Integer(self.eval_every as i64));
        top.insert("checkpoint_every".into(), Value::Integer(self.checkpoint_every as i64));
        top.insert("progress_key_frequencies".into(), Value::Integer(self.progress_key_frequencies as i64));
        top.insert("model".into(), Value::Table(model_table(&self.model, self.initializer_range)));
        let data = match &self.data {
            Data::Modular { p, op, train_fraction, seed } => {
                let mut data = Table::new();
                data.insert("game".into(), Value::String("modular".into()));
                data.insert("p".into(), Value::Integer(*p as i64));
                data.insert("op".into(), Value::String(op_name(*op).into()));
                data.insert("train_fraction".into(), Value::Float(*train_fraction));
                data.insert("seed".into(), Value::Integer(*seed as i64));
                data
            }
            Data::Othello(o) => o.to_table(),
        };
        top.insert("data".into(), Value::Table(data));
        let o = &self.optimizer;
        let mut opt = Table::new();
        for (k, v) in [("lr", o.adamw.lr), ("beta1", o.adamw.beta1), ("beta2", o.adamw.beta2), ("eps", o.adamw.eps), ("weight_decay", o.adamw.weight_decay)] {
            opt.insert(k.into(), Value::Float(v));
        }
        opt.insert("decay_biases_and_norms".into(), Value::Boolean(o.decay_biases_and_norms));
        opt.insert("max_grad_norm".into(), o.max_grad_norm.map_or(Value::String("none".into()), Value::Float));
        super::grokfast::Grokfast::to_table(o.grokfast, &mut opt);
        top.insert("optimizer".into(), Value::Table(opt));
        top.insert("schedule".into(), Value::Table(self.schedule.to_table()));
        toml::to_string(&top).unwrap_or_default()
    }

    /// The number of updates, for a training set of `n_train` examples.
    pub fn total_steps(&self, n_train: usize) -> u64 {
        match self.length {
            Length::Steps(n) => n,
            Length::Epochs(e) => e * self.steps_per_epoch(n_train),
        }
    }

    /// Updates per pass over `n_train` examples.
    pub fn steps_per_epoch(&self, n_train: usize) -> u64 {
        match self.batch {
            Batch::Full => 1,
            Batch::Size(b) => n_train.div_ceil(b.max(1)).max(1) as u64,
        }
    }
}

/// The value at dotted `key`, if present.
pub(crate) fn lookup<'t>(t: &'t Table, key: &str) -> Option<&'t Value> {
    match key.split_once('.') {
        Some((outer, leaf)) => t.get(outer)?.as_table()?.get(leaf),
        None => t.get(key),
    }
}

/// An integer value (checked ≥ 0 by [`check_table`]).
pub(crate) fn int(v: &Value) -> u64 {
    v.as_integer().unwrap_or(0).max(0) as u64
}

/// A float value (an integer is read as a float).
pub(crate) fn float(v: &Value) -> f64 {
    v.as_float().or_else(|| v.as_integer().map(|n| n as f64)).unwrap_or(f64::NAN)
}

fn positive(key: &str, x: f64) -> Result<f64> {
    if x > 0.0 && x.is_finite() {
        Ok(x)
    } else {
        Err(Error::Input(format!("config key `{key}` is {x} but must be > 0")))
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Add => "add",
        Op::Sub => "sub",
        Op::Mul => "mul",
        Op::Div => "div",
    }
}

fn read_data(t: &Table) -> Result<Data> {
    let get = |key: &str| lookup(t, key);
    match get("data.game").and_then(Value::as_str).unwrap_or("modular") {
        "modular" => {}
        "othello" => return super::othello::OthelloData::from_table(t).map(Data::Othello),
        other => return Err(Error::Input(format!("config key `data.game` is {other:?} but must be \"modular\" or \"othello\""))),
    }
    let p = get("data.p").map(int).ok_or_else(|| Error::Input("config key `data.p` is missing".into()))?;
    let op: Op = get("data.op").and_then(Value::as_str).unwrap_or("add").parse().map_err(|e: Error| Error::Input(format!("config key `data.op`: {e}")))?;
    let train_fraction = get("data.train_fraction").map(float).unwrap_or(0.3);
    if !(train_fraction > 0.0 && train_fraction <= 1.0) {
        return Err(Error::Input(format!("config key `data.train_fraction` is {train_fraction} but must be in (0, 1]")));
    }
    let seed = get("data.seed").or_else(|| get("seed")).map(int).unwrap_or(0);
    if !crate::games::modular::is_prime(p) || p > crate::games::modular::MAX_P {
        return Err(Error::Input(format!("config key `data.p` is {p} but must be a prime <= {}", crate::games::modular::MAX_P)));
    }
    Ok(Data::Modular { p, op, train_fraction, seed })
}

/// The `[model]` table as a [`Config`]; `derived` are the sizes the data fixes (`what` names it).
fn read_model(t: &Table, derived: &[(&str, u64)], what: &str) -> Result<Config> {
    let model = t.get("model").and_then(Value::as_table).cloned().unwrap_or_default();
    let mut json = serde_json::Map::new();
    for &(key, want) in derived {
        match model.get(key).map(int) {
            Some(got) if got != want => return Err(Error::Input(format!("config key `model.{key}` is {got} but {what} needs {want}"))),
            _ => {
                json.insert(key.into(), want.into());
            }
        }
    }
    json.insert("attn_only".into(), false.into());
    json.insert("eps".into(), 1e-5.into());
    json.insert("positional_embedding_type".into(), "standard".into());
    json.insert("normalization_type".into(), "LN".into());
    json.insert("act_fn".into(), "relu".into());
    for (key, value) in &model {
        let v = match (key.as_str(), value) {
            ("init_mode" | "initializer_range", _) => continue,
            ("normalization_type", Value::String(s)) if s == "none" => serde_json::Value::Null,
            (_, Value::Integer(n)) => (*n).into(),
            (_, Value::Float(x)) => (*x).into(),
            (_, Value::Boolean(b)) => (*b).into(),
            (_, Value::String(s)) => s.clone().into(),
            _ => return Err(Error::Input(format!("config key `model.{key}` has an unsupported value"))),
        };
        json.insert(key.clone(), v);
    }
    if !json.contains_key("d_mlp") {
        if let Some(d) = json.get("d_model").and_then(serde_json::Value::as_u64) {
            json.insert("d_mlp".into(), (4 * d).into());
        }
    }
    Config::from_json(&serde_json::Value::Object(json).to_string()).map_err(|e| Error::Input(format!("config [model]: {e}")))
}

fn model_table(c: &Config, initializer_range: f64) -> Table {
    let mut m = Table::new();
    for (k, v) in [("n_layers", c.n_layers), ("d_model", c.d_model), ("n_heads", c.n_heads), ("d_head", c.d_head)] {
        m.insert(k.into(), Value::Integer(v as i64));
    }
    if let Some(d) = c.d_mlp {
        m.insert("d_mlp".into(), Value::Integer(d as i64));
    }
    for (k, v) in [("d_vocab", c.d_vocab), ("d_vocab_out", c.d_vocab_out), ("n_ctx", c.n_ctx)] {
        m.insert(k.into(), Value::Integer(v as i64));
    }
    m.insert("act_fn".into(), Value::String(c.act_fn.name().into()));
    let norm = match c.normalization {
        crate::model::config::Normalization::Ln => "LN",
        crate::model::config::Normalization::LnPre => "LNPre",
        crate::model::config::Normalization::Rms => "RMS",
        crate::model::config::Normalization::RmsPre => "RMSPre",
        crate::model::config::Normalization::None => "none",
    };
    m.insert("normalization_type".into(), Value::String(norm.into()));
    m.insert("attn_only".into(), Value::Boolean(c.attn_only));
    m.insert("eps".into(), Value::Float(c.eps));
    m.insert("init_mode".into(), Value::String("gpt2".into()));
    m.insert("initializer_range".into(), Value::Float(initializer_range));
    for (k, v) in variant_fields(c) {
        m.entry(k).or_insert(v);
    }
    m
}

/// The TransformerLens variant fields `c` uses (those not at their defaults) as TOML values, so
/// that the resolved config, and a run resumed from it, build the same model.
fn variant_fields(c: &Config) -> Vec<(String, Value)> {
    let Ok(serde_json::Value::Object(all)) = serde_json::from_str::<serde_json::Value>(&c.to_json()) else { return Vec::new() };
    let default_scale = (c.d_head as f64).sqrt();
    let field = |k: &str, v: &serde_json::Value| match v {
        serde_json::Value::Bool(true) if k != "use_attn_scale" => Some(Value::Boolean(true)),
        serde_json::Value::String(s) if !matches!(s.as_str(), "standard" | "causal") => Some(Value::String(s.clone())),
        serde_json::Value::Number(n) if k == "attn_scale" => n.as_f64().filter(|x| (x - default_scale).abs() > 1e-12 * default_scale).map(Value::Float),
        _ => None,
    };
    all.iter().filter_map(|(k, v)| field(k, v).map(|v| (k.clone(), v))).collect()
}

fn read_optimizer(t: &Table) -> Result<Optimizer> {
    let get = |key: &str, default: f64| lookup(t, &format!("optimizer.{key}")).map(float).unwrap_or(default);
    let adamw = AdamW {
        lr: get("lr", 1e-3),
        beta1: get("beta1", 0.9),
        beta2: get("beta2", 0.999),
        eps: get("eps", 1e-8),
        weight_decay: get("weight_decay", 0.01),
    };
    adamw.check().map_err(|e| Error::Input(format!("config [optimizer]: {e}")))?;
    let max_grad_norm = match lookup(t, "optimizer.max_grad_norm") {
        None | Some(Value::String(_)) => None,
        Some(v) => Some(positive("optimizer.max_grad_norm", float(v))?),
    };
    let decay_biases_and_norms = lookup(t, "optimizer.decay_biases_and_norms").and_then(Value::as_bool).unwrap_or(true);
    let grokfast = super::grokfast::Grokfast::from_table(t)?;
    Ok(Optimizer { adamw, decay_biases_and_norms, max_grad_norm, grokfast })
}
