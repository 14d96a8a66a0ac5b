//! The delay line's sans-io core: one direction of the emulated WAN.
//!
//! A [`DelayLine`] owns no socket and reads no clock: every call takes `now`.
//! The driver (`s2delay`, [`super::driver`]) feeds it every frame it reads
//! with [`push`](DelayLine::push), and asks [`poll`](DelayLine::poll) what to
//! do next: send the frame at the head now, or sleep until a given instant.
//! After sending the head it calls [`pop`](DelayLine::pop).
//!
//! Per frame, in order:
//! 1. random loss: dropped with probability `loss` (seeded RNG, so a run is
//!    reproducible);
//! 2. tail drop: dropped if it does not fit into the byte ring (the queue
//!    limit, bounded to the bandwidth-delay product, see [`queue_limit`]);
//! 3. rate cap: a token bucket one frame deep decides when the frame leaves
//!    the emulated bottleneck, `start = max(now, end of the previous frame)`,
//!    and it occupies the bottleneck for its serialisation time
//!    `8 * len / rate`;
//! 4. delay: it is due at `start + delay`.
//!
//! Due times never decrease, so the queue is a FIFO and the frame order is
//! kept. Frames are stored in one byte ring allocated when the line is built
//! (the frame pool): nothing is allocated per frame, and the memory held by
//! queued frames can never exceed the limit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The queue-limit floor: even a short or slow link may queue 1 MiB.
pub const MIN_LIMIT_BYTES: usize = 1 << 20;
/// The rate used to bound the queue when the line has no rate cap.
pub const NOMINAL_RATE_BPS: u64 = 10_000_000_000;
/// The largest frame a line accepts: a 65535-byte MTU plus an Ethernet
/// header with one VLAN tag.
pub const MAX_FRAME_BYTES: usize = 65_535 + 18;

/// Why a line's configuration was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LineConfigError {
    /// The loss probability is not in `[0, 1]`.
    #[error("invalid loss probability {loss}: use a number between 0 and 1, e.g. 0.001")]
    Loss {
        /// The probability given.
        loss: f64,
    },
    /// The rate cap is zero.
    #[error("invalid rate cap 0 bit/s: omit the rate for no cap, or give e.g. 200mbit")]
    ZeroRate,
    /// The queue limit cannot hold one maximal frame.
    #[error(
        "queue limit {limit} bytes is too small: it must hold one maximal frame ({MAX_FRAME_BYTES} bytes)"
    )]
    Limit {
        /// The limit given.
        limit: usize,
    },
}

/// How one direction of the WAN behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct LineConfig {
    /// One-way delay added to every frame.
    pub delay: Duration,
    /// Rate cap in bit/s (Ethernet frame bits); `None` for no cap.
    pub rate_bps: Option<u64>,
    /// Probability that a frame is dropped, in `[0, 1]`.
    pub loss: f64,
    /// Queue limit in bytes; `None` for [`queue_limit`]`(rate_bps, delay)`.
    pub limit_bytes: Option<usize>,
    /// Seed of the loss RNG.
    pub seed: u64,
}

impl LineConfig {
    /// A line that only delays.
    pub fn delay(delay: Duration) -> Self {
        Self {
            delay,
            rate_bps: None,
            loss: 0.0,
            limit_bytes: None,
            seed: 1,
        }
    }

    /// The queue limit in effect: the override, or the BDP bound.
    pub fn limit(&self) -> usize {
        self.limit_bytes
            .unwrap_or_else(|| queue_limit(self.rate_bps, self.delay))
    }

    /// Checks the loss probability, the rate and the limit.
    pub fn validate(&self) -> Result<(), LineConfigError> {
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(LineConfigError::Loss { loss: self.loss });
        }
        if self.rate_bps == Some(0) {
            return Err(LineConfigError::ZeroRate);
        }
        let limit = self.limit();
        if limit < MAX_FRAME_BYTES {
            return Err(LineConfigError::Limit { limit });
        }
        Ok(())
    }
}

