mod common;
use ndarray::{Array, IxDyn};
use shaderlens::ops::gelu::{self, Gelu};
use shaderlens::reference;

#[test]
fn gelu_both_forms_match_reference() {
    let gpu = common::gpu();
    let x = Array::linspace(-20.0f32, 20.0, 70001).into_shape_with_order(IxDyn(&[70001])).unwrap();
    for kind in [Gelu::Tanh, Gelu::Erf] {
        let got = gelu::run(&gpu, kind, x.view()).unwrap();
        let want = reference::gelu::gelu(kind, x.mapv(f64::from).view());
        common::assert_close(&got, &want, 1e-5, 1e-4, &format!("{kind:?}"));
    }
}
#[test]
fn print_adapter() { eprintln!("ADAPTER {}", common::gpu().description()); }
