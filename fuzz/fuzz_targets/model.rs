//! Arbitrary bytes as the inputs of `shaderlens run`: a config JSON, a weights npz, a tokens npy,
//! `--cache` names and interventions, through every check of the model path and, when the model
//! is small, the float64 host forward pass with the cache and interventions. Nothing may panic,
//! abort, hang or allocate more than the bytes justify (a config of 10^7 layers against a small
//! file, an npz member claiming gigabytes, a hook name with a typo).
//!
//! Layout of an input: a 2-byte and a 4-byte little-endian length, then the config (first
//! length), the weights npz (second length), and the rest split at the first 0xFF byte into the
//! tokens npy and a text part. Each line of the text is `cache NAME`, `zero HOOK`,
//! `scale HOOK F` or `replace HOOK`, optionally followed by `head=N`, `pos=N` or `batch=N`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ndarray::{ArrayD, IxDyn};
use shaderlens::fixture::{read_npy, Fixture, NpyArray};
use shaderlens::transformer::{check_interventions, check_tokens, cli, hooks, Config, Intervention, Weights};

/// Models and activations larger than this many elements are only checked, not run.
const SMALL: usize = 1 << 15;

fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let n = n.min(data.len());
    let (head, rest) = data.split_at(n);
    *data = rest;
    head
}

fn parse_intervention(line: &str) -> Option<Intervention> {
    let mut words = line.split_whitespace();
    let verb = words.next()?;
    let hook = words.next()?.to_string();
    let mut intervention = match verb {
        "zero" => Intervention::zero(hook),
        "scale" => Intervention::scale(hook, words.next()?.parse().ok()?),
        // The values are filled in once the hook's shape is known.
        "replace" => Intervention::replace(hook, ArrayD::zeros(IxDyn(&[0]))),
        _ => return None,
    };
    for word in words {
        let (key, value) = word.split_once('=')?;
        let value: usize = value.parse().ok()?;
        intervention = match key {
            "head" => intervention.at_head(value),
            "pos" => intervention.at_pos(value),
            "batch" => intervention.at_batch(value),
            _ => return None,
        };
    }
    Some(intervention)
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    if data.len() < 6 {
        return;
    }
    let config_len = u16::from_le_bytes([data[0], data[1]]) as usize;
    let weights_len = u32::from_le_bytes([data[2], data[3], data[4], data[5]]) as usize;
    data = &data[6..];
    let config_text = take(&mut data, config_len);
    let weights_bytes = take(&mut data, weights_len);
    let split = data.iter().position(|&b| b == 0xFF).unwrap_or(data.len());
    let tokens_bytes = &data[..split];
    let text = String::from_utf8_lossy(data.get(split + 1..).unwrap_or_default());

    let Ok(config_text) = std::str::from_utf8(config_text) else { return };
    let Ok(config) = Config::from_json(config_text) else { return };
    let _ = Config::from_json(&config.to_json());
    let Ok(npz) = Fixture::from_bytes("transformer", "fuzz", weights_bytes) else { return };
    // As `run` does: nothing per layer (hook names, cache names) before the weights agree.
    let Ok(weights) = Weights::from_fixture(&config, &npz) else { return };
    let tokens = match read_npy(&mut &tokens_bytes[..]) {
        Ok(NpyArray::I64(a)) => a,
        Ok(NpyArray::I32(a)) => a.mapv(i64::from),
        _ => return,
    };
    let Ok((batch, seq)) = check_tokens(&config, tokens.view()) else { return };

    let mut cache = Vec::new();
    let mut interventions = Vec::new();
    for line in text.lines() {
        match line.strip_prefix("cache ") {
            Some(name) => cache.push(name.trim().to_string()),
            None => interventions.extend(parse_intervention(line)),
        }
    }
    let names = cli::cache_names(&config, &cache);
    // The hook list grows with the layers: list it only for small models, and run only when all
    // the activations together are small.
    if config.n_layers > 64 || batch.saturating_mul(seq) > SMALL {
        return;
    }
    let hooks = hooks(&config, batch, seq);
    let activations = hooks.iter().fold(0usize, |total, h| {
        total.saturating_add(h.shape.iter().fold(1usize, |n, &d| n.saturating_mul(d)))
    });
    if activations > 8 * SMALL {
        return;
    }
    for intervention in &mut interventions {
        if let shaderlens::transformer::Action::Replace(shaderlens::transformer::Patch::Host(values)) = &mut intervention.action {
            if let Some(hook) = hooks.iter().find(|h| h.name == intervention.hook) {
                if hook.shape.iter().product::<usize>() <= SMALL {
                    *values = ArrayD::from_elem(IxDyn(&hook.shape), 0.5);
                }
            }
        }
    }
    let checked = check_interventions(&hooks, &interventions);
    let (Ok(names), Ok(())) = (names, checked) else { return };
    let parameters: usize = weights.named().iter().map(|(_, a)| a.len()).sum();
    if parameters > SMALL {
        return;
    }
    let weights64 = match weights.try_map(&config, |_, a| Ok(a.mapv(f64::from))) {
        Ok(w) => w,
        Err(_) => return,
    };
    let _ = shaderlens::reference::transformer::forward(&config, &weights64, tokens.view(), &names, &interventions);
});
