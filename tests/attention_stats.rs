//! The fused attention path keeps every query's softmax statistics when asked (what a backward
//! pass needs to recompute the pattern): max + ln(sum) is the row's log-sum-exp of the scaled,
//! masked scores, and the output is the same as without them.

mod common;

use ndarray::ArrayD;
use shaderlens::ops::attention;
use shaderlens::reference::attention::{attention_scores, attention_shapes};
use shaderlens::{reference, GpuTensor};

#[test]
fn fused_attention_keeps_the_row_statistics_when_asked() {
    let gpu = common::gpu();
    for (b, h, sq, sk, d, dv, causal) in [(2, 3, 9, 9, 8, 8, true), (1, 2, 5, 11, 6, 3, false), (1, 1, 7, 3, 4, 5, true)] {
        let r = |shape: &[usize], seed| common::array(shape, common::normals(seed, shape.iter().product()));
        let (q, k, v) = (r(&[b, h, sq, d], 1), r(&[b, h, sk, d], 2), r(&[b, h, sk, dv], 3));
        let scale = 0.5f32;
        let dims = attention_shapes(q.shape(), k.shape(), v.shape()).unwrap();
        let up = |x: &ArrayD<f32>, name| GpuTensor::upload(&gpu, x.view(), name).unwrap();
        let (tq, tk, tv) = (up(&q, "q"), up(&k, "k"), up(&v, "v"));
        let out = GpuTensor::empty(&gpu, &dims.out_shape(), "out").unwrap();
        let stats = GpuTensor::empty(&gpu, &attention::row_stats_shape(&dims), "row stats").unwrap();
        let mut encoder = gpu.encoder();
        attention::record_fused_with_stats(&gpu, &mut encoder, &tq, &tk, &tv, causal, scale, &out, &stats).unwrap();
        gpu.submit_and_wait(encoder).unwrap();
        let (got_out, got_stats) = (out.read(&gpu).unwrap(), stats.read(&gpu).unwrap());

        let f64s = |x: &ArrayD<f32>| x.mapv(f64::from);
        let (want_out, _) = reference::attention::attention(f64s(&q).view(), f64s(&k).view(), f64s(&v).view(), causal, f64::from(scale)).unwrap();
        common::assert_close(&got_out, &want_out, 1e-5, 1e-4, "fused out with statistics");
        let scores = attention_scores(f64s(&q).view(), f64s(&k).view(), f64s(&v).view(), causal, f64::from(scale)).unwrap();
        for bi in 0..b {
            for hi in 0..h {
                for i in 0..sq {
                    let row: Vec<f64> = (0..sk).map(|j| scores[[bi, hi, i, j]]).filter(|s| s.is_finite()).collect();
                    let (m, l) = (got_stats[[bi, hi, i / 4, 0, i % 4]], got_stats[[bi, hi, i / 4, 1, i % 4]]);
                    if row.is_empty() {
                        assert_eq!(l, 0.0, "a query that sees no key has sum 0");
                        continue;
                    }
                    let top = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let lse = top + row.iter().map(|s| (s - top).exp()).sum::<f64>().ln();
                    let got = f64::from(m) + f64::from(l).ln();
                    assert!((got - lse).abs() <= 1e-4 * (1.0 + lse.abs()), "[{bi}, {hi}, {i}]: lse {got} want {lse}");
                }
            }
        }
        // Wrongly shaped statistics are refused by name.
        let bad = GpuTensor::empty(&gpu, &[b, h, sq, 2], "bad").unwrap();
        let mut encoder = gpu.encoder();
        let e = attention::record_fused_with_stats(&gpu, &mut encoder, &tq, &tk, &tv, causal, scale, &out, &bad).unwrap_err();
        assert!(e.to_string().contains("row_stats is"), "{e}");
    }
}
