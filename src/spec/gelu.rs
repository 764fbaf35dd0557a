//! Which GELU: the two forms SPEC names (`gelu` and `gelu_erf`), one type for the GPU op, the
//! model and the float64 reference.

/// Which GELU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gelu {
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`: GPT-2's and TransformerLens's `gelu_new`.
    Tanh,
    /// `0.5 x (1 + erf(x / sqrt 2))`: PyTorch's default and TransformerLens's `gelu`.
    Erf,
}
