//! A re-entrant lock that serialises one `Gpu`'s use of the device across threads.
//!
//! wgpu's GL backend has a single GL context per adapter, and a thread that waits more than a few
//! seconds for it panics ("Could not lock adapter context"). Eight threads each uploading,
//! compiling, submitting and polling can starve one of them that long. Taking turns here first —
//! on a lock with no timeout — means at most one of our threads wants the context at a time. The
//! lock is re-entrant because the ops nest (`run` takes it, then uploads and dispatches, which
//! take it again on the same thread). On other backends it is off by default: Vulkan, Metal and
//! DX12 queues are free-threaded.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::{self, ThreadId};

/// The lock: which thread holds it and how many times.
#[derive(Debug, Default)]
pub(crate) struct Turn {
    enabled: bool,
    holder: Mutex<(Option<ThreadId>, usize)>,
    released: Condvar,
}

/// Holding a turn; dropping it gives the turn back (once the outermost guard of the thread drops).
pub(crate) struct TurnGuard<'a> {
    turn: Option<&'a Turn>,
}

impl Turn {
    /// A lock that serialises when `enabled`, and does nothing otherwise.
    pub(crate) fn new(enabled: bool) -> Self {
        Self { enabled, ..Self::default() }
    }

    /// Whether this lock serialises.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Waits for the turn (at once when this thread already holds it).
    pub(crate) fn take(&self) -> TurnGuard<'_> {
        if !self.enabled {
            return TurnGuard { turn: None };
        }
        let me = thread::current().id();
        let mut holder = self.lock();
        loop {
            match holder.0 {
                None => {
                    *holder = (Some(me), 1);
                    break;
                }
                Some(id) if id == me => {
                    holder.1 += 1;
                    break;
                }
                Some(_) => holder = self.released.wait(holder).unwrap_or_else(|poisoned| poisoned.into_inner()),
            }
        }
        TurnGuard { turn: Some(self) }
    }

    /// The holder state; a panic elsewhere while it was held cannot leave it inconsistent (it is
    /// only ever updated in whole), so a poisoned lock is used as it is.
    fn lock(&self) -> MutexGuard<'_, (Option<ThreadId>, usize)> {
        self.holder.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for TurnGuard<'_> {
    fn drop(&mut self) {
        if let Some(turn) = self.turn {
            let mut holder = turn.lock();
            holder.1 = holder.1.saturating_sub(1);
            if holder.1 == 0 {
                holder.0 = None;
                turn.released.notify_one();
            }
        }
    }
}
