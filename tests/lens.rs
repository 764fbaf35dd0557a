//! Reading the residual stream (issue 17 item 4) and the built-in metrics (item 1): the float64
//! readings and the GPU's match TransformerLens's `ActivationCache` on tests/data/lens (made by
//! scripts/make_lens_fixtures.py), the metrics' gradients match finite differences, and bad
//! inputs are refused by name.

mod common;

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, Dimension, IxDyn};
use shaderlens::analysis::metric::{next_token_targets, Metric};
use shaderlens::analysis::resid::{self, Stack};
use shaderlens::analysis::resid_gpu::{logit_attrs_gpu, Readings};
use shaderlens::fixture::Fixture;
use shaderlens::transformer::{Cache, Config, Model, Weights};

struct Case {
    name: String,
    config: Config,
    weights: Weights<ArrayD<f32>>,
    tokens: ArrayD<i64>,
    answer: Vec<usize>,
    wrong: Vec<usize>,
    fixture: Fixture,
}

fn cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lens");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "npz")).collect();
    paths.sort();
    assert!(paths.len() >= 6, "want the six lens cases (LN, LNPre, no norm, RMS, RMSPre, shortformer), found {}", paths.len());
    paths
        .into_iter()
        .map(|path| {
            let config = Config::from_file(&path.with_extension("json")).unwrap();
            let fixture = Fixture::open(&path).unwrap();
            let weights = Weights::build(&config, |name, _| fixture.input(name)).unwrap();
            let idx = |k: &str| fixture.int_array(k).unwrap().iter().map(|&t| t as usize).collect();
            Case { name: path.display().to_string(), tokens: fixture.int_array("tokens").unwrap(), answer: idx("answer"), wrong: idx("wrong"), config, weights, fixture }
        })
        .collect()
}

/// Asserts `|got − want| ≤ atol + rtol·|want|` everywhere, naming the worst element.
fn close(what: &str, got: &ArrayD<f64>, want: &ArrayD<f64>, atol: f64, rtol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let worst = got.indexed_iter().zip(want.iter()).map(|((i, g), w)| ((g - w).abs() - atol - rtol * w.abs(), i, *g, *w)).max_by(|a, b| a.0.total_cmp(&b.0)).unwrap();
    assert!(worst.0 <= 0.0, "{what}: at {:?} got {} want {}", worst.1.slice(), worst.2, worst.3);
}

/// The attributions at the last position, TransformerLens's `logit_attrs(.., pos_slice=-1)`.
fn attrs_last(config: &Config, cache: &Cache<ArrayD<f64>>, stack: &Stack, w_u: &ArrayD<f64>, answer: &[usize], wrong: Option<&[usize]>, gpu: Option<&shaderlens::Gpu>) -> ArrayD<f64> {
    let normed = resid::apply_ln_to_stack(config, cache, stack).unwrap();
    let all = match gpu {
        Some(gpu) => logit_attrs_gpu(gpu, &normed, w_u, answer, wrong).unwrap(),
        None => resid::logit_attrs(&normed, w_u, answer, wrong).unwrap(),
    };
    let last = all.shape()[2] - 1;
    all.index_axis(ndarray::Axis(2), last).to_owned()
}

fn check_readings(case: &Case, r: &Readings, gpu: Option<&shaderlens::Gpu>, atol: f64, rtol: f64) {
    let f = &case.fixture;
    let at = |k: &str| format!("{} {k} ({})", case.name, if gpu.is_some() { "GPU" } else { "float64" });
    close(&at("accumulated_resid"), &r.accumulated.values, &f.expected("accumulated_resid").unwrap(), atol, rtol);
    close(&at("decompose_resid"), &r.decomposed.values, &f.expected("decompose_resid").unwrap(), atol, rtol);
    close(&at("stack_head_results"), &r.heads.values, &f.expected("stack_head_results").unwrap(), atol, rtol);
    close(&at("logit_lens"), &r.logit_lens, &f.expected("logit_lens").unwrap(), atol, rtol);
    assert_eq!(r.accumulated.labels.last().map(String::as_str), Some("final_post"));
    assert_eq!(r.heads.labels[1], if case.config.n_heads > 1 { "L0H1" } else { "L1H0" });
    if case.config.has_ln() {
        close(&at("accumulated_resid_ln"), &r.accumulated_ln.values, &f.expected("accumulated_resid_ln").unwrap(), atol, rtol);
    }
    let w_u = case.weights.w_u.mapv(f64::from);
    let (a, w) = (&case.answer[..], &case.wrong[..]);
    close(&at("logit_attrs.decompose"), &attrs_last(&case.config, &r.cache, &r.decomposed, &w_u, a, Some(w), gpu), &f.expected("logit_attrs.decompose").unwrap(), atol, rtol);
    close(&at("logit_attrs.heads"), &attrs_last(&case.config, &r.cache, &r.heads, &w_u, a, Some(w), gpu), &f.expected("logit_attrs.heads").unwrap(), atol, rtol);
    close(&at("logit_attrs.heads_answer"), &attrs_last(&case.config, &r.cache, &r.heads, &w_u, a, None, gpu), &f.expected("logit_attrs.heads_answer").unwrap(), atol, rtol);
}

#[test]
fn float64_readings_match_transformer_lens() {
    for case in cases() {
        let wide = case.weights.try_map(&case.config, |_, a| Ok(a.mapv(f64::from))).unwrap();
        let r = Readings::reference(&case.config, &wide, &case.tokens).unwrap();
        check_readings(&case, &r, None, 1e-9, 1e-9);
    }
}

