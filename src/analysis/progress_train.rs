//! Grokking's progress measures ([`super::progress`]) in a training run: added to each
//! evaluation's `metrics.jsonl` line of a modular-addition run (`progress_key_frequencies` key
//! frequencies, at most (p−1)/2; 0 turns them off), and drawn over training into
//! `progress.png` (train, test, restricted and excluded loss on a log scale; total squared
//! weight). The weights are read back from the trainer ([`Backend::state`]) and measured on
//! the host in float64.

use std::path::Path;

use super::progress::{measure, pairs_of, Progress};
use crate::error::Result;
use crate::games::modular::{ModularData, Op};
use crate::plot::{write_line_charts, LineChart, Series};
use crate::train::config::TrainConfig;
use crate::train::run::Metrics;
use crate::train::Backend;

/// The number of key frequencies a run over `data` measures with (0: none).
pub fn key_count(config: &TrainConfig, data: &ModularData) -> usize {
    if data.op != Op::Add {
        return 0;
    }
    (config.progress_key_frequencies as usize).min((data.p as usize - 1) / 2)
}

/// `metrics` with the progress measures of the trainer's current weights filled in (unchanged
/// when the run measures none).
pub fn add_measures(config: &TrainConfig, data: &ModularData, backend: &mut dyn Backend, metrics: Metrics) -> Result<Metrics> {
    let keys = key_count(config, data);
    if keys == 0 {
        return Ok(metrics);
    }
    let state = backend.state()?;
    let m = measure(&config.model, &state.params, data.p as usize, &pairs_of(data.train_tokens.view()), keys)?;
    Ok(Metrics {
        key_frequencies: Some(m.key_frequencies),
        restricted_loss: Some(m.restricted_loss),
        excluded_loss: Some(m.excluded_loss),
        total_squared_weight: Some(m.total_squared_weight),
        ..metrics
    })
}

/// Draws the progress measures over training from `history` (nothing when no line has them).
pub fn write_progress_png(path: &Path, history: &[Metrics]) -> Result<()> {
    if history.iter().all(|m| m.restricted_loss.is_none()) {
        return Ok(());
    }
    let series = |name: &str, f: &dyn Fn(&Metrics) -> Option<f64>| Series {
        name: name.into(),
        points: history.iter().filter_map(|m| f(m).map(|y| (m.step as f64, y))).collect(),
    };
    let charts = [
        LineChart {
            title: "progress measures".into(),
            x_label: "step".into(),
            y_label: "cross-entropy (log scale)".into(),
            log_y: true,
            series: vec![
                series("train", &|m| Some(m.train_loss)),
                series("test", &|m| m.test_loss),
                series("restricted (all pairs)", &|m| m.restricted_loss),
                series("excluded (train pairs)", &|m| m.excluded_loss),
            ],
        },
        LineChart {
            title: "total squared weight".into(),
            x_label: "step".into(),
            y_label: "sum of squared parameters".into(),
            log_y: false,
            series: vec![series("weights", &|m| m.total_squared_weight)],
        },
    ];
    write_line_charts(path, &charts, 640, 420)
}

/// Draws the embedding's norm per frequency (index 0 the constant) and, beside it, the
/// neuron–logit map's (models with an MLP), into a PNG.
pub fn write_spectrum_png(path: &Path, m: &Progress, title: &str) -> Result<()> {
    let line = |name: &str, norms: &[f64]| Series { name: name.into(), points: norms.iter().enumerate().map(|(k, &n)| (k as f64, n)).collect() };
    let mut charts = vec![LineChart {
        title: title.into(),
        x_label: "frequency k (0: constant)".into(),
        y_label: "norm of W_E's Fourier component".into(),
        log_y: false,
        series: vec![line("embed.W_E", &m.embedding_norms)],
    }];
    if let Some(norms) = &m.neuron_logit_norms {
        charts.push(LineChart {
            title: "neuron-logit map W_L = W_out·W_U".into(),
            x_label: "output frequency k (0: constant)".into(),
            y_label: "norm of W_L's Fourier component".into(),
            log_y: false,
            series: vec![line("W_L (last MLP)", norms)],
        });
    }
    write_line_charts(path, &charts, 720, 420)
}
