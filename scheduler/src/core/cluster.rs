//! The scheduler group: status (each member asked for its own figures),
//! membership changes (add, join, remove — each keeping a live quorum), leadership
//! transfer and the handoff on shutdown, and the replicated address book.

use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use tracing::{info, warn};

use crate::state::Applied;
use crate::{Error, Result};

use super::{Core, HANDOFF_TIMEOUT, unexpected};

impl Core {
    /// This node's own row of the cluster status.
    pub fn local_status(&self) -> pb::SchedulerStatus {
        let s = self.raft.status();
        pb::SchedulerStatus {
            id: s.id,
            addr: self.my_addr.clone(),
            role: s.role.as_str().to_string(),
            term: s.term,
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            reachable: true,
            log_first_index: s.log_first_index,
        }
    }

    /// The group as this node sees it, with each member's own figures (asked of it;
    /// `reachable` false when it did not answer in time).
    pub async fn cluster_status(&self) -> pb::ClusterStatus {
        let s = self.raft.status();
        let mut ids: Vec<u64> = s.voters.iter().chain(s.learners.iter()).copied().collect();
        if !ids.contains(&s.id) {
            ids.push(s.id);
        }
        ids.sort_unstable();
        ids.dedup();
        let asks = ids.iter().map(|id| async move {
            if *id == s.id {
                return self.local_status();
            }
            let addr = self.book.get(*id).unwrap_or_default();
            match self.peers.status_of(&addr).await {
                Some(mut st) => {
                    st.id = *id;
                    st
                }
                None => pb::SchedulerStatus {
                    id: *id,
                    addr,
                    role: "unknown".into(),
                    reachable: false,
                    ..Default::default()
                },
            }
        });
        let schedulers = futures::future::join_all(asks).await;
        // Executors connect to the leader only.
        let executors = if s.leader_id == s.id || s.leader_id == 0 {
            self.executors.statuses()
        } else {
            let addr = self.book.get(s.leader_id).unwrap_or_default();
            self.peers.executors_of(&addr).await.unwrap_or_default()
        };
        pb::ClusterStatus {
            leader_id: s.leader_id,
            leader_addr: self.leader_addr().unwrap_or_default(),
            schedulers,
            executors,
            answered_by: s.id,
        }
    }

    /// The address peers and executors should use for this node.
    pub fn advertised_addr(&self) -> String {
        self.my_addr.clone()
    }

    /// The leader's gRPC address, when known.
    pub fn leader_addr(&self) -> Option<String> {
        let s = self.raft.status();
        if s.leader_id == 0 {
            None
        } else {
            self.book.get(s.leader_id)
        }
    }

    /// Admits a scheduler (started with `--join`) as a voter.
    pub async fn add_scheduler(&self, id: u64, addr: &str) -> Result<()> {
        if id == 0 {
            return Err(Error::invalid("id", "must be a positive number"));
        }
        if addr.parse::<std::net::SocketAddr>().is_err() && !addr.contains(':') {
            return Err(Error::invalid("addr", format!("{addr:?} is not HOST:PORT")));
        }
        self.leader_or_wait().await?;
        let s = self.raft.status();
        if s.voters.contains(&id) {
            return Err(Error::AlreadyExists(format!("scheduler {id}")));
        }
        self.book.set(id, addr.to_string());
        self.raft
            .change_membership(crate::raft::MemberChange::Add {
                id,
                addr: addr.to_string(),
            })
            .await?;
        info!(node = id, %addr, "scheduler added");
        Ok(())
    }

    /// Admits the scheduler `id` at `addr` as a voter, for a node that found the
    /// group by itself ([`crate::join`]). Idempotent: a voter already known at that
    /// address is answered at once. When the node is a voter but says it has no data
    /// (`empty`), it is removed and added again, so it never counts as the member it
    /// no longer remembers being; that needs the other voters to hold a live quorum
    /// without it, else FAILED_PRECONDITION (the node asks again later).
    pub async fn join(&self, id: u64, addr: &str, empty: bool) -> Result<Vec<u64>> {
        if id == 0 {
            return Err(Error::invalid("id", "must be a positive number"));
        }
        if !addr.contains(':') {
            return Err(Error::invalid("addr", format!("{addr:?} is not HOST:PORT")));
        }
        self.leader_or_wait().await?;
        let s = self.raft.status();
        if s.voters.contains(&id) {
            if id == s.id {
                return Err(Error::FailedPrecondition(format!(
                    "scheduler {id} is this leader; a running node cannot join again"
                )));
            }
            if !empty {
                if self.book.get(id).as_deref() != Some(addr) {
                    self.book.set(id, addr.to_string());
                }
                return Ok(s.voters);
            }
            let progress = self.raft.progress().await?;
            let quorum = s.voters.len() / 2 + 1;
            let others = progress.active_except(id);
            if others < quorum {
                return Err(Error::FailedPrecondition(format!(
                    "cannot replace scheduler {id} now: {others} of the other voters are active, and removing it then adding it back needs {quorum}"
                )));
            }
            info!(node = id, %addr, "scheduler lost its data: replacing it (remove, then add)");
            self.raft
                .change_membership(crate::raft::MemberChange::Remove { id })
                .await?;
        }
        self.book.set(id, addr.to_string());
        self.raft
            .change_membership(crate::raft::MemberChange::Add {
                id,
                addr: addr.to_string(),
            })
            .await?;
        info!(node = id, %addr, "scheduler joined");
        Ok(self.raft.status().voters)
    }

