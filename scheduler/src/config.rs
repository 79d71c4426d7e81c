//! A scheduler node's settings, validated before anything starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `kairos scheduler` (and `kairos dev`) needs to run one node.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's raft id (non-zero, unique in the group).
    pub node_id: u64,
    /// Where RocksDB keeps the raft log and the state machine.
    pub data_dir: PathBuf,
    /// gRPC listen address (API, executor gateway, raft transport); port 0 = ephemeral.
    pub grpc_addr: SocketAddr,
    /// HTTP listen address (UI, /metrics, health, JSON API); port 0 = ephemeral.
    pub http_addr: SocketAddr,
    /// Initial voters (id → gRPC address) on first start; empty = a single-node group
    /// (or, with `join`, no membership until a leader adds this node). Later starts
    /// read membership from disk and use these only as known addresses.
    pub peers: BTreeMap<u64, String>,
    /// Start without membership and wait to be added (`kairos cluster add-scheduler`).
    pub join: bool,
    /// The gRPC address other schedulers and executors use for this node; default
    /// this node's entry in `peers`, else the bound gRPC address.
    pub advertise_addr: Option<String>,
    /// Compact the raft log every this many applied entries (a new or lagging node
    /// then catches up by snapshot).
    pub snapshot_interval: u64,
    /// When set, the bound addresses are written here once listening
    /// (`grpc=HOST:PORT` and `http=HOST:PORT`, one per line).
    pub addr_file: Option<PathBuf>,
    /// Raft's logical clock period.
    pub tick_interval: Duration,
    /// Ticks without a heartbeat before a follower campaigns; each election timeout
    /// is drawn from [election_ticks, 2 × election_ticks). With the defaults (50 ms,
    /// 10 ticks) a dead leader is replaced after 0.5–1 s; pre-vote and check-quorum
    /// keep a partitioned node from disrupting the group.
    pub election_ticks: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: usize,
    /// Output kept per execution (the tail), in bytes.
    pub max_output_bytes: u64,
    /// Executions kept across all jobs; beyond it the oldest finished ones go, whatever
    /// each job's `history.keep` (0 = no global cap).
    pub max_executions: u64,
    /// Webhooks told about every job's successes and failures (besides each job's own
    /// `notify`).
    pub notify: Vec<String>,
    /// TLS on every port, and the node's certificate for its peers: the CA that signs
    /// every peer, executor and client certificate, and this node's own. `None`
    /// needs `insecure`.
    pub tls: Option<kairos_tls::TlsFiles>,
    /// Run without TLS and without authentication (every caller is an admin).
    pub insecure: bool,
    /// Refuse to listen anywhere but loopback (`kairos dev`, which runs open).
    pub loopback_only: bool,
    /// Writes per second each caller may make (0 = no limit), and the burst above it.
    pub write_rate: f64,
    pub write_burst: f64,
    /// Serve `/metrics` without credentials even when authentication is on.
    pub metrics_open: bool,
    /// The path a reverse proxy serves the web UI under (`/` when none); scopes the
    /// sign-in cookie.
    pub http_base_path: String,
}

impl Config {
    /// The rules a node's settings must keep, checked before anything starts. Each
    /// error names the flag (`field`) as `kairos scheduler` spells it, so the CLI
    /// shows it as `--FIELD REASON` and repeats none of these rules.
    pub fn validate(&self) -> crate::Result<()> {
        use crate::Error;
        if self.node_id == 0 {
            return Err(Error::invalid("node-id", "must be at least 1"));
        }
        let base = &self.http_base_path;
        if !base.starts_with('/')
            || base.len() > 256
            || !base
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~'))
        {
            return Err(Error::invalid(
                "http-base-path",
                format!("{base:?} is not a URL path such as /kairos (letters, digits, / - _ . ~)"),
            ));
        }
        if !self.peers.is_empty() && !self.peers.contains_key(&self.node_id) {
            let ids: Vec<String> = self.peers.keys().map(u64::to_string).collect();
            return Err(Error::invalid(
                "peers",
                format!(
                    "lists the group's voters and must include this node (--node-id {}); it has {}",
                    self.node_id,
                    ids.join(", ")
                ),
            ));
        }
        if self.join && self.peers.keys().any(|id| *id != self.node_id) {
            return Err(Error::invalid(
                "join",
                "and --peers exclude each other: a joining node gets its membership from the group",
            ));
        }
        if self.snapshot_interval == 0 {
            return Err(Error::invalid("snapshot-interval", "must be at least 1"));
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return Err(Error::invalid(
                "election-ticks",
                format!(
                    "({}) must be greater than --heartbeat-ticks ({}), which must be at least 1",
                    self.election_ticks, self.heartbeat_ticks
                ),
            ));
        }
        if self.tick_interval.is_zero() {
            return Err(Error::invalid("tick-interval", "must be longer than 0"));
        }
        match (&self.tls, self.insecure) {
            (None, false) => {
                return Err(Error::invalid(
                    "tls-cert",
                    "is required, with --tls-key and --tls-ca: a scheduler runs with TLS and authentication, or with --insecure to run without both (anyone who reaches its ports may then do anything)",
                ));
            }
            (Some(_), true) => {
                return Err(Error::invalid(
                    "insecure",
                    "and --tls-cert exclude each other",
                ));
            }
            (Some(tls), false) if tls.cert.is_none() || tls.key.is_none() => {
                return Err(Error::invalid(
                    "tls-cert",
                    "and --tls-key are both needed with --tls-ca",
                ));
            }
            _ => {}
        }
        if self.loopback_only {
            for (flag, addr) in [("grpc-addr", self.grpc_addr), ("http-addr", self.http_addr)] {
                if !addr.ip().is_loopback() {
                    return Err(Error::invalid(
                        flag,
                        format!(
                            "{addr} is not a loopback address; kairos dev runs without TLS and authentication, so it listens only on loopback (run `kairos scheduler` with TLS to serve a network)"
                        ),
                    ));
                }
            }
        }
        if self.write_rate < 0.0 || self.write_burst < 1.0 {
            return Err(Error::invalid(
                "write-rate",
                "must be 0 (no limit) or positive, with a burst of at least 1",
            ));
        }
        Ok(())
    }

