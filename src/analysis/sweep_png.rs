//! `shaderlens analyze patch`: the sweeps `shaderlens patch` wrote, drawn as heat maps. A sweep
//! with two axes is one map (layer × position with the tokens on the x axis, or layer × head); a
//! sweep with three (`z_by_pos`: layer × position × head) is one map per layer, head × position,
//! the layer's panels sharing one colour scale so that they compare by colour. With `--restored`
//! the maps show `(patched − corrupt) / (clean − corrupt)`, the normalisation of TransformerLens's
//! patching demos, which reads the same whatever the metric's scale.

use ndarray::{ArrayD, Axis};

use super::analyze_cli::PatchPngArgs;
use crate::error::{Error, Result};
use crate::fixture::Fixture;
use crate::plot::heatmap::{write_heatmap_groups, Heatmap};

/// The position labels `position:token` of the first prompt.
fn position_labels(clean: &ArrayD<i64>, n: usize) -> Vec<String> {
    (0..n).map(|s| format!("{}:{}", s, clean.get([0, s]).copied().unwrap_or(-1))).collect()
}

/// The numbers 0..n as labels.
fn numbers(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

/// A two-axis sweep \[layers, positions or heads\] as one map.
fn map_2d(key: &str, a: &ArrayD<f64>, clean: &ArrayD<i64>, what: &str) -> Heatmap {
    let (layers, cols) = (a.shape()[0], a.shape()[1]);
    let by_position = matches!(key, "patch.resid_pre" | "patch.attn_out" | "patch.mlp_out");
    Heatmap {
        title: format!("{} ({what})", key.trim_start_matches("patch.")),
        x_label: if by_position { "position:token (prompt 0)".into() } else { "head".into() },
        y_label: "layer".into(),
        columns: if by_position { position_labels(clean, cols) } else { numbers(cols) },
        rows: numbers(layers),
        values: (0..layers).map(|l| a.index_axis(Axis(0), l).iter().copied().collect()).collect(),
        diverging: true,
    }
}

/// A three-axis sweep \[layers, positions, heads\] as one map per layer: heads down, positions
/// across.
fn maps_3d(key: &str, a: &ArrayD<f64>, clean: &ArrayD<i64>, what: &str) -> Vec<Heatmap> {
    let (layers, positions, heads) = (a.shape()[0], a.shape()[1], a.shape()[2]);
    (0..layers)
        .map(|l| Heatmap {
            title: format!("{} layer {l} ({what})", key.trim_start_matches("patch.")),
            x_label: "position:token (prompt 0)".into(),
            y_label: "head".into(),
            columns: position_labels(clean, positions),
            rows: numbers(heads),
            values: (0..heads).map(|h| (0..positions).map(|s| a[[l, s, h]]).collect()).collect(),
            diverging: true,
        })
        .collect()
}

/// `analyze patch`: every two- and three-axis `patch.<sweep>` of the npz, drawn; returns the
/// summary naming what was drawn and what was not.
pub fn patch_png(args: &PatchPngArgs) -> Result<String> {
    crate::io::check_outputs(&[("--sweeps", args.sweeps.as_path())], &[("--png", args.png.as_path())])?;
    let npz = Fixture::open(&args.sweeps)?;
    let file = |e: Error| Error::File { path: args.sweeps.display().to_string(), message: e.to_string() };
    let clean = npz.int_array("clean").map_err(file)?;
    let keys: Vec<String> = npz.names().filter(|k| k.starts_with("patch.")).map(str::to_string).collect();
    let (what, restore) = if args.restored {
        let scalar = |name: &str| -> Result<f64> {
            let a = npz.expected(name).map_err(file)?;
            a.iter().next().copied().ok_or_else(|| file(Error::Input(format!("{name} is empty"))))
        };
        let (clean_metric, corrupt_metric) = (scalar("clean_metric")?, scalar("corrupt_metric")?);
        let gap = clean_metric - corrupt_metric;
        if gap.is_nan() || gap.abs() <= 1e-12 {
            return Err(Error::Input(format!(
                "--restored: the clean and corrupt metrics are equal ({clean_metric}), so no fraction of their difference can be drawn"
            )));
        }
        ("fraction restored", Some((corrupt_metric, gap)))
    } else {
        ("patched metric", None)
    };
    let (mut maps, mut groups, mut drawn, mut skipped) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (group, key) in keys.iter().enumerate() {
        let mut a = npz.expected(key).map_err(file)?;
        if let Some((corrupt, gap)) = restore {
            a.mapv_inplace(|v| (v - corrupt) / gap);
        }
        let new = match a.shape() {
            [_, _] => vec![map_2d(key, &a, &clean, what)],
            [_, _, _] if key == "patch.z_by_pos" => maps_3d(key, &a, &clean, what),
            _ => Vec::new(),
        };
        if new.is_empty() {
            skipped.push(key.as_str());
            continue;
        }
        drawn.push(if a.ndim() == 3 { format!("{key} (one per layer)") } else { key.clone() });
        groups.extend(std::iter::repeat_n(group, new.len()));
        maps.extend(new);
    }
    if maps.is_empty() {
        return Err(Error::Input(format!("--sweeps {}: no patch.<sweep> array of two axes (or z_by_pos's three) to draw", args.sweeps.display())));
    }
    write_heatmap_groups(&args.png, &maps, &groups, 480, 420)?;
    let mut summary = format!("drew {}: {} heat maps of the {what} ({})", args.png.display(), maps.len(), drawn.join(", "));
    if !skipped.is_empty() {
        summary.push_str(&format!("; not drawn (not a sweep of two or three axes): {}", skipped.join(", ")));
    }
    Ok(summary)
}