/// The default queue limit: the bandwidth-delay product `rate × delay` (at
/// [`NOMINAL_RATE_BPS`] without a cap), but at least [`MIN_LIMIT_BYTES`].
///
/// It holds every frame in flight on a link running at `rate`; a larger
/// queue would only add standing delay.
pub fn queue_limit(rate_bps: Option<u64>, delay: Duration) -> usize {
    let rate = u128::from(rate_bps.unwrap_or(NOMINAL_RATE_BPS));
    let bdp = rate * delay.as_nanos() / 8 / 1_000_000_000;
    usize::try_from(bdp)
        .unwrap_or(usize::MAX)
        .max(MIN_LIMIT_BYTES)
}

/// What a line did, since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Frames handed to the driver for sending.
    pub forwarded: u64,
    /// Frames dropped by random loss.
    pub dropped_loss: u64,
    /// Frames dropped because the queue was full.
    pub dropped_full: u64,
    /// Bytes of the forwarded frames.
    pub bytes: u64,
    /// The most bytes ever queued at once.
    pub max_queued_bytes: u64,
}

/// What [`DelayLine::push`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Queued; it is due at this instant.
    Queued(Instant),
    /// Dropped by random loss.
    DroppedLoss,
    /// Dropped because it did not fit into the queue.
    DroppedFull,
}

/// What the driver should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll<'a> {
    /// Send this frame now, then call [`DelayLine::pop`].
    Send(&'a [u8]),
    /// Nothing is due; call [`DelayLine::poll`] again at this instant (or
    /// when a frame arrives).
    WakeAt(Instant),
    /// The queue is empty.
    Idle,
}

/// A queued frame: where it is in the ring and when it is due.
#[derive(Debug, Clone, Copy)]
struct Slot {
    offset: usize,
    len: usize,
    due: Instant,
}

/// One direction of the emulated WAN (see the [module docs](self)).
///
/// Calling contract: `now` must not decrease from one call to the next
/// (frames are still kept in order if it does, but their spacing is then
/// meaningless); after `poll` returned [`Poll::Send`], call `pop` before the
/// next `push` or `poll` to release that frame.
#[derive(Debug)]
pub struct DelayLine {
    delay: Duration,
    rate_bps: Option<u64>,
    /// A frame is lost when the next random `u64` is below this.
    loss_threshold: u64,
    rng: SplitMix64,
    /// The frame pool: queued frames, back to back, wrapping at the end.
    ring: Box<[u8]>,
    /// Where the next frame is written (if it fits before the end).
    tail: usize,
    slots: VecDeque<Slot>,
    queued_bytes: usize,
    /// When the emulated bottleneck is free for the next frame.
    bottleneck_free: Option<Instant>,
    counters: Counters,
}

impl DelayLine {
    /// Builds a line, allocating its frame ring of `config.limit()` bytes.
    pub fn new(config: &LineConfig) -> Result<Self, LineConfigError> {
        config.validate()?;
        let limit = config.limit();
        // p * 2^64, saturating: p = 1 drops all but 1 in 2^64 frames.
        let loss_threshold = if config.loss >= 1.0 {
            u64::MAX
        } else {
            (config.loss * 18_446_744_073_709_551_616.0) as u64
        };
        Ok(Self {
            delay: config.delay,
            rate_bps: config.rate_bps,
            loss_threshold,
            rng: SplitMix64(config.seed),
            ring: vec![0; limit].into_boxed_slice(),
            tail: 0,
            // Room for a full queue of 1 KiB frames; it grows (during
            // warm-up only) if smaller frames fill the ring.
            slots: VecDeque::with_capacity(limit / 1024),
            queued_bytes: 0,
            bottleneck_free: None,
            counters: Counters::default(),
        })
    }

    /// The queue limit in bytes (the ring's size).
    pub fn limit(&self) -> usize {
        self.ring.len()
    }