#[test]
fn gpu_readings_match_transformer_lens() {
    let gpu = common::gpu();
    for case in cases() {
        let model = Model::load(&gpu, case.config.clone(), &case.weights).unwrap();
        let r = Readings::gpu(&gpu, &model, &case.tokens).unwrap();
        check_readings(&case, &r, Some(&gpu), 2e-4, 2e-4);
    }
}

#[test]
fn token_by_layer_reads_logit_prob_and_rank() {
    let mut lens = ArrayD::<f64>::zeros(IxDyn(&[2, 1, 1, 3]));
    lens.as_slice_mut().unwrap().copy_from_slice(&[0.0, 1.0, 2.0, 5.0, 1.0, 0.0]);
    let [logit, prob, rank] = resid::token_by_layer(&lens, 0, &[0]).unwrap();
    assert_eq!((logit[[0, 0]], logit[[1, 0]]), (0.0, 5.0));
    assert_eq!((rank[[0, 0]], rank[[1, 0]]), (2.0, 0.0));
    let z: f64 = [0.0f64, 1.0, 2.0].iter().map(|v| v.exp()).sum();
    assert!((prob[[0, 0]] - 1.0 / z).abs() < 1e-12);
    let err = resid::token_by_layer(&lens, 1, &[0]).unwrap_err().to_string();
    assert!(err.contains("position 1"), "{err}");
}

#[test]
fn bad_inputs_are_refused_by_name() {
    let case = cases().into_iter().next().unwrap();
    let empty = Cache::default();
    let err = resid::accumulated_resid(&case.config, &empty).unwrap_err().to_string();
    assert!(err.contains("blocks.0.hook_resid_pre"), "{err}");
    let stack = Stack { labels: vec!["x".into()], values: ArrayD::zeros(IxDyn(&[1, 2, 3, case.config.d_model])) };
    let w_u = case.weights.w_u.mapv(f64::from);
    let err = resid::logit_attrs(&stack, &w_u, &[0, case.config.d_vocab_out], None).unwrap_err().to_string();
    assert!(err.contains("one token below"), "{err}");
    let err = resid::logit_attrs(&stack, &w_u, &[0], None).unwrap_err().to_string();
    assert!(err.contains("per row of 2"), "{err}");
    let mut none = case.config.clone();
    none.n_layers = 0;
    assert!(resid::check_config(&none).unwrap_err().to_string().contains("n_layers is 0"));
}

/// Central differences of `metric` at a few random logits against its analytic gradient.
fn finite_differences(metric: &Metric, logits: &ArrayD<f64>) {
    let (_, grad) = metric.value_and_grad(logits.view()).unwrap();
    let h = 1e-6;
    for i in 0..logits.len() {
        let idx = IxDyn(&[i / (logits.shape()[1] * logits.shape()[2]), (i / logits.shape()[2]) % logits.shape()[1], i % logits.shape()[2]]);
        let (mut up, mut down) = (logits.clone(), logits.clone());
        up[&idx] += h;
        down[&idx] -= h;
        let numeric = (metric.value_and_grad(up.view()).unwrap().0 - metric.value_and_grad(down.view()).unwrap().0) / (2.0 * h);
        assert!((numeric - grad[&idx]).abs() < 1e-6, "{metric:?} at {idx:?}: numeric {numeric}, analytic {}", grad[&idx]);
    }
}

#[test]
fn metric_gradients_match_finite_differences() {
    let logits = ArrayD::from_shape_fn(IxDyn(&[2, 3, 5]), |i| ((i[0] * 7 + i[1] * 3 + i[2] * 11) % 13) as f64 * 0.37 - 2.0);
    finite_differences(&Metric::LogitDiff(vec![(1, 3), (4, 4)]), &logits);
    finite_differences(&Metric::LogProb { position: 1, tokens: vec![0, 4] }, &logits);
    let tokens = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1, 2, 3, 4, 0, 2]).unwrap();
    let targets = next_token_targets(&tokens).unwrap();
    assert_eq!(targets.as_slice().unwrap(), &[2, 3, -1, 0, 2, -1]);
    finite_differences(&Metric::Loss(targets.clone()), &logits);
    // The loss of uniform logits is ln V.
    let (loss, _) = Metric::Loss(targets).value_and_grad(ArrayD::<f64>::zeros(IxDyn(&[2, 3, 5])).view()).unwrap();
    assert!((loss - 5f64.ln()).abs() < 1e-12);
}

#[test]
fn metrics_refuse_bad_tokens_by_name() {
    let logits = ArrayD::<f64>::zeros(IxDyn(&[2, 3, 5]));
    let err = Metric::LogProb { position: 3, tokens: vec![0, 1] }.value_and_grad(logits.view()).unwrap_err().to_string();
    assert!(err.contains("position 3"), "{err}");
    let err = Metric::LogProb { position: 0, tokens: vec![0, 5] }.value_and_grad(logits.view()).unwrap_err().to_string();
    assert!(err.contains("token 5"), "{err}");
    let err = Metric::Loss(ArrayD::from_elem(IxDyn(&[2, 3]), -1)).value_and_grad(logits.view()).unwrap_err().to_string();
    assert!(err.contains("every target is negative"), "{err}");
    let err = Metric::Loss(ArrayD::zeros(IxDyn(&[2, 2]))).value_and_grad(logits.view()).unwrap_err().to_string();
    assert!(err.contains("targets are [2, 2]"), "{err}");
    let err = Metric::LogitDiff(vec![(0, 1)]).value_and_grad(logits.view()).unwrap_err().to_string();
    assert!(err.contains("1 prompt pairs"), "{err}");
}
