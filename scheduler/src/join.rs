//! How a scheduler that starts with an empty data directory finds its place in the
//! group its `--peers` name: bootstrap a new group with them, or join the one they
//! already run.
//!
//! # Why
//! `--peers` names the group's intended voters. On a fresh install every listed node
//! starts empty, and they bootstrap together: each writes the same initial state (a
//! membership snapshot at index 1 holding the listed voters), so their logs agree
//! from the first entry. When a running group grows — a Kubernetes StatefulSet scaled
//! from 3 to 5 renders a longer `--peers` — the new nodes also start empty, but
//! bootstrapping would give them a membership the group never had. They must ask
//! the running group's leader to admit them instead. This module tells the two
//! apart, so that scaling needs no manual `cluster add-scheduler`.
//!
//! # The rule ([`decide`])
//! Before its raft node exists, an empty node asks every other listed peer what it
//! holds (`RaftTransport.Membership`), again and again, until it can decide:
//! 1. A peer holds a group and knows its leader → **join** through that leader
//!    (`RaftTransport.Join`, idempotent). If this node is one of the group's voters
//!    already (its data was lost, or it came up after the others bootstrapped), it
//!    says it is empty and the leader *replaces* it: removes it, then adds it again,
//!    so it never votes or acknowledges as the member it no longer remembers being.
//!    The leader refuses while the other voters lack a live quorum without it; the
//!    node then asks again later.
//! 2. Every other listed peer is empty too and would bootstrap with the same voters
//!    → **bootstrap**; each of them does the same and all write the same state.
//! 3. Peers hold a group but none knows a leader, none of their logs ever went past
//!    the bootstrap (last index 1: nothing was appended, so nothing was acknowledged
//!    by anyone), and its voters are ours → **bootstrap** too: that is exactly the
//!    state they hold, and this node only came late (they cannot elect without it).
//! 4. Anything else — a peer that does not answer, a leaderless group whose log went
//!    on, peers that disagree about the voters → **wait** and ask again.
//!
//! # Invariants
//! - An empty node never bootstraps while a listed peer is unreachable or holds a
//!   group whose log went past the bootstrap: one `--peers` list never yields two
//!   groups.
//! - A voter that lost its data takes part in raft only after the group removed and
//!   re-added it: raft's safety needs every voter to keep what it acknowledged.
//! - The decision is taken before the raft node starts. Meanwhile the node answers
//!   `Membership` (as waiting) and refuses raft traffic, and its HTTP port answers
//!   `/healthz` (alive) and `/readyz` (not ready), so an orchestrator does not kill a
//!   node that is only waiting for its peers.
//!
//! # Deliberately not here
//! Nodes with data restart as what they were, whatever `--peers` says. Shrinking a
//! group is an explicit removal (`kairos cluster remove-scheduler`, which the Helm
//! chart runs as a hook before the StatefulSet loses pods): a stopped node may be
//! restarting, and only the operator knows it is gone for good.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kairos_proto::v1 as pb;
use pb::membership_reply::State;
use pb::raft_transport_client::RaftTransportClient;
use tokio_util::sync::CancellationToken;
use tonic::Request;
use tonic::transport::Channel;
use tracing::{info, warn};

use crate::dial::Dialer;
use crate::{Error, Result};

/// The last log index of a group that was bootstrapped and never appended to.
pub const BOOTSTRAP_LAST_INDEX: u64 = 1;
/// How long one peer may take to answer a probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between rounds of probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// A waiting node says why at most this often.
const WAIT_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// How long a Join may take (the leader may replace the node: two conf changes).
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

/// What one peer said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It did not answer (down, not started, unreachable).
    Unreachable(String),
    /// It is empty too, and would bootstrap with these voters.
    Waiting { voters: BTreeSet<u64> },
    /// It holds a group.
    Member {
        voters: BTreeSet<u64>,
        /// 0 when it knows no leader.
        leader_id: u64,
        leader_addr: String,
        last_index: u64,
    },
}

/// What an empty node does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write the initial membership with `--peers` as the voters.
    Bootstrap,
    /// Ask the leader at `leader_addr` to admit this node; `replace` when this node
    /// is one of the voters already (it must be removed and added again).
    Join { leader_addr: String, replace: bool },
    /// Not yet: ask again later. The reason is for the log.
    Wait(String),
}

