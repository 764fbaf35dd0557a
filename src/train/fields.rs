//! The keys a training config may hold, each with the type of its value: the one table that both
//! the TOML reader ([`super::config`]) and `--set key=value` consult, so that an unknown key, a
//! value of the wrong type and a misspelt override are all refused with the key's dotted name.

use toml::{Table, Value};

use crate::error::{Error, Result};

/// The type of a config value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A whole number ≥ 0.
    Int,
    /// A number (a TOML integer is accepted and read as a float).
    Float,
    /// A string.
    Str,
    /// `true` or `false`.
    Bool,
    /// A whole number ≥ 1, or the string `"full"` (the whole training set).
    Batch,
    /// A number, or the string `"none"`.
    FloatOrNone,
}

/// Every key of a training config, dotted, with its kind.
pub const FIELDS: &[(&str, Kind)] = &[
    ("seed", Kind::Int),
    ("out", Kind::Str),
    ("steps", Kind::Int),
    ("epochs", Kind::Int),
    ("batch", Kind::Batch),
    ("eval_every", Kind::Int),
    ("checkpoint_every", Kind::Int),
    ("progress_key_frequencies", Kind::Int),
    ("model.n_layers", Kind::Int),
    ("model.d_model", Kind::Int),
    ("model.n_heads", Kind::Int),
    ("model.d_head", Kind::Int),
    ("model.d_mlp", Kind::Int),
    ("model.d_vocab", Kind::Int),
    ("model.d_vocab_out", Kind::Int),
    ("model.n_ctx", Kind::Int),
    ("model.act_fn", Kind::Str),
    ("model.normalization_type", Kind::Str),
    ("model.attn_only", Kind::Bool),
    ("model.eps", Kind::Float),
    // TransformerLens's variant fields (issue 13), as in a model config; the GPU backward
    // implements every one.
    ("model.positional_embedding_type", Kind::Str),
    ("model.use_attn_scale", Kind::Bool),
    ("model.attn_scale", Kind::Float),
    ("model.scale_attn_by_inverse_layer_idx", Kind::Bool),
    ("model.attention_dir", Kind::Str),
    ("model.parallel_attn_mlp", Kind::Bool),
    ("model.final_rms", Kind::Bool),
    ("model.use_attn_result", Kind::Bool),
    ("model.use_split_qkv_input", Kind::Bool),
    ("model.use_attn_in", Kind::Bool),
    ("model.use_hook_mlp_in", Kind::Bool),
    ("model.use_hook_tokens", Kind::Bool),
    ("model.init_mode", Kind::Str),
    ("model.initializer_range", Kind::Float),
    ("data.game", Kind::Str),
    ("data.p", Kind::Int),
    ("data.op", Kind::Str),
    ("data.train_fraction", Kind::Float),
    ("data.seed", Kind::Int),
    ("data.games", Kind::Str),
    ("data.test_games", Kind::Int),
    ("optimizer.lr", Kind::Float),
    ("optimizer.beta1", Kind::Float),
    ("optimizer.beta2", Kind::Float),
    ("optimizer.eps", Kind::Float),
    ("optimizer.weight_decay", Kind::Float),
    ("optimizer.decay_biases_and_norms", Kind::Bool),
    ("optimizer.max_grad_norm", Kind::FloatOrNone),
    ("optimizer.grokfast_alpha", Kind::Float),
    ("optimizer.grokfast_lambda", Kind::Float),
    ("schedule.kind", Kind::Str),
    ("schedule.warmup_steps", Kind::Int),
    ("schedule.final_lr", Kind::Float),
];

/// The tables a config may have (every other key is a value at the top level).
pub const TABLES: &[&str] = &["model", "data", "optimizer", "schedule"];

/// The kind of dotted key `key`, or an error naming it and the keys that exist.
pub fn kind_of(key: &str) -> Result<Kind> {
    FIELDS.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind).ok_or_else(|| {
        Error::Input(format!(
            "unknown config key `{key}` (known keys: {})",
            FIELDS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
        ))
    })
}

