//! The simulation's story: one line per message delivered or dropped, per change of
//! a node's role, term, leader, commit or applied index, and per thing the test did
//! (partition, crash, proposal, answer). Kept in memory, the newest
//! [`TRACE_LINES`] lines only, and printed with the seed when a test fails.
//!
//! A line reads like a goldenscript: `t=42 n1→n2 MsgAppend term=3 index=16
//! log_term=3 entries=1 commit=16`, `t=42 n2 role follower→leader term 4`,
//! `t=43 n1⇥n3 MsgHeartbeat term=4 commit=17 (dropped: link cut)`. `t` is the
//! simulation's tick count.

use std::collections::VecDeque;

use raft::prelude::{Message, MessageType};

use super::super::{RaftStatus, Role};
use super::network::Fate;

/// How many lines a trace keeps (the newest).
pub const TRACE_LINES: usize = 5_000;

/// A bounded log of what happened.
#[derive(Debug, Default)]
pub struct Trace {
    lines: VecDeque<String>,
    /// Lines pushed out by newer ones.
    forgotten: u64,
}

impl Trace {
    pub fn push(&mut self, line: String) {
        if self.lines.len() == TRACE_LINES {
            self.lines.pop_front();
            self.forgotten += 1;
        }
        self.lines.push_back(line);
    }

    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(String::as_str)
    }

    /// The trace as printed on failure, framed by the seed that replays it.
    pub fn render(&self, seed: u64) -> String {
        let test = std::thread::current()
            .name()
            .filter(|n| *n != "main")
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        let mut out = format!(
            "──── raft simulation trace, seed {seed} ────\n\
             replay: KAIROS_RAFT_SEED={seed} cargo test -p kairos-scheduler --lib{test}\n"
        );
        if self.forgotten > 0 {
            out.push_str(&format!("… {} earlier lines not kept …\n", self.forgotten));
        }
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&format!("──── end of trace, seed {seed} ────\n"));
        out
    }
}

/// A message's kind and the fields that matter for it.
pub fn describe(msg: &Message) -> String {
    let kind = msg.get_msg_type();
    let mut s = format!("{kind:?} term={}", msg.term);
    match kind {
        MessageType::MsgAppend => s.push_str(&format!(
            " index={} log_term={} entries={} commit={}",
            msg.index,
            msg.log_term,
            msg.entries.len(),
            msg.commit
        )),
        MessageType::MsgAppendResponse => {
            s.push_str(&format!(" index={}", msg.index));
            if msg.reject {
                s.push_str(&format!(" reject hint={}", msg.reject_hint));
            }
        }
        MessageType::MsgHeartbeat => s.push_str(&format!(" commit={}", msg.commit)),
        MessageType::MsgRequestVote | MessageType::MsgRequestPreVote => {
            s.push_str(&format!(" index={} log_term={}", msg.index, msg.log_term))
        }
        MessageType::MsgRequestVoteResponse | MessageType::MsgRequestPreVoteResponse => {
            s.push_str(if msg.reject { " rejected" } else { " granted" })
        }
        MessageType::MsgSnapshot => {
            let meta = msg.get_snapshot().get_metadata();
            s.push_str(&format!(
                " snapshot index={} term={}",
                meta.index, meta.term
            ));
        }
        MessageType::MsgPropose => s.push_str(&format!(" entries={}", msg.entries.len())),
        _ => {}
    }
    s
}

/// One line for a message the network handled.
pub fn message_line(from: u64, to: u64, msg: &Message, fate: Fate) -> String {
    match fate {
        Fate::Delivered => format!("n{from}→n{to} {}", describe(msg)),
        dropped => format!(
            "n{from}⇥n{to} {} (dropped: {})",
            describe(msg),
            dropped.as_str()
        ),
    }
}

fn leader_name(id: u64) -> String {
    if id == 0 {
        "none".into()
    } else {
        format!("n{id}")
    }
}

fn role_name(role: Role) -> &'static str {
    role.as_str()
}

/// One line per field of a node's status that changed from `old` to `new`.
pub fn status_lines(id: u64, old: &RaftStatus, new: &RaftStatus) -> Vec<String> {
    let mut lines = Vec::new();
    if old.role != new.role {
        lines.push(format!(
            "n{id} role {}→{} term {}",
            role_name(old.role),
            role_name(new.role),
            new.term
        ));
    } else if old.term != new.term {
        lines.push(format!("n{id} term {}→{}", old.term, new.term));
    }
    if old.leader_id != new.leader_id {
        lines.push(format!(
            "n{id} leader {}→{}",
            leader_name(old.leader_id),
            leader_name(new.leader_id)
        ));
    }
    if !old.leader_ready && new.leader_ready {
        lines.push(format!("n{id} ready to lead term {}", new.term));
    }
    if old.commit_index != new.commit_index {
        lines.push(format!(
            "n{id} commit {}→{}",
            old.commit_index, new.commit_index
        ));
    }
    if old.applied_index != new.applied_index {
        lines.push(format!(
            "n{id} applied {}→{}",
            old.applied_index, new.applied_index
        ));
    }
    if old.voters != new.voters {
        lines.push(format!("n{id} voters {:?}→{:?}", old.voters, new.voters));
    }
    lines
}

/// A node's status in one line (when it starts).
pub fn status_summary(st: &RaftStatus) -> String {
    format!(
        "{} term {} leader {} commit {} applied {} voters {:?}",
        role_name(st.role),
        st.term,
        leader_name(st.leader_id),
        st.commit_index,
        st.applied_index,
        st.voters
    )
}

/// A proposal's payload as a reader wants it (the commands are short text).
pub fn payload(data: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_keeps_only_its_newest_lines_and_says_how_many_it_forgot() {
        let mut trace = Trace::default();
        for i in 0..TRACE_LINES + 3 {
            trace.push(format!("line {i}"));
        }
        assert_eq!(trace.lines().count(), TRACE_LINES);
        assert_eq!(trace.lines().next(), Some("line 3"));
        let text = trace.render(99);
        assert!(text.contains("KAIROS_RAFT_SEED=99"), "{text:.200}");
        assert!(text.contains("… 3 earlier lines not kept …"));
        assert!(text.ends_with("──── end of trace, seed 99 ────\n"));
    }

    #[test]
    fn a_message_line_names_the_link_the_kind_and_its_fate() {
        let mut msg = Message::default();
        msg.set_msg_type(MessageType::MsgAppend);
        msg.term = 3;
        msg.index = 16;
        msg.log_term = 3;
        msg.commit = 16;
        msg.entries = vec![Default::default()].into();
        assert_eq!(
            message_line(1, 2, &msg, Fate::Delivered),
            "n1→n2 MsgAppend term=3 index=16 log_term=3 entries=1 commit=16"
        );
        msg.set_msg_type(MessageType::MsgHeartbeat);
        assert_eq!(
            message_line(1, 3, &msg, Fate::Cut),
            "n1⇥n3 MsgHeartbeat term=3 commit=16 (dropped: link cut)"
        );
    }
}
