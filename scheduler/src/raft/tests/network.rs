//! The simulated network's rules: which messages it delivers and which it drops,
//! by link, by kind and by chance — and the seeded random source behind the chance.
//!
//! Rules stack: a message is dropped when any rule says so. Cutting a link is a
//! partition (the sender's transport notices and reports the peer unreachable, as
//! the gRPC transport does when it cannot connect); dropping by kind or by chance is
//! a lossy network (nobody is told). [`Network::heal`] lifts every rule at once.
//!
//! Deliberately absent: delay and reordering. Messages that get through arrive in
//! the order they were sent, within the same settle round.

use std::collections::{BTreeMap, BTreeSet};

use raft::prelude::MessageType;

/// A small, fast, seedable random source (SplitMix64). Written out here rather
/// than taken from `rand` so that a seed replays the same run whatever version of
/// a dependency is in the lock file.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0; the modulo bias is irrelevant at test sizes).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        self.next_u64() % n
    }

    /// True `permille` times in a thousand.
    pub fn chance(&mut self, permille: u32) -> bool {
        self.below(1000) < u64::from(permille)
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// What became of a message the simulation handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    /// The link from sender to receiver is cut (a partition).
    Cut,
    /// Messages of its kind are being dropped everywhere.
    Ignored,
    /// Lost by chance on a lossy link.
    Lost,
    /// The receiver is crashed (or not a member of the simulation).
    Down,
}

impl Fate {
    pub fn as_str(self) -> &'static str {
        match self {
            Fate::Delivered => "delivered",
            Fate::Cut => "link cut",
            Fate::Ignored => "kind ignored",
            Fate::Lost => "lost",
            Fate::Down => "receiver down",
        }
    }

    /// The sender's transport would notice (it cannot reach the peer at all).
    pub fn is_noticed(self) -> bool {
        matches!(self, Fate::Cut | Fate::Down)
    }
}

/// The rules in force.
#[derive(Debug, Default)]
pub struct Network {
    /// Directed links that deliver nothing: (from, to).
    cut: BTreeSet<(u64, u64)>,
    /// Message kinds dropped on every link.
    ignored: Vec<MessageType>,
    /// Directed links that lose each message with this chance, in permille.
    lossy: BTreeMap<(u64, u64), u32>,
    /// A chance, in permille, of losing any message on any link.
    lossy_everywhere: u32,
}

impl Network {
    /// Stops everything from `from` reaching `to` (the other direction still works).
    pub fn cut_one_way(&mut self, from: u64, to: u64) {
        self.cut.insert((from, to));
    }

    pub fn is_cut(&self, from: u64, to: u64) -> bool {
        self.cut.contains(&(from, to))
    }

    /// Drops every message of `kind`, on every link.
    pub fn ignore(&mut self, kind: MessageType) {
        if !self.ignored.contains(&kind) {
            self.ignored.push(kind);
        }
    }

    /// Delivers messages of `kind` again.
    pub fn unignore(&mut self, kind: MessageType) {
        self.ignored.retain(|k| *k != kind);
    }

    /// Loses each message from `from` to `to` with a chance of `permille`/1000.
    pub fn lose(&mut self, from: u64, to: u64, permille: u32) {
        self.lossy.insert((from, to), permille);
    }

    /// Loses each message on any link with a chance of `permille`/1000.
    pub fn lose_everywhere(&mut self, permille: u32) {
        self.lossy_everywhere = permille;
    }

    /// Lifts every rule.
    pub fn heal(&mut self) {
        *self = Network::default();
    }

    /// Whether a message of `kind` from `from` to `to` gets through; draws from
    /// `rng` only when a chance applies, so adding a cut does not shift the draws
    /// of unrelated links.
    pub fn verdict(&self, rng: &mut Rng, from: u64, to: u64, kind: MessageType) -> Fate {
        if self.is_cut(from, to) {
            return Fate::Cut;
        }
        if self.ignored.contains(&kind) {
            return Fate::Ignored;
        }
        let link = self.lossy.get(&(from, to)).copied().unwrap_or(0);
        let permille = link.max(self.lossy_everywhere);
        if permille > 0 && rng.chance(permille) {
            return Fate::Lost;
        }
        Fate::Delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_numbers_and_another_seed_others() {
        let draws = |seed| {
            let mut rng = Rng::new(seed);
            (0..8).map(|_| rng.below(1000)).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
        let mut rng = Rng::new(1);
        assert!((0..1000).all(|_| rng.below(10) < 10));
    }

    #[test]
    fn a_one_way_cut_blocks_one_direction_only_and_heal_lifts_every_rule() {
        let mut net = Network::default();
        let mut rng = Rng::new(1);
        net.cut_one_way(1, 2);
        net.ignore(MessageType::MsgAppendResponse);
        net.lose(3, 1, 1000);
        let hb = MessageType::MsgHeartbeat;
        assert_eq!(net.verdict(&mut rng, 1, 2, hb), Fate::Cut);
        assert_eq!(net.verdict(&mut rng, 2, 1, hb), Fate::Delivered);
        assert_eq!(
            net.verdict(&mut rng, 2, 1, MessageType::MsgAppendResponse),
            Fate::Ignored
        );
        assert_eq!(net.verdict(&mut rng, 3, 1, hb), Fate::Lost);
        assert_eq!(net.verdict(&mut rng, 1, 3, hb), Fate::Delivered);
        net.heal();
        for (from, to) in [(1, 2), (3, 1)] {
            assert_eq!(net.verdict(&mut rng, from, to, hb), Fate::Delivered);
        }
        assert_eq!(
            net.verdict(&mut rng, 2, 1, MessageType::MsgAppendResponse),
            Fate::Delivered
        );
    }

    #[test]
    fn a_lossy_link_loses_about_its_share() {
        let mut net = Network::default();
        let mut rng = Rng::new(42);
        net.lose_everywhere(200);
        let lost = (0..10_000)
            .filter(|_| net.verdict(&mut rng, 1, 2, MessageType::MsgHeartbeat) == Fate::Lost)
            .count();
        assert!(
            (1_700..2_300).contains(&lost),
            "{lost} of 10000 lost at 20%"
        );
    }
}
