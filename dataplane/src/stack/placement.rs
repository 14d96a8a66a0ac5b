//! Which dataplane lcore carries a new stream.
//!
//! By default each stream goes to the lcore with the fewest active streams (ties rotate), so
//! lcores stay balanced as sessions come and go. The operator can pin instead
//! (`--dpdk_stream_lcores`): stream `k` of every session runs on the `k mod n`-th listed
//! lcore, so for example a session's first stream always lands on the core next to the NIC's
//! NUMA node. The profile's `lcores.streams_per_lcore` is a sizing hint: placing beyond it is
//! logged, never refused, because refusing a session over a hint would be worse than a busy core.
//!
//! A [`Placed`] token holds its lcore's count until it is dropped (the stream's end).

use std::sync::{Arc, Mutex};

/// The operator's mapping names an lcore that does not poll.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--dpdk_stream_lcores names lcore {lcore}, which is not a dataplane lcore (the dataplane \
     lcores are {dataplane:?}; set them with --cores or the profile's lcores.dataplane)"
)]
pub struct PlacementError {
    pub lcore: u32,
    pub dataplane: Vec<u32>,
}

/// Places streams on dataplane lcores and counts what each carries.
#[derive(Debug)]
pub struct Placer {
    /// Dataplane lcore ids, in queue order (position `i` polls queue `i`).
    lcores: Vec<u32>,
    /// The operator's mapping as positions into `lcores`; empty: least loaded.
    pinned: Vec<usize>,
    /// `lcores.streams_per_lcore` of the profile.
    hint: Option<u32>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    active: Vec<usize>,
    /// Where the search for the least loaded lcore starts next (rotates ties).
    next: usize,
}

/// A stream's place; the lcore's count drops when this does.
#[derive(Debug)]
pub struct Placed {
    placer: Arc<Placer>,
    position: usize,
}

impl Placer {
    /// `lcores`: the dataplane lcore ids in queue order (at least one); `pinned`: the
    /// operator's stream-to-lcore list (lcore ids, may repeat; empty for least loaded).
    pub fn new(lcores: &[u32], pinned: &[u32], hint: Option<u32>) -> Result<Self, PlacementError> {
        assert!(!lcores.is_empty(), "the engine starts at least one lcore");
        let pinned = pinned
            .iter()
            .map(|&lcore| {
                lcores
                    .iter()
                    .position(|&l| l == lcore)
                    .ok_or_else(|| PlacementError {
                        lcore,
                        dataplane: lcores.to_vec(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            lcores: lcores.to_vec(),
            pinned,
            hint,
            state: Mutex::new(State {
                active: vec![0; lcores.len()],
                next: 0,
            }),
        })
    }

    /// A place for stream `index` (its position in the session).
    pub fn place(self: &Arc<Self>, index: usize) -> Placed {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.lcores.len();
        let position = if self.pinned.is_empty() {
            let start = st.next;
            let best = (0..n)
                .map(|k| (start + k) % n)
                .min_by_key(|&p| st.active[p])
                .unwrap_or(0);
            st.next = (best + 1) % n;
            best
        } else {
            self.pinned[index % self.pinned.len()]
        };
        st.active[position] += 1;
        let carried = st.active[position];
        drop(st);
        if let Some(hint) = self.hint
            && carried > hint as usize
        {
            tracing::warn!(
                lcore = self.lcores[position],
                streams = carried,
                streams_per_lcore = hint,
                "a dataplane lcore carries more streams than the NIC profile recommends; add \
                 dataplane lcores (--cores) or spread the mapping (--dpdk_stream_lcores)"
            );
        }
        Placed {
            placer: Arc::clone(self),
            position,
        }
    }

    /// Active streams per dataplane lcore, in queue order.
    pub fn active(&self) -> Vec<usize> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .active
            .clone()
    }
}

impl Placed {
    /// The lcore's position among the dataplane lcores (its queue).
    pub fn position(&self) -> usize {
        self.position
    }

    /// The EAL lcore id.
    pub fn lcore(&self) -> u32 {
        self.placer.lcores[self.position]
    }
}

impl Drop for Placed {
    fn drop(&mut self) {
        let mut st = self.placer.state.lock().unwrap_or_else(|e| e.into_inner());
        st.active[self.position] = st.active[self.position].saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcores(p: &[Placed]) -> Vec<u32> {
        p.iter().map(Placed::lcore).collect()
    }

    #[test]
    fn least_loaded_balances_and_follows_streams_that_end() {
        let placer = Arc::new(Placer::new(&[2, 3, 5], &[], None).unwrap());
        let mut a: Vec<Placed> = (0..4).map(|i| placer.place(i)).collect();
        assert_eq!(lcores(&a), [2, 3, 5, 2]);
        assert_eq!(placer.active(), [2, 1, 1]);
        // Lcore 3's stream ends: the next stream goes there, not round-robin to 3's neighbour.
        a.remove(1);
        assert_eq!(placer.active(), [2, 0, 1]);
        let b = placer.place(0);
        assert_eq!(b.lcore(), 3);
        drop(a);
        drop(b);
        assert_eq!(placer.active(), [0, 0, 0]);
    }

    #[test]
    fn ties_rotate_instead_of_piling_on_the_first_lcore() {
        let placer = Arc::new(Placer::new(&[1, 2], &[], None).unwrap());
        // One-stream sessions that end at once: each lands one further along.
        let seen: Vec<u32> = (0..4).map(|_| placer.place(0).lcore()).collect();
        assert_eq!(seen, [1, 2, 1, 2]);
    }

    #[test]
    fn the_operators_mapping_pins_stream_k_of_every_session() {
        let placer = Arc::new(Placer::new(&[1, 2, 3], &[3, 3, 1], Some(1)).unwrap());
        let s1: Vec<Placed> = (0..4).map(|i| placer.place(i)).collect();
        assert_eq!(lcores(&s1), [3, 3, 1, 3]);
        let s2: Vec<Placed> = (0..2).map(|i| placer.place(i)).collect();
        assert_eq!(lcores(&s2), [3, 3]);
        // Beyond the hint is placed anyway (and logged).
        assert_eq!(placer.active(), [1, 0, 5]);
        assert_eq!(s1[2].position(), 0);
    }

    #[test]
    fn a_mapping_to_an_lcore_that_does_not_poll_is_refused_by_name() {
        let err = Placer::new(&[1, 2], &[2, 7], None).unwrap_err();
        assert_eq!(
            err,
            PlacementError {
                lcore: 7,
                dataplane: vec![1, 2]
            }
        );
        assert!(err.to_string().contains("lcore 7"), "{err}");
        assert!(err.to_string().contains("[1, 2]"), "{err}");
    }
}