    /// Removes a voter. Removing the leader first hands leadership to another voter,
    /// which then removes it. Refused (FAILED_PRECONDITION) when the voters left
    /// would not hold a live quorum: a removal must never take the group down.
    pub async fn remove_scheduler(&self, id: u64) -> Result<()> {
        self.leader_or_wait().await?;
        let s = self.raft.status();
        if !s.voters.contains(&id) {
            return Err(Error::NotFound(format!("scheduler {id}")));
        }
        if s.voters.len() == 1 {
            return Err(Error::FailedPrecondition(
                "cannot remove the last scheduler".into(),
            ));
        }
        let progress = self.raft.progress().await?;
        let left = s.voters.len() - 1;
        let quorum = left / 2 + 1;
        let active = progress.active_except(id);
        if active < quorum {
            return Err(Error::FailedPrecondition(format!(
                "removing scheduler {id} would leave {left} voters of which only {active} are active; they need {quorum} for a quorum"
            )));
        }
        if id == s.id {
            let next = progress
                .best_successor(id)
                .expect("invariant: a quorum of other active voters exists");
            info!(
                to = next,
                "handing leadership over before removing this node"
            );
            self.transfer_leader(next).await?;
            let addr = self
                .book
                .get(next)
                .ok_or_else(|| Error::Unavailable(format!("no address for scheduler {next}")))?;
            return self.peers.remove_via(self.config.node_id, &addr, id).await;
        }
        self.raft
            .change_membership(crate::raft::MemberChange::Remove { id })
            .await?;
        info!(node = id, "scheduler removed");
        Ok(())
    }

    /// On shutdown: when this node leads a group of several, hands leadership to
    /// the most caught-up active follower and waits (bounded) until it leads, so a
    /// rolling restart costs the group a leadership transfer (tens of milliseconds)
    /// instead of an election timeout. True when the handoff happened.
    pub async fn hand_over_leadership(&self) -> bool {
        let s = self.raft.status();
        if s.role != crate::raft::Role::Leader || s.voters.len() < 2 {
            return false;
        }
        let Ok(progress) = self.raft.progress().await else {
            return false;
        };
        let Some(next) = progress.best_successor(s.id) else {
            warn!("shutting down the leader with no active follower to hand leadership to");
            return false;
        };
        info!(to = next, "shutting down: handing leadership over");
        match tokio::time::timeout(HANDOFF_TIMEOUT, self.transfer_leader(next)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                warn!(to = next, error = %e, "leadership handoff failed; stopping anyway");
                false
            }
            Err(_) => {
                warn!(
                    to = next,
                    "leadership handoff did not finish in time; stopping anyway"
                );
                false
            }
        }
    }

    /// Hands leadership to `id` and waits until it has it.
    pub async fn transfer_leader(&self, id: u64) -> Result<()> {
        self.leader_or_wait().await?;
        let s = self.raft.status();
        if !s.voters.contains(&id) {
            return Err(Error::NotFound(format!("scheduler {id}")));
        }
        if id == s.id {
            return Ok(());
        }
        self.raft.transfer_leader(id)?;
        let mut status = self.raft.watch_status();
        let wait = async {
            loop {
                if status.borrow_and_update().leader_id == id {
                    return;
                }
                if status.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), wait)
            .await
            .map_err(|_| {
                Error::Unavailable(format!("scheduler {id} did not take leadership within 10s"))
            })?;
        info!(node = id, "leadership transferred");
        Ok(())
    }

    /// Makes sure the replicated address book holds every voter this leader knows an
    /// address for (the initial voters are only in the flags of the first leader).
    pub async fn ensure_member_addrs(&self) -> Result<()> {
        let known = self.view.members();
        let s = self.raft.status();
        let missing: std::collections::HashMap<u64, String> = s
            .voters
            .iter()
            .filter(|id| !known.contains_key(id))
            .filter_map(|id| self.book.get(*id).map(|a| (*id, a)))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        match self
            .propose(ipb::command::Kind::SetMemberAddrs(ipb::SetMemberAddrs {
                addrs: missing,
            }))
            .await?
        {
            Applied::Members(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}