    /// Defaults for a node with the given id and data directory.
    pub fn new(node_id: u64, data_dir: PathBuf) -> Self {
        Config {
            node_id,
            data_dir,
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 7070)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            peers: BTreeMap::new(),
            join: false,
            advertise_addr: None,
            snapshot_interval: 10_000,
            addr_file: None,
            tick_interval: Duration::from_millis(50),
            election_ticks: 10,
            heartbeat_ticks: 2,
            max_output_bytes: 64 * 1024,
            max_executions: 1_000_000,
            notify: Vec::new(),
            tls: None,
            insecure: false,
            loopback_only: false,
            write_rate: 200.0,
            write_burst: 400.0,
            metrics_open: false,
            http_base_path: "/".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(config: &Config) -> String {
        match config.validate() {
            Err(crate::Error::InvalidArgument { field, reason }) => format!("--{field} {reason}"),
            other => format!("not refused as invalid: {other:?}"),
        }
    }

    #[test]
    fn each_broken_rule_is_refused_naming_its_flag() {
        let mut ok = Config::new(1, "d".into());
        assert_eq!(
            refusal(&ok),
            "--tls-cert is required, with --tls-key and --tls-ca: a scheduler runs with TLS and authentication, or with --insecure to run without both (anyone who reaches its ports may then do anything)"
        );
        ok.insecure = true;
        assert!(ok.validate().is_ok());

        let mut c = ok.clone();
        c.node_id = 0;
        assert_eq!(refusal(&c), "--node-id must be at least 1");

        let mut c = ok.clone();
        c.node_id = 3;
        c.peers = [(1, "a:1".to_string()), (2, "b:2".to_string())].into();
        assert_eq!(
            refusal(&c),
            "--peers lists the group's voters and must include this node (--node-id 3); it has 1, 2"
        );

        let mut c = ok.clone();
        c.peers = [(1, "a:1".to_string()), (2, "b:2".to_string())].into();
        c.join = true;
        assert!(refusal(&c).starts_with("--join and --peers exclude each other"));

        let mut c = ok.clone();
        c.snapshot_interval = 0;
        assert_eq!(refusal(&c), "--snapshot-interval must be at least 1");

        let mut c = ok.clone();
        c.election_ticks = 2;
        assert_eq!(
            refusal(&c),
            "--election-ticks (2) must be greater than --heartbeat-ticks (2), which must be at least 1"
        );
        let mut c = ok.clone();
        c.heartbeat_ticks = 0;
        assert!(refusal(&c).starts_with("--election-ticks"));

        let mut c = ok.clone();
        c.tick_interval = Duration::ZERO;
        assert_eq!(refusal(&c), "--tick-interval must be longer than 0");

        let mut c = ok.clone();
        c.tls = Some(kairos_tls::TlsFiles {
            ca: "ca.crt".into(),
            cert: Some("s.crt".into()),
            key: Some("s.key".into()),
        });
        assert_eq!(refusal(&c), "--insecure and --tls-cert exclude each other");
        c.insecure = false;
        assert!(c.validate().is_ok());
        c.tls = Some(kairos_tls::TlsFiles {
            ca: "ca.crt".into(),
            cert: None,
            key: None,
        });
        assert!(refusal(&c).starts_with("--tls-cert and --tls-key are both needed"));

        let mut c = ok;
        c.loopback_only = true;
        assert!(c.validate().is_ok(), "127.0.0.1 by default");
        c.grpc_addr = "0.0.0.0:7070".parse().unwrap();
        assert!(refusal(&c).starts_with("--grpc-addr 0.0.0.0:7070 is not a loopback address"));
    }
}
