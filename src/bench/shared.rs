//! The little state the coordinating thread and the event-loop threads share: the run's stage
//! (written by the coordinator) and per-thread progress counters (each written by its own thread
//! only, on its own cache line, read for live progress).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

/// Stage of a run, set by the coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    /// Connecting and warming up: nothing is recorded.
    Warmup = 0,
    /// The measured window: completions are counted and their latency recorded.
    Measure = 1,
    /// Close every connection (close frame, wait for the server's) and return.
    Stop = 2,
}

/// Progress of one thread. Aligned so threads never share a cache line.
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct ThreadProgress {
    /// Connections currently upgraded.
    pub open: AtomicU64,
    /// Handshakes completed (all stages).
    pub handshakes: AtomicU64,
    /// Echoes completed (all stages).
    pub messages: AtomicU64,
    /// Failures counted (all stages).
    pub errors: AtomicU64,
    /// The thread has attempted every connection it was asked to open and none is pending.
    pub open_done: AtomicBool,
}

#[derive(Debug)]
pub struct Shared {
    stage: AtomicU8,
    /// Stop starting new connections (idle mode's `--open-timeout`).
    stop_opening: AtomicBool,
    pub threads: Vec<ThreadProgress>,
}

/// Sums of all threads' progress counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub open: u64,
    pub handshakes: u64,
    pub messages: u64,
    pub errors: u64,
}

impl Shared {
    pub fn new(threads: usize) -> Shared {
        Shared {
            stage: AtomicU8::new(Stage::Warmup as u8),
            stop_opening: AtomicBool::new(false),
            threads: (0..threads).map(|_| ThreadProgress::default()).collect(),
        }
    }

    pub fn stage(&self) -> Stage {
        match self.stage.load(Ordering::Acquire) {
            0 => Stage::Warmup,
            1 => Stage::Measure,
            _ => Stage::Stop,
        }
    }

    pub fn set_stage(&self, stage: Stage) {
        self.stage.store(stage as u8, Ordering::Release);
    }

    pub fn stop_opening(&self) {
        self.stop_opening.store(true, Ordering::Relaxed);
    }

    pub fn opening_stopped(&self) -> bool {
        self.stop_opening.load(Ordering::Relaxed)
    }

    pub fn all_open_done(&self) -> bool {
        self.threads
            .iter()
            .all(|t| t.open_done.load(Ordering::Acquire))
    }

    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for t in &self.threads {
            totals.open += t.open.load(Ordering::Relaxed);
            totals.handshakes += t.handshakes.load(Ordering::Relaxed);
            totals.messages += t.messages.load(Ordering::Relaxed);
            totals.errors += t.errors.load(Ordering::Relaxed);
        }
        totals
    }
}
