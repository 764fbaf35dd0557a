//! An endless stream of fresh random Othello batches, made on background threads ahead of the
//! consumer, so that a trainer never waits on data.
//!
//! Batch `k` holds games `first + k·B .. first + (k+1)·B` of the seed's data set (see
//! [`super::dataset`]), so the stream is the same whatever the number of workers. Workers take batch
//! numbers from a shared counter and send finished batches through a bounded channel; the consumer
//! puts them back in order. Dropping the stream stops and joins the workers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::dataset::{generate, Games};
use crate::{Error, Result};

/// Background generation of batches of random games, in order.
pub struct GameStream {
    receiver: Option<Receiver<(u64, Result<Games>)>>,
    workers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    waiting: BTreeMap<u64, Result<Games>>,
    next: u64,
}

impl GameStream {
    /// Starts `workers` threads (0: one per core) making batches of `batch` games of the data set
    /// with `seed`, from game index `first` on, keeping at most `ahead` finished batches queued.
    pub fn new(seed: u64, first: u64, batch: usize, workers: usize, ahead: usize) -> Result<GameStream> {
        if batch == 0 {
            return Err(Error::Input("othello game stream: batch must be at least 1 game".into()));
        }
        if ahead == 0 {
            return Err(Error::Input("othello game stream: ahead must be at least 1 batch".into()));
        }
        let workers = super::dataset::thread_count(workers, "othello game stream: workers")?;
        let (sender, receiver) = sync_channel(ahead);
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(AtomicU64::new(0));
        let handles = (0..workers)
            .map(|_| {
                let (sender, stop, counter) = (sender.clone(), stop.clone(), counter.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let k = counter.fetch_add(1, Ordering::Relaxed);
                        let start = (k as u128) * (batch as u128) + first as u128;
                        let games = match u64::try_from(start) {
                            Ok(start) => generate(seed, start, batch, 1),
                            Err(_) => Err(Error::Input(format!("othello game stream ran past game index 2^64 at batch {k}"))),
                        };
                        let failed = games.is_err();
                        if sender.send((k, games)).is_err() || failed {
                            break;
                        }
                    }
                })
            })
            .collect();
        Ok(GameStream { receiver: Some(receiver), workers: handles, stop, waiting: BTreeMap::new(), next: 0 })
    }

    /// The next batch, in order (blocks until it is ready).
    pub fn next_batch(&mut self) -> Result<Games> {
        loop {
            if let Some(games) = self.waiting.remove(&self.next) {
                self.next += 1;
                return games;
            }
            let receiver = self.receiver.as_ref().ok_or_else(|| Error::Input("othello game stream is closed".into()))?;
            match receiver.recv() {
                Ok((k, games)) => {
                    self.waiting.insert(k, games);
                }
                Err(_) => return Err(Error::Input("othello game stream: every worker has stopped".into())),
            }
        }
    }
}

impl Iterator for GameStream {
    type Item = Result<Games>;

    fn next(&mut self) -> Option<Result<Games>> {
        Some(self.next_batch())
    }
}

impl Drop for GameStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver wakes workers blocked on a full channel: their send fails.
        self.receiver.take();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
