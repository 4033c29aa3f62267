//! Receive coalescing of a UDP worker under load (`--udp-coalesce`).
//!
//! A worker that answers faster than queries come spends most of its kernel
//! time going to sleep in `recvmmsg` and being woken for the next few
//! datagrams: each wake-up is a cross-CPU interrupt from the client's
//! side, a context switch, and a small batch whose replies in turn wake
//! the client for a few replies. Network cards solve the same problem with
//! interrupt coalescing; this is its counterpart for one socket. While a
//! worker's measured rate is at or above a threshold, it pauses briefly
//! (`nap`) after each batch, so the next `recvmmsg` finds a larger batch
//! queued and the replies go out together. Below the threshold it never
//! pauses, so a lightly loaded server adds no latency; nor after a full
//! batch, which means more is waiting: a worker that cannot keep up never
//! idles.
//!
//! The rate is measured over windows of [`WINDOW`]: what a worker
//! received in the last full window decides whether it pauses during the
//! next. Pauses are part of the window, so a falling load turns coalescing
//! off within a window or two.

use std::time::{Duration, Instant};

/// The span the rate is measured over.
pub const WINDOW: Duration = Duration::from_millis(1);

/// When and how long a UDP worker pauses between batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coalesce {
    /// Queries per second (per worker) at or above which it pauses.
    pub above: u32,
    /// How long each pause lasts (zero: never pause).
    pub nap: Duration,
}

impl Coalesce {
    /// The default pause, in microseconds (`--udp-coalesce-pause`).
    pub const DEFAULT_PAUSE_MICROS: u64 = 50;

    /// No pauses.
    pub const OFF: Self = Self {
        above: 0,
        nap: Duration::ZERO,
    };

    /// The default: pause 50 µs after each batch from 50,000 queries per
    /// second per worker.
    pub const DEFAULT: Self = Self {
        above: 50_000,
        nap: Duration::from_micros(Self::DEFAULT_PAUSE_MICROS),
    };

    /// Whether pauses can happen at all.
    pub fn is_on(&self) -> bool {
        !self.nap.is_zero() && self.above > 0
    }
}

impl Default for Coalesce {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Asks the kernel to end this thread's sleeps within a fifth of `nap` of
/// their time (its default timer slack, 50 µs, would stretch a 50 µs pause
/// to anything up to 100 µs). Only a hint; nothing changes where it fails.
pub fn precise_sleeps(nap: Duration) {
    #[cfg(target_os = "linux")]
    {
        let slack = (nap / 5).max(Duration::from_micros(1));
        let ns = libc::c_ulong::try_from(slack.as_nanos()).unwrap_or(libc::c_ulong::MAX);
        // SAFETY: PR_SET_TIMERSLACK takes one integer and changes only the
        // calling thread's timer slack.
        #[allow(unsafe_code)]
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, ns, 0, 0, 0);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nap;
}

/// One worker's rate window and the decision it gives.
#[derive(Debug)]
pub struct Coalescer {
    config: Coalesce,
    full: usize,
    since: Instant,
    received: u64,
    pausing: bool,
}

impl Coalescer {
    /// A worker's coalescer for batches of up to `full` datagrams, its first
    /// window starting at `now`.
    pub fn new(config: Coalesce, full: usize, now: Instant) -> Self {
        Self {
            config,
            full,
            since: now,
            received: 0,
            pausing: false,
        }
    }

    /// Counts a batch of `n` datagrams received by `now`; returns how long
    /// to pause before the next receive (`None`: go on at once).
    pub fn after_batch(&mut self, n: usize, now: Instant) -> Option<Duration> {
        if !self.config.is_on() {
            return None;
        }
        self.received = self.received.saturating_add(n as u64);
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed >= WINDOW {
            // received / elapsed >= above, without dividing.
            let wanted = u128::from(self.config.above) * elapsed.as_nanos();
            self.pausing = u128::from(self.received) * 1_000_000_000 >= wanted;
            self.since = now;
            self.received = 0;
        }
        (self.pausing && n > 0 && n < self.full).then_some(self.config.nap)
    }

    /// Whether the last full window was at or above the threshold.
    pub fn pausing(&self) -> bool {
        self.pausing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds batches of `n` every `gap` for `span`, returning how many
    /// batches were told to pause.
    fn run(c: &mut Coalescer, start: Instant, n: usize, gap: Duration, span: Duration) -> usize {
        let mut t = start;
        let mut paused = 0;
        while t < start + span {
            t += gap;
            if c.after_batch(n, t).is_some() {
                paused += 1;
            }
        }
        paused
    }

    #[test]
    fn pauses_only_at_or_above_the_rate_and_stops_when_it_falls() {
        let t0 = Instant::now();
        let config = Coalesce {
            above: 50_000,
            nap: Duration::from_micros(50),
        };
        let mut c = Coalescer::new(config, 32, t0);
        // 20,000 queries a second: one every 50 µs, never a pause.
        let ms = Duration::from_millis;
        assert_eq!(run(&mut c, t0, 1, Duration::from_micros(50), ms(20)), 0);
        assert!(!c.pausing());
        // 100,000 a second (5 every 50 µs): pauses from the second window.
        let t1 = t0 + ms(20);
        let paused = run(&mut c, t1, 5, Duration::from_micros(50), ms(10));
        assert!(c.pausing());
        assert!(paused >= 150, "{paused} of 200 batches paused");
        // Back to 10,000 a second: off again within two windows.
        let t2 = t1 + ms(10);
        run(&mut c, t2, 1, Duration::from_micros(100), ms(3));
        assert!(!c.pausing());
        assert_eq!(
            run(&mut c, t2 + ms(3), 1, Duration::from_micros(100), ms(5)),
            0
        );
    }

    #[test]
    fn the_pause_is_the_configured_nap_and_never_after_an_empty_or_full_batch() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(Coalesce::DEFAULT, 32, t0);
        // 64 datagrams in the first millisecond: 64,000 a second.
        assert_eq!(c.after_batch(64, t0 + Duration::from_micros(999)), None);
        assert_eq!(
            c.after_batch(0, t0 + Duration::from_millis(1)),
            None,
            "nothing came: no pause"
        );
        assert!(c.pausing());
        assert_eq!(
            c.after_batch(3, t0 + Duration::from_micros(1100)),
            Some(Duration::from_micros(50))
        );
        assert_eq!(
            c.after_batch(32, t0 + Duration::from_micros(1200)),
            None,
            "a full batch: more is waiting, no pause"
        );
        assert!(c.pausing());
    }

    #[test]
    fn off_never_pauses() {
        let t0 = Instant::now();
        for config in [
            Coalesce::OFF,
            Coalesce {
                above: 1,
                nap: Duration::ZERO,
            },
            Coalesce {
                above: 0,
                nap: Duration::from_micros(50),
            },
        ] {
            let mut c = Coalescer::new(config, 32, t0);
            assert_eq!(
                run(
                    &mut c,
                    t0,
                    8,
                    Duration::from_micros(10),
                    Duration::from_millis(5)
                ),
                0
            );
        }
    }
}
