//! The rules of each op that the GPU code and the float64 reference both follow: shapes, sizes,
//! hyper-parameter checks and small shared types. Both sides import them from here, and neither
//! imports the other, so a shape is accepted or refused in the same words on the host and the GPU.

pub mod adamw;
pub mod attention;
pub mod attention_layer;
pub mod gelu;
pub mod layer_norm;
pub mod loss;
pub mod matmul;
pub mod softmax;
pub mod tokens;