/// The rule of the module essay, as a pure function: `me` with its listed `voters`
/// (itself included) and what each other listed peer answered.
pub fn decide(me: u64, voters: &BTreeSet<u64>, answers: &BTreeMap<u64, Answer>) -> Decision {
    // 1. A group with a known leader: join it.
    if let Some((leader_addr, group)) = answers.values().find_map(|a| match a {
        Answer::Member {
            voters,
            leader_id,
            leader_addr,
            ..
        } if *leader_id != 0 && !leader_addr.is_empty() => Some((leader_addr.clone(), voters)),
        _ => None,
    }) {
        return Decision::Join {
            leader_addr,
            replace: group.contains(&me),
        };
    }
    let others: Vec<u64> = voters.iter().copied().filter(|id| *id != me).collect();
    let mut unreachable = Vec::new();
    let mut waiting = 0usize;
    let mut fresh_members = 0usize;
    for id in &others {
        match answers.get(id) {
            None | Some(Answer::Unreachable(_)) => unreachable.push(*id),
            Some(Answer::Waiting { voters: theirs }) => {
                if theirs != voters {
                    return Decision::Wait(format!(
                        "scheduler {id} would bootstrap with voters {theirs:?}, this node with {voters:?}; their --peers must be the same"
                    ));
                }
                waiting += 1;
            }
            Some(Answer::Member {
                voters: theirs,
                last_index,
                ..
            }) => {
                if *last_index > BOOTSTRAP_LAST_INDEX {
                    return Decision::Wait(format!(
                        "scheduler {id} holds a group (log at index {last_index}) that has no leader now; waiting for it to elect one"
                    ));
                }
                if theirs != voters {
                    return Decision::Wait(format!(
                        "scheduler {id} holds a new group with voters {theirs:?}, not {voters:?}"
                    ));
                }
                fresh_members += 1;
            }
        }
    }
    if !unreachable.is_empty() {
        return Decision::Wait(format!(
            "no answer yet from scheduler(s) {unreachable:?}; a new group starts only when every listed peer answers"
        ));
    }
    // 2. and 3.: everyone is empty, or holds exactly the untouched bootstrap state.
    debug_assert_eq!(waiting + fresh_members, others.len());
    Decision::Bootstrap
}

/// How the raft node is to start, once decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// Write the initial membership (`--peers`) and start.
    Bootstrap,
    /// Start with no membership: the leader admitted this node and sends it the log.
    Joined,
}

