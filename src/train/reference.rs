//! The float64 reference trainer: the [`super::Backend`] made of the float64 references (the
//! whole model's loss and gradients, [`crate::reference::backward::model::transformer_grad`];
//! clipping and AdamW, [`crate::reference::backward::adamw`]). Slow and exact: it trains tiny
//! models in tests, checks the GPU trainer, and is the reference side of `verify train`.

use std::collections::BTreeMap;

use ndarray::{ArrayD, ArrayView2};

use super::config::Optimizer;
use super::{decays, evaluate_logits, global_norm, Backend, Evaluation, State};
use crate::error::{Error, Result};
use crate::reference::backward::adamw::{adamw, clip_grad_norm, AdamW};
use crate::reference::backward::model::transformer_grad;
use crate::model::hooks::Names;
use crate::model::weights::Weights;
use crate::transformer::Config;

/// A parameter and its two moments.
type Triple = (ArrayD<f64>, ArrayD<f64>, ArrayD<f64>);

/// The float64 reference trainer.
#[derive(Clone, Debug)]
pub struct ReferenceTrainer {
    config: Config,
    optimizer: Optimizer,
    state: State,
    last_norm: f64,
    /// Grokfast's average by parameter name (`None` until the first filtered update).
    ema: Option<BTreeMap<String, ArrayD<f64>>>,
}

impl ReferenceTrainer {
    /// A trainer starting from `initial` with zero moments.
    pub fn new(config: &Config, optimizer: Optimizer, initial: Weights<ArrayD<f64>>) -> Result<Self> {
        initial.check_shapes(config, |a| a.shape())?;
        let zeros = initial.try_map(config, |_, a| Ok(ArrayD::zeros(a.raw_dim())))?;
        let state = State { params: initial, m: zeros.clone(), v: zeros, ema: None };
        Ok(Self { config: config.clone(), optimizer, state, last_norm: 0.0, ema: None })
    }
}

impl Backend for ReferenceTrainer {
    fn describe(&self) -> String {
        "float64 reference trainer (host)".into()
    }

    fn step(&mut self, tokens: ArrayView2<'_, i64>, targets: ArrayView2<'_, i64>, t: u64, lr: f64) -> Result<()> {
        let run = transformer_grad(&self.config, &self.state.params, tokens.into_dyn(), targets.into_dyn(), &Names::Nothing, &[])?;
        let mut grads: BTreeMap<String, ArrayD<f64>> = run.grads.named().into_iter().map(|(n, a)| (n, a.clone())).collect();
        if let Some(filter) = self.optimizer.grokfast {
            filter.apply(&mut grads, &mut self.ema)?;
        }
        self.last_norm = match self.optimizer.max_grad_norm {
            Some(max) => clip_grad_norm(&mut grads.values_mut().collect::<Vec<_>>(), max)?,
            None => grads.values().map(|g| g.iter().map(|x| x * x).sum::<f64>()).sum::<f64>().sqrt(),
        };
        let base = AdamW { lr, ..self.optimizer.adamw };
        let (params, m, v) = (&self.state.params, &self.state.m, &self.state.v);
        let mut updated: BTreeMap<String, Triple> = BTreeMap::new();
        for (((name, p), (_, m)), (_, v)) in params.named().into_iter().zip(m.named()).zip(v.named()) {
            let g = grads.get(&name).ok_or_else(|| Error::Input(format!("no gradient for {name}")))?;
            let hp = if decays(&name, self.optimizer.decay_biases_and_norms) { base } else { AdamW { weight_decay: 0.0, ..base } };
            let s = adamw(p.view(), g.view(), m.view(), v.view(), t as i64, &hp).map_err(|e| Error::Input(format!("update {t}, {name}: {e}")))?;
            updated.insert(name, (s.param, s.m, s.v));
        }
        let take = |i: usize| {
            Weights::build(&self.config, |name, _| {
                let (p, m, v) = updated.get(name).ok_or_else(|| Error::Input(format!("parameter {name} is missing")))?;
                Ok([p, m, v][i].clone())
            })
        };
        self.state = State { params: take(0)?, m: take(1)?, v: take(2)?, ema: None };
        Ok(())
    }

    fn evaluate(&mut self, tokens: ArrayView2<'_, i64>, targets: ArrayView2<'_, i64>) -> Result<Evaluation> {
        let run = crate::reference::transformer::forward(&self.config, &self.state.params, tokens.into_dyn(), &Names::Nothing, &[])?;
        evaluate_logits(run.logits.view(), targets)
    }

    fn logits(&mut self, tokens: ArrayView2<'_, i64>) -> Result<ArrayD<f64>> {
        Ok(crate::reference::transformer::forward(&self.config, &self.state.params, tokens.into_dyn(), &Names::Nothing, &[])?.logits)
    }

    fn grad_norm(&mut self) -> Result<f64> {
        Ok(self.last_norm)
    }

    fn weight_norm(&mut self) -> Result<f64> {
        Ok(global_norm(&self.state.params))
    }

    fn state(&mut self) -> Result<State> {
        let ema = match &self.ema {
            Some(h) => Some(Weights::build(&self.config, |name, _| h.get(name).cloned().ok_or_else(|| Error::Input(format!("grokfast: no average for {name}"))))?),
            None => None,
        };
        Ok(State { ema, ..self.state.clone() })
    }

    fn set_state(&mut self, state: &State) -> Result<()> {
        for w in [&state.params, &state.m, &state.v] {
            w.check_shapes(&self.config, |a| a.shape())?;
        }
        if let Some(h) = &state.ema {
            h.check_shapes(&self.config, |a| a.shape())?;
        }
        self.ema = state.ema.as_ref().map(|h| h.named().into_iter().map(|(n, a)| (n, a.clone())).collect());
        self.state = State { ema: None, ..state.clone() };
        Ok(())
    }
}
