//! Host references: every op of SPEC in ndarray, computed in float64.
//!
//! They are public so that users can check their own work against them, and they are what
//! `verify` checks each fixture with besides the GPU. Inputs are float64 views (convert float32
//! data with `mapv(f64::from)`: SPEC's expected values are the float64 result of float32 inputs).

pub mod attention;
pub mod attention_layer;
pub mod gelu;
pub mod layer_norm;
pub mod matmul;
pub mod softmax;
pub mod transformer;
