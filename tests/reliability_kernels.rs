//! Issue 14's kernel defects (items 7-9), each a regression test on the GPU against the float64
//! reference: a NaN `v` at a masked key, layer norm rows of huge spread, and `eps` / `scale`
//! values that float32 cannot hold.

mod common;

use ndarray::{ArrayD, Dimension, IxDyn};
use shaderlens::compare::POINTWISE;
use shaderlens::ops::{attention, layer_norm, RowPath};
use shaderlens::reference;

/// Asserts every element of `got` is within SPEC's tolerance of `want` (NaN only where want is).
fn assert_close(what: &str, got: &ArrayD<f32>, want: &ArrayD<f64>, tol: shaderlens::compare::Tolerance) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    for ((index, &g), &w) in got.indexed_iter().zip(want.iter()) {
        let ok = if w.is_nan() { g.is_nan() } else { (f64::from(g) - w).abs() <= tol.atol + tol.rtol * w.abs() };
        assert!(ok, "{what}: at {:?} got {g}, want {w}", index.slice());
    }
}

/// Item 7: with v NaN at key 5 (S = 8, causal), queries 0-4 never see key 5, so their outputs are
/// finite and right on both the unfused and the fused path; queries 5-7 are NaN as numpy says.
#[test]
fn a_nan_value_at_a_masked_key_never_reaches_the_queries_that_cannot_see_it() {
    let gpu = common::gpu();
    let (s, d) = (8, 8);
    let mut n = 0.0f32;
    let mut next = || {
        n += 0.37;
        n.sin() * 0.9
    };
    let q = ArrayD::from_shape_simple_fn(IxDyn(&[1, 1, s, d]), &mut next);
    let k = ArrayD::from_shape_simple_fn(IxDyn(&[1, 1, s, d]), &mut next);
    let mut v = ArrayD::from_shape_simple_fn(IxDyn(&[1, 1, s, d]), &mut next);
    v[[0, 0, 5, 3]] = f32::NAN;
    let (want, _) = reference::attention::attention(
        q.mapv(f64::from).view(),
        k.mapv(f64::from).view(),
        v.mapv(f64::from).view(),
        true,
        0.35,
    )
    .unwrap();
    for fused in [false, true] {
        let (got, _) = attention::run(&gpu, q.view(), k.view(), v.view(), true, 0.35, !fused).unwrap();
        for i in 0..s {
            for c in 0..d {
                let (g, w) = (got[[0, 0, i, c]], want[[0, 0, i, c]]);
                if i < 5 {
                    assert!(g.is_finite(), "fused {fused}: query {i} column {c} is {g} but key 5 is masked for it");
                    assert!((f64::from(g) - w).abs() <= 1e-4 + 1e-3 * w.abs(), "fused {fused}: query {i}: got {g}, want {w}");
                } else if c == 3 {
                    assert!(g.is_nan(), "fused {fused}: query {i} sees the NaN at key 5 but got {g}");
                }
            }
        }
    }
}

/// Item 8: rows whose spread squares past float32's range (1e18 over 512 elements, 1e19 over 8,
/// and [3e38, -3e38] x 4) normalise as the float64 formula says, on both row paths.
#[test]
fn layer_norm_of_rows_with_huge_spread_matches_the_float64_formula() {
    let gpu = common::gpu();
    let rows: Vec<Vec<f32>> = vec![
        (0..512).map(|i| (if i % 2 == 0 { 1e18 } else { -1e18 }) * (1.0 + i as f32 / 512.0)).collect(),
        (0..8).map(|i| 1e19 * (i as f32 - 3.5)).collect(),
        [3e38f32, -3e38].repeat(4),
        (0..8).map(|i| 3.0e38 - i as f32 * 1e37).collect(),
        vec![1e30; 8],
    ];
    for row in rows {
        let n = row.len();
        let x = ArrayD::from_shape_vec(IxDyn(&[2, n]), [row.clone(), row.iter().map(|v| v * 0.5).collect()].concat()).unwrap();
        let w = ArrayD::from_shape_fn(IxDyn(&[n]), |i| 0.5 + i[0] as f32 / n as f32);
        let b = ArrayD::from_shape_fn(IxDyn(&[n]), |i| i[0] as f32 * 0.1 - 0.3);
        let want =
            reference::layer_norm::layer_norm(x.mapv(f64::from).view(), w.mapv(f64::from).view(), b.mapv(f64::from).view(), 1e-5)
                .unwrap();
        for path in [RowPath::InvocationPerRow, RowPath::WorkgroupPerRow] {
            let (got, scale) = layer_norm::run_full_with(&gpu, x.view(), Some((w.view(), b.view())), 1e-5, path).unwrap();
            assert_close(&format!("row of {n} starting {} ({path:?})", row[0]), &got, &want, POINTWISE);
            assert!(scale.iter().all(|s| s.is_finite() && *s > 0.0), "{path:?}: hook_scale {scale:?}");
        }
    }
}