/// Checks that `value` suits `kind`; the message names `key`.
pub fn check_value(key: &str, kind: Kind, value: &Value) -> Result<()> {
    let ok = match (kind, value) {
        (Kind::Int, Value::Integer(n)) => *n >= 0,
        (Kind::Float, Value::Float(x)) => x.is_finite(),
        (Kind::Float, Value::Integer(_)) => true,
        (Kind::Str, Value::String(_)) => true,
        (Kind::Bool, Value::Boolean(_)) => true,
        (Kind::Batch, Value::Integer(n)) => *n >= 1,
        (Kind::Batch, Value::String(s)) => s == "full",
        (Kind::FloatOrNone, Value::Float(x)) => x.is_finite(),
        (Kind::FloatOrNone, Value::Integer(_)) => true,
        (Kind::FloatOrNone, Value::String(s)) => s == "none",
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let wanted = match kind {
        Kind::Int => "a whole number >= 0",
        Kind::Float => "a finite number",
        Kind::Str => "a string",
        Kind::Bool => "true or false",
        Kind::Batch => "a whole number >= 1 or \"full\"",
        Kind::FloatOrNone => "a finite number or \"none\"",
    };
    Err(Error::Input(format!("config key `{key}` is {} but must be {wanted}", crate::scalar::cut(&value.to_string(), 80))))
}

/// Checks every key of `table` against [`FIELDS`]: an unknown key or table, or a value of the
/// wrong type, is refused by its dotted name.
pub fn check_table(table: &Table) -> Result<()> {
    for (key, value) in table {
        match value {
            Value::Table(inner) if TABLES.contains(&key.as_str()) => {
                for (leaf, value) in inner {
                    let dotted = format!("{key}.{leaf}");
                    check_value(&dotted, kind_of(&dotted)?, value)?;
                }
            }
            _ if TABLES.contains(&key.as_str()) => {
                return Err(Error::Input(format!("config key `{key}` must be a table ([{key}])")));
            }
            _ => check_value(key, kind_of(key)?, value)?,
        }
    }
    Ok(())
}

/// Applies `--set key=value`: the value is read as the key's kind says (a string needs no
/// quotes; `"none"` and `"full"` are the words themselves).
pub fn apply_set(table: &mut Table, assignment: &str) -> Result<()> {
    let (key, text) = assignment
        .split_once('=')
        .ok_or_else(|| Error::Input(format!("--set {assignment:?} is not key=value")))?;
    let (key, text) = (key.trim(), text.trim());
    let kind = kind_of(key)?;
    let bad = || Error::Input(format!("--set {key}={text}: {text:?} is not {}", describe(kind)));
    let value = match kind {
        Kind::Int => Value::Integer(text.parse::<i64>().map_err(|_| bad())?),
        Kind::Float => Value::Float(text.parse::<f64>().map_err(|_| bad())?),
        Kind::Str => Value::String(text.trim_matches('"').to_string()),
        Kind::Bool => Value::Boolean(text.parse::<bool>().map_err(|_| bad())?),
        Kind::Batch if text == "full" => Value::String(text.into()),
        Kind::Batch => Value::Integer(text.parse::<i64>().map_err(|_| bad())?),
        Kind::FloatOrNone if text == "none" => Value::String(text.into()),
        Kind::FloatOrNone => Value::Float(text.parse::<f64>().map_err(|_| bad())?),
    };
    check_value(key, kind, &value)?;
    match key.split_once('.') {
        Some((outer, leaf)) => {
            let inner = table.entry(outer.to_string()).or_insert_with(|| Value::Table(Table::new()));
            match inner {
                Value::Table(t) => {
                    t.insert(leaf.to_string(), value);
                }
                _ => return Err(Error::Input(format!("config key `{outer}` must be a table ([{outer}])"))),
            }
        }
        None => {
            table.insert(key.to_string(), value);
        }
    }
    Ok(())
}

fn describe(kind: Kind) -> &'static str {
    match kind {
        Kind::Int => "a whole number",
        Kind::Float => "a number",
        Kind::Str => "a string",
        Kind::Bool => "true or false",
        Kind::Batch => "a whole number or full",
        Kind::FloatOrNone => "a number or none",
    }
}
