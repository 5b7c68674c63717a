//! Every random stream of a run, derived by name from the run's one seed.
//!
//! A run has one seed (printed at the start, stored in `test.json`, replayed with `--seed`).
//! Each part of the run that draws random numbers gets a stream of its own, named here, so that
//! adding draws to one part never shifts another's: the nemesis schedule, each client worker's
//! operations, each member's own seed, the duplicating network of each worker, the cluster's
//! peer token, the proxy network (and each of its links) and the filler of padded values.
//!
//! The stream numbers below are the offsets the harness used before the streams had names;
//! they are kept so that a seed replays the same schedule as before (the schedule fixtures in
//! `harness/tests/fixtures/schedules/` check it). A new stream takes a number no other uses.

/// A named random stream of a run. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The nemesis schedule (one timeline at a time).
    Nemesis,
    /// Client worker `w`'s operations.
    Worker(usize),
    /// Member `i`'s own seed (0-based, in id order), for targets that take one.
    Member(usize),
    /// Worker `w`'s duplicating network (`--duplicate-writes`).
    DuplicateNetwork(usize),
    /// The token the members share for peer RPC.
    ClusterToken,
    /// The proxy network (its links derive theirs from it, see [`proxy_link`]).
    ProxyNetwork,
    /// The message network's relay (its links derive theirs, see the harness's
    /// `net::message::faults::link_seed`).
    MessageNetwork,
    /// The filler of padded values (`--value-size`, see [`crate::values`]).
    Values,
}

impl Stream {
    /// The stream's number, given to [`sub_seed`].
    fn number(self) -> u64 {
        match self {
            Stream::Nemesis => 0,
            Stream::Worker(w) => 1 + w as u64,
            Stream::Member(i) => 1000 + i as u64,
            Stream::DuplicateNetwork(w) => 1_000_000 + w as u64,
            Stream::ClusterToken => u64::MAX - 1,
            Stream::ProxyNetwork => u64::MAX,
            Stream::MessageNetwork => u64::MAX - 2,
            Stream::Values => 2_000_000,
        }
    }
}

/// The seeds of one run: `Seeds::new(seed).of(Stream::Nemesis)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeds {
    run: u64,
}

impl Seeds {
    pub fn new(run: u64) -> Seeds {
        Seeds { run }
    }

    /// The run's seed, as printed and stored.
    pub fn run(self) -> u64 {
        self.run
    }

    /// The seed of `stream`.
    pub fn of(self, stream: Stream) -> u64 {
        sub_seed(self.run, stream.number())
    }
}

/// The seed of timeline `i` of an overlapping nemesis schedule (`--nemesis-overlap`), from
/// the nemesis stream's seed.
pub fn nemesis_timeline(nemesis_seed: u64, i: usize) -> u64 {
    sub_seed(nemesis_seed, i as u64 + 1)
}

/// The seed of the proxy on directed link `i → j` (indexes in id order), from the proxy
/// network's seed.
pub fn proxy_link(network_seed: u64, i: usize, j: usize) -> u64 {
    network_seed ^ ((i as u64) << 32 | j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A fresh run seed (below 10⁹, easy to type) when `--seed` is not given: from the clock and
/// the process id.
pub fn fresh(time_nanos: u64, pid: u64) -> u64 {
    sub_seed(time_nanos, pid) % 1_000_000_000
}

/// Derives a sub-seed: splitmix64 of `seed ^ stream × φ`, so distinct streams get unrelated
/// seeds.
pub fn sub_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values computed with the derivations as they were before the streams had names
    /// (`sub_seed(seed, 0)`, `sub_seed(seed, 1 + w)`, `sub_seed(seed, 1000 + i)`,
    /// `sub_seed(seed, 1_000_000 + w)`, `sub_seed(seed, u64::MAX - 1)`, `sub_seed(seed,
    /// u64::MAX)`, and the proxy's per-link xor), for seed 42.
    #[test]
    fn named_streams_keep_the_values_of_the_old_offsets() {
        let s = Seeds::new(42);
        assert_eq!(s.of(Stream::Nemesis), 12058926934050108962);
        assert_eq!(s.of(Stream::Worker(3)), 6349198060258255764);
        assert_eq!(s.of(Stream::Member(2)), 13342762566380440161);
        assert_eq!(s.of(Stream::DuplicateNetwork(5)), 9920430332155359625);
        assert_eq!(s.of(Stream::ClusterToken), 11748854015151861322);
        assert_eq!(s.of(Stream::ProxyNetwork), 15807466520757658638);
        assert_eq!(
            nemesis_timeline(s.of(Stream::Nemesis), 1),
            10116887731501781438
        );
        assert_eq!(
            proxy_link(s.of(Stream::ProxyNetwork), 1, 2),
            6982277667227114532
        );
    }

    #[test]
    fn distinct_streams_get_distinct_seeds() {
        let s = Seeds::new(7);
        let all = [
            s.of(Stream::Nemesis),
            s.of(Stream::Worker(0)),
            s.of(Stream::Worker(1)),
            s.of(Stream::Member(0)),
            s.of(Stream::DuplicateNetwork(0)),
            s.of(Stream::ClusterToken),
            s.of(Stream::ProxyNetwork),
            s.of(Stream::MessageNetwork),
            s.of(Stream::Values),
        ];
        let set: std::collections::BTreeSet<u64> = all.iter().copied().collect();
        assert_eq!(set.len(), all.len());
    }
}