/// Probes the peers until [`decide`] settles, joining through the leader when it says
/// so. Returns `None` when `shutdown` fires first.
pub async fn find_place(
    me: u64,
    my_addr: &str,
    peers: &BTreeMap<u64, String>,
    dialer: &Dialer,
    shutdown: &CancellationToken,
) -> Option<StartMode> {
    let voters: BTreeSet<u64> = peers.keys().copied().collect();
    let channels: BTreeMap<u64, Channel> = peers
        .iter()
        .filter(|(id, _)| **id != me)
        .filter_map(|(id, addr)| channel(dialer, addr).map(|c| (*id, c)))
        .collect();
    let mut last_log: Option<tokio::time::Instant> = None;
    loop {
        let asks = channels
            .iter()
            .map(|(id, ch)| async move { (*id, probe(ch.clone(), me).await) });
        let answers: BTreeMap<u64, Answer> =
            futures::future::join_all(asks).await.into_iter().collect();
        let decision = decide(me, &voters, &answers);
        let why = match decision {
            Decision::Bootstrap => {
                info!(node = me, voters = ?voters, "every listed peer is new: bootstrapping the group");
                return Some(StartMode::Bootstrap);
            }
            Decision::Join {
                leader_addr,
                replace,
            } => match join(dialer, &leader_addr, me, my_addr, replace).await {
                Ok(voters) => {
                    info!(node = me, leader = %leader_addr, ?voters, replaced = replace, "admitted to the running group");
                    return Some(StartMode::Joined);
                }
                Err(e) => format!("the leader at {leader_addr} did not admit this node yet: {e}"),
            },
            Decision::Wait(why) => why,
        };
        if last_log.is_none_or(|t| t.elapsed() >= WAIT_LOG_INTERVAL) {
            info!(node = me, reason = %why, "waiting for the group");
            last_log = Some(tokio::time::Instant::now());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
    }
}

fn channel(dialer: &Dialer, addr: &str) -> Option<Channel> {
    match dialer.channel(addr, |e| e.connect_timeout(PROBE_TIMEOUT).tcp_nodelay(true)) {
        Ok(c) => Some(c),
        Err(e) => {
            warn!(%addr, error = %e, "unusable peer address");
            None
        }
    }
}

async fn probe(channel: Channel, me: u64) -> Answer {
    let mut req = Request::new(pb::MembershipRequest { from: me });
    req.set_timeout(PROBE_TIMEOUT);
    let mut client = RaftTransportClient::new(channel);
    let reply = match tokio::time::timeout(PROBE_TIMEOUT, client.membership(req)).await {
        Err(_) => return Answer::Unreachable("no answer in time".into()),
        Ok(Err(s)) => return Answer::Unreachable(s.message().to_string()),
        Ok(Ok(r)) => r.into_inner(),
    };
    let voters = reply.voters.iter().copied().collect();
    match reply.state() {
        State::Waiting => Answer::Waiting { voters },
        State::Member => Answer::Member {
            voters,
            leader_id: reply.leader_id,
            leader_addr: reply.leader_addr,
            last_index: reply.last_index,
        },
        State::Unspecified => Answer::Unreachable("answered without a state".into()),
    }
}

async fn join(
    dialer: &Dialer,
    leader_addr: &str,
    me: u64,
    my_addr: &str,
    empty: bool,
) -> Result<Vec<u64>> {
    let channel = channel(dialer, leader_addr)
        .ok_or_else(|| Error::Unavailable(format!("bad leader address {leader_addr}")))?;
    let mut req = Request::new(pb::JoinRequest {
        id: me,
        addr: my_addr.to_string(),
        empty,
    });
    req.set_timeout(JOIN_TIMEOUT);
    RaftTransportClient::new(channel)
        .join(req)
        .await
        .map(|r| r.into_inner().voters)
        .map_err(|s| Error::Unavailable(format!("{:?}: {}", s.code(), s.message())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    fn waiting(v: &[u64]) -> Answer {
        Answer::Waiting { voters: ids(v) }
    }

    fn member(v: &[u64], leader_id: u64, last_index: u64) -> Answer {
        Answer::Member {
            voters: ids(v),
            leader_id,
            leader_addr: if leader_id == 0 {
                String::new()
            } else {
                format!("s{leader_id}:7070")
            },
            last_index,
        }
    }

    fn answers(list: &[(u64, Answer)]) -> BTreeMap<u64, Answer> {
        list.iter().cloned().collect()
    }

    #[test]
    fn a_fresh_group_bootstraps_once_every_peer_answers() {
        let voters = ids(&[1, 2, 3]);
        let all = answers(&[(2, waiting(&[1, 2, 3])), (3, waiting(&[1, 2, 3]))]);
        assert_eq!(decide(1, &voters, &all), Decision::Bootstrap);

        let one_missing = answers(&[(2, waiting(&[1, 2, 3]))]);
        assert!(matches!(
            decide(1, &voters, &one_missing),
            Decision::Wait(why) if why.contains("[3]")
        ));
        let one_down = answers(&[
            (2, waiting(&[1, 2, 3])),
            (3, Answer::Unreachable("connection refused".into())),
        ]);
        assert!(matches!(decide(1, &voters, &one_down), Decision::Wait(_)));
    }

    #[test]
    fn a_majority_of_empty_peers_is_not_enough_to_bootstrap() {
        // Growing 1 → 3: the old member is briefly unreachable, the two new ones are
        // empty. Bootstrapping here would start a second group beside the first.
        let voters = ids(&[1, 2, 3]);
        let seen = answers(&[
            (1, Answer::Unreachable("timeout".into())),
            (3, waiting(&[1, 2, 3])),
        ]);
        assert!(matches!(decide(2, &voters, &seen), Decision::Wait(_)));
    }

    #[test]
    fn a_group_with_a_leader_is_joined_and_a_listed_voter_is_replaced() {
        let voters = ids(&[1, 2, 3, 4, 5]);
        let grown = answers(&[
            (1, member(&[1, 2, 3], 2, 420)),
            (2, member(&[1, 2, 3], 2, 420)),
            (3, Answer::Unreachable("restarting".into())),
            (5, waiting(&[1, 2, 3, 4, 5])),
        ]);
        assert_eq!(
            decide(4, &voters, &grown),
            Decision::Join {
                leader_addr: "s2:7070".into(),
                replace: false
            }
        );
        // Node 3 lost its volume: it is a voter, so it must be replaced.
        let voters = ids(&[1, 2, 3]);
        let lost = answers(&[
            (1, member(&[1, 2, 3], 1, 99)),
            (2, member(&[1, 2, 3], 1, 99)),
        ]);
        assert_eq!(
            decide(3, &voters, &lost),
            Decision::Join {
                leader_addr: "s1:7070".into(),
                replace: true
            }
        );
    }

    #[test]
    fn a_late_peer_of_an_untouched_bootstrap_bootstraps_too() {
        // Nodes 1 and 2 bootstrapped; 2 is not up yet, so 1 cannot elect and its
        // log never went past the bootstrap snapshot.
        let voters = ids(&[1, 2, 3]);
        let late = answers(&[
            (1, member(&[1, 2, 3], 0, BOOTSTRAP_LAST_INDEX)),
            (2, waiting(&[1, 2, 3])),
        ]);
        assert_eq!(decide(3, &voters, &late), Decision::Bootstrap);
    }

    #[test]
    fn a_leaderless_group_that_wrote_entries_is_waited_for() {
        let voters = ids(&[1, 2, 3]);
        let outage = answers(&[(1, member(&[1, 2, 3], 0, 57)), (2, waiting(&[1, 2, 3]))]);
        assert!(matches!(
            decide(3, &voters, &outage),
            Decision::Wait(why) if why.contains("index 57")
        ));
    }

    #[test]
    fn peers_that_disagree_about_the_voters_are_waited_for() {
        let voters = ids(&[1, 2, 3]);
        let other = answers(&[(2, waiting(&[1, 2])), (3, waiting(&[1, 2, 3]))]);
        assert!(matches!(
            decide(1, &voters, &other),
            Decision::Wait(why) if why.contains("--peers")
        ));
        let fresh_other = answers(&[
            (2, member(&[1, 2], 0, BOOTSTRAP_LAST_INDEX)),
            (3, waiting(&[1, 2, 3])),
        ]);
        assert!(matches!(
            decide(1, &voters, &fresh_other),
            Decision::Wait(_)
        ));
    }
}