    /// Bytes of the frames queued now.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Frames queued now.
    pub fn queued_frames(&self) -> usize {
        self.slots.len()
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Takes a frame that arrived at `now`: drops it (loss, full queue) or
    /// copies it into the queue.
    pub fn push(&mut self, now: Instant, frame: &[u8]) -> Verdict {
        if self.loss_threshold > 0 && self.rng.next() < self.loss_threshold {
            self.counters.dropped_loss += 1;
            return Verdict::DroppedLoss;
        }
        let Some(offset) = self.place(frame.len()) else {
            self.counters.dropped_full += 1;
            return Verdict::DroppedFull;
        };
        self.ring[offset..offset + frame.len()].copy_from_slice(frame);
        self.tail = offset + frame.len();
        let start = self.bottleneck_free.map_or(now, |free| free.max(now));
        if let Some(rate) = self.rate_bps {
            self.bottleneck_free = Some(start + serialisation_time(frame.len(), rate));
        }
        let due = start + self.delay;
        self.slots.push_back(Slot {
            offset,
            len: frame.len(),
            due,
        });
        self.queued_bytes += frame.len();
        self.counters.max_queued_bytes =
            self.counters.max_queued_bytes.max(self.queued_bytes as u64);
        Verdict::Queued(due)
    }

    /// What to do at `now`: send the head frame, or wait.
    pub fn poll(&self, now: Instant) -> Poll<'_> {
        match self.slots.front() {
            None => Poll::Idle,
            Some(s) if s.due <= now => Poll::Send(&self.ring[s.offset..s.offset + s.len]),
            Some(s) => Poll::WakeAt(s.due),
        }
    }

    /// Releases the head frame after the driver sent it, counting it as
    /// forwarded. Does nothing if the queue is empty.
    pub fn pop(&mut self) {
        if let Some(s) = self.slots.pop_front() {
            self.queued_bytes -= s.len;
            self.counters.forwarded += 1;
            self.counters.bytes += s.len as u64;
        }
    }

    /// Where a frame of `len` bytes fits in the ring, if anywhere.
    ///
    /// Queued bytes occupy `[head, tail)`, or `[head, end) ∪ [0, tail)` once
    /// the ring has wrapped; a frame never straddles the end (the space
    /// left there is skipped until the head passes it).
    fn place(&self, len: usize) -> Option<usize> {
        let Some(head) = self.slots.front().map(|s| s.offset) else {
            return (len <= self.ring.len()).then_some(0);
        };
        if self.tail > head {
            if self.ring.len() - self.tail >= len {
                Some(self.tail)
            } else {
                (head >= len).then_some(0)
            }
        } else {
            // Wrapped (tail == head: completely full).
            (head - self.tail >= len).then_some(self.tail)
        }
    }
}