/// Rows of ordinary size still come out as before (k = 1 leaves the arithmetic unchanged), and a
/// constant row with eps = 0 is still 0/0 = NaN as SPEC's formula gives.
#[test]
fn layer_norm_scaling_leaves_ordinary_rows_and_eps_zero_alone() {
    let gpu = common::gpu();
    let x = ArrayD::from_shape_vec(IxDyn(&[2, 4]), vec![1.0f32, 2.0, 3.0, 4.0, 7.0, 7.0, 7.0, 7.0]).unwrap();
    let (w, b) = (ArrayD::from_elem(IxDyn(&[4]), 1.0f32), ArrayD::from_elem(IxDyn(&[4]), 0.5f32));
    let want = reference::layer_norm::layer_norm(x.mapv(f64::from).view(), w.mapv(f64::from).view(), b.mapv(f64::from).view(), 1e-5).unwrap();
    let got = layer_norm::run(&gpu, x.view(), w.view(), b.view(), 1e-5).unwrap();
    assert_close("ordinary rows", &got, &want, POINTWISE);
    let got = layer_norm::run(&gpu, x.view(), w.view(), b.view(), 0.0).unwrap();
    assert!(got.slice(ndarray::s![1, ..]).iter().all(|v| v.is_nan()), "constant row with eps 0: {got:?}");
}

/// Item 9: `eps` and `scale` that float32 cannot hold are refused by name (never NaN); values in
/// float32's range pass.
#[test]
fn scalars_float32_cannot_hold_are_refused_by_name() {
    for (name, value) in [("eps", 1e-50), ("eps", 1e39), ("scale", 1e300), ("scale", -1e300), ("eps", f64::NAN), ("scale", 1e-45)] {
        let e = shaderlens::scalar::to_f32(name, value).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{name} is")), "{e}");
    }
    assert_eq!(shaderlens::scalar::to_f32("eps", 0.0).unwrap(), 0.0);
    assert_eq!(shaderlens::scalar::to_f32("eps", 1e-5).unwrap(), 1e-5f32);
    assert_eq!(shaderlens::scalar::to_f32("scale", -3e38).unwrap(), -3e38f32);
}

/// Item 9 through the model config: `eps` 1e39 is refused when the config is read, not at run time.
#[test]
fn a_config_eps_beyond_float32_is_refused_when_read() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/transformer/tiny.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["eps"] = 1e39.into();
    let e = shaderlens::transformer::Config::from_json(&json.to_string()).unwrap_err().to_string();
    assert!(e.contains("eps is 1e39"), "{e}");
    json["eps"] = 1e-50.into();
    let e = shaderlens::transformer::Config::from_json(&json.to_string()).unwrap_err().to_string();
    assert!(e.contains("eps is") && e.contains("below float32's normal range"), "{e}");
}

/// Item 9 through `verify`: a layer_norm fixture with eps 1e-50 on a constant row and an
/// attention fixture with scale 1e300 are errors naming the scalar, not NaN rows.
#[test]
fn verify_refuses_fixture_scalars_float32_cannot_hold() {
    use shaderlens::fixture::{Fixture, NpyArray};
    use std::collections::BTreeMap;
    let gpu = common::gpu();
    let f32s = |shape: &[usize], v: f32| NpyArray::F32(ArrayD::from_elem(IxDyn(shape), v));
    let f64s = |shape: &[usize], v: f64| NpyArray::F64(ArrayD::from_elem(IxDyn(shape), v));
    let scalar = |v: f64| NpyArray::F64(ArrayD::from_elem(IxDyn(&[]), v));
    let arrays = BTreeMap::from([
        ("x".to_string(), f32s(&[1, 8], 3.0)),
        ("w".to_string(), f32s(&[8], 1.0)),
        ("b".to_string(), f32s(&[8], 0.5)),
        ("eps".to_string(), scalar(1e-50)),
        ("out".to_string(), f64s(&[1, 8], 0.5)),
    ]);
    let e = shaderlens::verify::checks::check(&gpu, &Fixture::from_arrays("layer_norm", "tiny_eps", arrays)).unwrap_err().to_string();
    assert!(e.contains("eps is 1e-50"), "{e}");
    let arrays = BTreeMap::from([
        ("q".to_string(), f32s(&[1, 1, 2, 4], 0.5)),
        ("k".to_string(), f32s(&[1, 1, 2, 4], 0.5)),
        ("v".to_string(), f32s(&[1, 1, 2, 4], 0.5)),
        ("causal".to_string(), NpyArray::Bool(ArrayD::from_elem(IxDyn(&[]), true))),
        ("scale".to_string(), scalar(1e300)),
        ("out".to_string(), f64s(&[1, 1, 2, 4], 0.5)),
        ("pattern".to_string(), f64s(&[1, 1, 2, 2], 0.5)),
    ]);
    let e = shaderlens::verify::checks::check(&gpu, &Fixture::from_arrays("attention", "huge_scale", arrays)).unwrap_err().to_string();
    assert!(e.contains("scale is 1e300"), "{e}");
}