/// How long `len` bytes occupy a link of `rate` bit/s, rounded up to whole
/// nanoseconds (so the cap is never exceeded).
fn serialisation_time(len: usize, rate_bps: u64) -> Duration {
    let bits = len as u128 * 8 * 1_000_000_000;
    let ns = bits.div_ceil(u128::from(rate_bps));
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, seedable, good enough to pick
/// lost frames.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A frame whose first 8 bytes are its sequence number.
    fn frame(seq: u64, len: usize) -> Vec<u8> {
        let mut f = vec![0xab; len];
        f[..8].copy_from_slice(&seq.to_be_bytes());
        f
    }

    fn seq_of(f: &[u8]) -> u64 {
        u64::from_be_bytes(f[..8].try_into().unwrap())
    }

    /// Drains every frame due at `now`, returning their sequence numbers.
    fn drain(line: &mut DelayLine, now: Instant) -> Vec<u64> {
        let mut out = Vec::new();
        while let Poll::Send(f) = line.poll(now) {
            out.push(seq_of(f));
            line.pop();
        }
        out
    }

    #[test]
    fn delay_is_exact() {
        let t0 = Instant::now();
        let mut line = DelayLine::new(&LineConfig::delay(Duration::from_micros(2750))).unwrap();
        assert_eq!(line.poll(t0), Poll::Idle);
        let verdict = line.push(t0, &frame(7, 100));
        let due = t0 + Duration::from_micros(2750);
        assert_eq!(verdict, Verdict::Queued(due));
        assert_eq!(line.poll(t0), Poll::WakeAt(due));
        assert_eq!(line.poll(due - Duration::from_nanos(1)), Poll::WakeAt(due));
        match line.poll(due) {
            Poll::Send(f) => assert_eq!(f, frame(7, 100).as_slice()),
            other => panic!("not sent at its due time: {other:?}"),
        }
        line.pop();
        assert_eq!(line.poll(due), Poll::Idle);
        let c = line.counters();
        assert_eq!((c.forwarded, c.bytes, c.max_queued_bytes), (1, 100, 100));
    }

    #[test]
    fn fifo_order_is_kept() {
        let t0 = Instant::now();
        let mut line = DelayLine::new(&LineConfig::delay(10 * MS)).unwrap();
        let mut sent = Vec::new();
        for i in 0..1000u64 {
            let now = t0 + Duration::from_micros(i * 37);
            // Varying sizes exercise the ring's wrap-around.
            line.push(now, &frame(i, 64 + (i as usize * 997) % 9000));
            sent.extend(drain(&mut line, now));
        }
        sent.extend(drain(&mut line, t0 + Duration::from_secs(1)));
        assert_eq!(sent, (0..1000).collect::<Vec<_>>());
        // Every frame left no earlier than arrival + delay.
        let mut line = DelayLine::new(&LineConfig::delay(10 * MS)).unwrap();
        line.push(t0, &frame(0, 64));
        line.push(t0 + MS, &frame(1, 64));
        assert_eq!(drain(&mut line, t0 + 10 * MS), [0]);
        assert_eq!(
            drain(&mut line, t0 + 11 * MS - Duration::from_nanos(1)),
            [0u64; 0]
        );
        assert_eq!(drain(&mut line, t0 + 11 * MS), [1]);
    }

    #[test]
    fn rate_cap_spaces_frames_exactly() {
        let t0 = Instant::now();
        // 1000-byte frames at 8 Mbit/s: one per millisecond.
        let config = LineConfig {
            rate_bps: Some(8_000_000),
            ..LineConfig::delay(5 * MS)
        };
        let mut line = DelayLine::new(&config).unwrap();
        let dues: Vec<Instant> = (0..100)
            .map(|i| match line.push(t0, &frame(i, 1000)) {
                Verdict::Queued(due) => due,
                other => panic!("frame {i}: {other:?}"),
            })
            .collect();
        for (i, due) in dues.iter().enumerate() {
            assert_eq!(*due, t0 + 5 * MS + i as u32 * MS, "frame {i}");
        }
        // A frame arriving after the bottleneck went idle is not delayed
        // by the earlier burst.
        let late = t0 + Duration::from_secs(1);
        assert_eq!(
            line.push(late, &frame(100, 1000)),
            Verdict::Queued(late + 5 * MS)
        );
        // Back-to-back 1500-byte frames at 1 Gbit/s: 12 us apart.
        let mut line = DelayLine::new(&LineConfig {
            rate_bps: Some(1_000_000_000),
            ..LineConfig::delay(MS)
        })
        .unwrap();
        let a = line.push(t0, &frame(0, 1500));
        let b = line.push(t0, &frame(1, 1500));
        assert_eq!(a, Verdict::Queued(t0 + MS));
        assert_eq!(b, Verdict::Queued(t0 + MS + Duration::from_micros(12)));
    }

    #[test]
    fn loss_rate_is_near_p_and_deterministic() {
        let run = |seed| {
            let t0 = Instant::now();
            let mut line = DelayLine::new(&LineConfig {
                loss: 0.01,
                seed,
                ..LineConfig::delay(Duration::ZERO)
            })
            .unwrap();
            let mut lost = Vec::new();
            for i in 0..100_000u64 {
                if line.push(t0, &frame(i, 64)) == Verdict::DroppedLoss {
                    lost.push(i);
                }
                drain(&mut line, t0);
            }
            (line.counters(), lost)
        };
        let (c, lost) = run(42);
        assert_eq!(c.dropped_loss as usize, lost.len());
        assert_eq!(c.forwarded + c.dropped_loss, 100_000);
        // Binomial(100000, 0.01): sd ~ 31.5; allow 5 sd.
        assert!((842..=1158).contains(&c.dropped_loss), "{c:?}");
        assert_eq!(run(42).1, lost, "same seed, different losses");
        assert_ne!(run(43).1, lost, "different seeds, same losses");
        // p = 0 never drops, p = 1 always does.
        for (loss, dropped) in [(0.0, 0), (1.0, 1000)] {
            let mut line = DelayLine::new(&LineConfig {
                loss,
                ..LineConfig::delay(Duration::ZERO)
            })
            .unwrap();
            let t0 = Instant::now();
            for i in 0..1000 {
                line.push(t0, &frame(i, 64));
                drain(&mut line, t0);
            }
            assert_eq!(line.counters().dropped_loss, dropped, "loss {loss}");
        }
    }

    #[test]
    fn full_queue_drops_and_memory_stays_bounded() {
        let t0 = Instant::now();
        let limit = 100_000;
        let mut line = DelayLine::new(&LineConfig {
            limit_bytes: Some(limit),
            ..LineConfig::delay(Duration::from_secs(1))
        })
        .unwrap();
        assert_eq!(line.limit(), limit);
        let mut verdicts = Vec::new();
        for i in 0..20u64 {
            verdicts.push(line.push(t0, &frame(i, 9000)));
            assert!(line.queued_bytes() <= limit);
        }
        // 11 frames of 9000 bytes fit in 100000, the rest are tail-dropped.
        assert!(
            verdicts[..11]
                .iter()
                .all(|v| matches!(v, Verdict::Queued(_)))
        );
        assert!(verdicts[11..].iter().all(|v| *v == Verdict::DroppedFull));
        let c = line.counters();
        assert_eq!((c.dropped_full, c.max_queued_bytes), (9, 99_000));
        // A small frame still fits in the remaining 1000 bytes.
        assert!(matches!(
            line.push(t0, &frame(99, 1000)),
            Verdict::Queued(_)
        ));
        assert_eq!(line.push(t0, &frame(100, 64)), Verdict::DroppedFull);
        // Draining frees the space again; order is kept across the wrap.
        let out = drain(&mut line, t0 + Duration::from_secs(1));
        assert_eq!(out, (0..11).chain([99]).collect::<Vec<_>>());
        assert_eq!(line.queued_bytes(), 0);
        // Steady state with a wrapping ring: never above the limit.
        let mut now = t0;
        let mut max = 0;
        for i in 0..10_000u64 {
            now += Duration::from_micros(20_000 + (i % 7) * 10_000);
            line.push(now, &frame(i, 64 + (i as usize * 7919) % 9000));
            max = max.max(line.queued_bytes());
            drain(&mut line, now);
        }
        assert!(max <= limit && line.counters().max_queued_bytes as usize <= limit);
        assert!(
            line.counters().dropped_full > 9,
            "the steady state never filled the queue"
        );
    }

    #[test]
    fn queue_limit_is_the_bdp_with_a_floor() {
        // 10 Gbit/s nominal x 29.1 ms = 36.375 MB.
        assert_eq!(queue_limit(None, Duration::from_micros(29_100)), 36_375_000);
        // 1 Gbit/s x 71.85 ms = 8.98 MB.
        assert_eq!(
            queue_limit(Some(1_000_000_000), Duration::from_micros(71_850)),
            8_981_250
        );
        // 200 Mbit/s x 2.75 ms = 68750 B: the 1 MiB floor.
        assert_eq!(
            queue_limit(Some(200_000_000), Duration::from_micros(2750)),
            MIN_LIMIT_BYTES
        );
        let config = LineConfig {
            limit_bytes: Some(5 << 20),
            ..LineConfig::delay(MS)
        };
        assert_eq!(config.limit(), 5 << 20);
    }

    #[test]
    fn config_is_validated() {
        for loss in [-0.1, 1.5, f64::NAN] {
            let c = LineConfig {
                loss,
                ..LineConfig::delay(MS)
            };
            assert!(
                matches!(c.validate(), Err(LineConfigError::Loss { .. })),
                "{loss}"
            );
        }
        let c = LineConfig {
            rate_bps: Some(0),
            ..LineConfig::delay(MS)
        };
        assert_eq!(c.validate(), Err(LineConfigError::ZeroRate));
        let c = LineConfig {
            limit_bytes: Some(1000),
            ..LineConfig::delay(MS)
        };
        let err = c.validate().unwrap_err();
        assert_eq!(err, LineConfigError::Limit { limit: 1000 });
        assert!(err.to_string().contains("65553"), "{err}");
    }
}
