//! The session: one `ExecutorGateway.Connect` stream at a time, to the leader.
//!
//! # Handshake
//!
//! The executor dials (a 2 s connect timeout), and the first message it sends is
//! `Hello`: its id, tags, capacity, protocol version, build version, and the ids of
//! the runs it still owns from an earlier connection, so the new leader can adopt
//! them instead of declaring them lost. The scheduler answers with one of:
//!
//! - `Welcome{scheduler_id, term, heartbeat_interval_ms}`: this is the leader. The
//!   term is recorded for fencing, and every unacknowledged finished report in the
//!   outbox is sent at once.
//! - `Redirect{leader_addr}` and the end of the stream: dial `leader_addr` next, at
//!   once; an empty address (no leader yet) means back off and try the next
//!   configured scheduler. A gRPC `Unavailable` carrying the `kairos-leader`
//!   metadata means the same.
//!
//! # While connected
//!
//! Assignments and cancels go to [`Executions`]; `FinishedAck` clears the outbox.
//! Started reports are forwarded as they come, and each finished report is sent
//! once per connection (again on the next connection if no ack came). Heartbeats
//! with the running ids go out every `heartbeat_interval_ms` from their own task,
//! so a busy executor is never mistaken for a dead one. If *nothing* arrives from
//! the scheduler for three intervals (the leader sends heartbeats too), the stream
//! is presumed dead and dropped.
//!
//! # Reconnecting
//!
//! Whenever a stream ends or a dial fails, the next configured address is tried
//! after a jittered exponential backoff ([`Backoff`]: 100 ms doubling to 5 s, reset
//! by a `Welcome`). Redirects are followed without waiting, except that a chain of
//! more than [`MAX_REDIRECT_HOPS`] (schedulers that disagree about the leader during
//! an election) waits out the backoff between hops.
//!
//! The session never touches a running process: runs outlive streams.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kairos_common::status::ExecutionStatus;
use kairos_proto::v1 as pb;
use kairos_proto::v1::executor_gateway_client::ExecutorGatewayClient;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;

use crate::executions::{CancelEffect, Executions};
use crate::outbox::{MAX_REPORTS, Outbox};
use crate::{Config, Error, Result};

/// How long a dial may take before the next address is tried.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the scheduler may take to answer `Hello`.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Heartbeat interval when the `Welcome` does not give one.
pub(crate) const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// Heartbeat intervals of silence after which the stream is presumed dead.
pub(crate) const SILENT_INTERVALS: u32 = 3;

/// Redirects followed back to back before the backoff applies between them.
pub(crate) const MAX_REDIRECT_HOPS: u32 = 3;

/// First reconnect delay (before jitter).
pub(crate) const BACKOFF_INITIAL: Duration = Duration::from_millis(100);

/// Longest reconnect delay.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Messages queued towards the scheduler on one stream. A report waits for room
/// (up to the silence limit, after which the stream counts as dead); a heartbeat
/// that finds it full is skipped, since a full queue means the next one would say
/// the same thing and the stream is already struggling.
const OUTBOUND_CAPACITY: usize = 64;

/// A scheduler address as a URI to dial and to show in logs: `host:port` gains
/// `https://` when the executor speaks TLS, else `http://`.
pub(crate) fn endpoint_uri(addr: &str, tls: bool) -> Result<String> {
    let trimmed = addr.trim();
    let invalid = |reason: &str| Error::InvalidAddress {
        addr: addr.to_string(),
        reason: reason.to_string(),
    };
    if trimmed.is_empty() {
        return Err(invalid("the address is empty"));
    }
    // Plain or TLS is the executor's setting (--tls-ca), not the address's: the
    // scheme is only accepted and dropped.
    let scheme = if tls { "https" } else { "http" };
    let uri = match trimmed.split_once("://") {
        None => format!("{scheme}://{trimmed}"),
        Some(("http", rest)) | Some(("https", rest)) => format!("{scheme}://{rest}"),
        Some(_) => return Err(invalid("only http:// and https:// addresses are supported")),
    };
    Endpoint::from_shared(uri.clone()).map_err(|e| invalid(&e.to_string()))?;
    Ok(uri)
}

/// Jittered exponential backoff: each delay is drawn from [d/2, d], where d starts
/// at [`BACKOFF_INITIAL`] and doubles up to [`BACKOFF_MAX`]. Jitter keeps a fleet of
/// executors from reconnecting to a new leader in lockstep.
#[derive(Debug)]
pub(crate) struct Backoff {
    current: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff {
            current: BACKOFF_INITIAL,
        }
    }

    /// The next delay to wait, and a longer one for the time after.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.current;
        self.current = (ceiling * 2).min(BACKOFF_MAX);
        let half = ceiling / 2;
        let half_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::rng().random_range(0..=half_ms))
    }

    /// Back to the shortest delay (after a successful handshake).
    pub(crate) fn reset(&mut self) {
        self.current = BACKOFF_INITIAL;
    }
}

/// How one connection ended, and so where to dial next.
#[derive(Debug)]
enum Ended {
    /// The executor is stopping.
    Stopped,
    /// Not the leader; dial `leader` (unknown: back off and rotate).
    Redirect { leader: Option<String> },
    /// The dial failed or the stream broke; `welcomed` says whether it got as far
    /// as a `Welcome`.
    Lost { welcomed: bool, reason: String },
}

impl Ended {
    /// A gRPC error as an ending: `Unavailable` with the leader metadata is a
    /// redirect, anything else a loss.
    fn from_status(status: &tonic::Status, welcomed: bool) -> Self {
        if status.code() == tonic::Code::Unavailable
            && let Some(leader) = status.metadata().get(kairos_proto::LEADER_METADATA_KEY)
        {
            let leader = leader.to_str().unwrap_or_default().trim();
            return Ended::Redirect {
                leader: (!leader.is_empty()).then(|| leader.to_string()),
            };
        }
        // A transport failure's cause (a refused certificate, a reset) is in the
        // status's source, not its message.
        let mut reason = format!("{:?}: {}", status.code(), status.message());
        if let Some(cause) = std::error::Error::source(status) {
            reason.push_str(": ");
            reason.push_str(&kairos_common::error::chain(cause));
        }
        Ended::Lost { welcomed, reason }
    }
}

/// The connection manager. Owns the receiving end of started reports.
pub(crate) struct Session {
    config: Config,
    /// TLS to the schedulers, when configured.
    tls: Option<std::sync::Arc<kairos_tls::ClientTls>>,
    /// Fixed for the life of this process (see `Hello.boot_id`).
    boot_id: String,
    executions: Arc<Executions>,
    outbox: Arc<Outbox>,
    started: mpsc::Receiver<pb::executor_message::Kind>,
}

impl Session {
    pub(crate) fn new(
        config: Config,
        tls: Option<std::sync::Arc<kairos_tls::ClientTls>>,
        executions: Arc<Executions>,
        outbox: Arc<Outbox>,
        started: mpsc::Receiver<pb::executor_message::Kind>,
    ) -> Self {
        Session {
            config,
            tls,
            boot_id: format!("{:016x}", rand::rng().random::<u64>()),
            executions,
            outbox,
            started,
        }
    }

    /// Connects, serves and reconnects until `stop` is cancelled.
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        let addrs: Vec<String> = self
            .config
            .schedulers
            .iter()
            .filter_map(|a| endpoint_uri(a, self.tls.is_some()).ok())
            .collect();
        if addrs.is_empty() {
            tracing::error!("no usable scheduler address");
            return;
        }
        let mut rotation = addrs.iter().cycle();
        let mut backoff = Backoff::new();
        let mut redirect: Option<String> = None;
        let mut hops = 0u32;
        while !stop.is_cancelled() {
            let addr = match redirect.take() {
                Some(addr) => addr,
                None => rotation
                    .next()
                    .expect("invariant: cycling a non-empty list never ends")
                    .clone(),
            };
            match self.connect_once(&addr, &stop).await {
                Ended::Stopped => break,
                Ended::Redirect {
                    leader: Some(leader),
                } => match endpoint_uri(&leader, self.tls.is_some()) {
                    Ok(leader) => {
                        tracing::info!(scheduler = %addr, leader = %leader, "redirected to the leader");
                        redirect = Some(leader);
                        hops += 1;
                        if hops <= MAX_REDIRECT_HOPS {
                            continue;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(scheduler = %addr, error = %e, "redirected to an unusable address");
                    }
                },
                Ended::Redirect { leader: None } => {
                    tracing::info!(scheduler = %addr, "the scheduler knows no leader yet");
                }
                Ended::Lost {
                    welcomed: true,
                    reason,
                } => {
                    tracing::info!(scheduler = %addr, reason = %reason, "disconnected from the scheduler");
                    backoff.reset();
                    hops = 0;
                }
                Ended::Lost {
                    welcomed: false,
                    reason,
                } => {
                    tracing::info!(scheduler = %addr, reason = %reason, "cannot connect to the scheduler");
                    hops = 0;
                }
            }
            let delay = backoff.next_delay();
            tracing::debug!(delay_ms = delay.as_millis(), "waiting before the next dial");
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        tracing::debug!("session stopped");
    }

    /// Dials `addr`, says hello, and serves the stream if welcomed.
    async fn connect_once(&mut self, addr: &str, stop: &CancellationToken) -> Ended {
        let lost = |reason: String| Ended::Lost {
            welcomed: false,
            reason,
        };
        tracing::debug!(scheduler = %addr, "dialing");
        let configure = |e: Endpoint| e.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true);
        let dialed = async {
            match &self.tls {
                Some(tls) => tls.connect(addr, configure).await,
                None => match Endpoint::from_shared(addr.to_string()) {
                    Ok(endpoint) => configure(endpoint).connect().await,
                    Err(e) => Err(e),
                },
            }
        };
        let channel = tokio::select! {
            () = stop.cancelled() => return Ended::Stopped,
            dialed = dialed => match dialed {
                Ok(channel) => channel,
                Err(e) => return lost(kairos_common::error::chain(&e)),
            },
        };

        // Started reports from before this stream are stale; the running list in
        // Hello supersedes them.
        while self.started.try_recv().is_ok() {}
        let (outbound, outbound_rx) = mpsc::channel(OUTBOUND_CAPACITY);
        let hello = pb::executor_message::Kind::Hello(pb::Hello {
            executor_id: self.config.id.clone(),
            tags: self
                .config
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            capacity: self.config.capacity,
            protocol_version: kairos_proto::EXECUTOR_PROTOCOL_VERSION,
            // Runs first, then reports: a run files its report before it leaves the
            // registry, so one ending in between is in the second list.
            running: self.executions.running_ids(),
            unreported: self.outbox.ids(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            boot_id: self.boot_id.clone(),
            draining: self.executions.draining().is_cancelled(),
        });
        if outbound.try_send(message(hello)).is_err() {
            return lost("cannot queue the hello".into());
        }

        let mut client = ExecutorGatewayClient::new(channel);
        let mut request = tonic::Request::new(ReceiverStream::new(outbound_rx));
        if let Some(token) = &self.config.token
            && let Ok(v) = format!("Bearer {token}").parse()
        {
            request.metadata_mut().insert("authorization", v);
        }
        let call = tokio::time::timeout(HANDSHAKE_TIMEOUT, client.connect(request));
        let mut inbound = tokio::select! {
            () = stop.cancelled() => return Ended::Stopped,
            answered = call => match answered {
                Err(_) => return lost(format!("no answer within {HANDSHAKE_TIMEOUT:?}")),
                Ok(Err(status)) => return Ended::from_status(&status, false),
                Ok(Ok(response)) => response.into_inner(),
            },
        };
        let first = tokio::select! {
            () = stop.cancelled() => return Ended::Stopped,
            first = tokio::time::timeout(HANDSHAKE_TIMEOUT, inbound.message()) => first,
        };
        let welcome = match first {
            Err(_) => return lost(format!("no answer to hello within {HANDSHAKE_TIMEOUT:?}")),
            Ok(Err(status)) => return Ended::from_status(&status, false),
            Ok(Ok(None)) => return lost("the scheduler ended the stream after hello".into()),
            Ok(Ok(Some(msg))) => match msg.kind {
                Some(pb::scheduler_message::Kind::Welcome(welcome)) => welcome,
                Some(pb::scheduler_message::Kind::Redirect(redirect)) => {
                    let leader = redirect.leader_addr.trim();
                    return Ended::Redirect {
                        leader: (!leader.is_empty()).then(|| leader.to_string()),
                    };
                }
                other => {
                    return lost(format!(
                        "expected welcome or redirect, got {}",
                        scheduler_kind_name(other.as_ref())
                    ));
                }
            },
        };
        self.serve(addr, welcome, outbound, inbound, stop).await
    }

    /// The welcomed part of a connection: everything until the stream ends.
    async fn serve(
        &mut self,
        addr: &str,
        welcome: pb::Welcome,
        outbound: mpsc::Sender<pb::ExecutorMessage>,
        mut inbound: tonic::Streaming<pb::SchedulerMessage>,
        stop: &CancellationToken,
    ) -> Ended {
        let highest = self.executions.observe_term(welcome.term);
        if welcome.term < highest {
            tracing::warn!(
                scheduler = %addr,
                term = welcome.term,
                highest,
                "the scheduler's term is older than one already seen; its assignments will be refused"
            );
        }
        let interval = match welcome.heartbeat_interval_ms {
            0 => DEFAULT_HEARTBEAT_INTERVAL,
            ms => Duration::from_millis(u64::from(ms)),
        };
        let silence_limit = interval * SILENT_INTERVALS;
        tracing::info!(
            scheduler = %addr,
            scheduler_id = welcome.scheduler_id,
            term = welcome.term,
            heartbeat_interval_ms = interval.as_millis(),
            "connected to the leader"
        );

        let heartbeat_stop = stop.child_token();
        let _stop_heartbeats = heartbeat_stop.clone().drop_guard();
        tokio::spawn(send_heartbeats(
            outbound.clone(),
            Arc::clone(&self.executions),
            interval,
            heartbeat_stop,
        ));

        let mut conn = Connection {
            outbound,
            sent: HashSet::new(),
            send_limit: silence_limit,
        };
        let mut outbox_changes = self.outbox.subscribe();
        outbox_changes.borrow_and_update();
        if let Err(ended) = conn.send_finished(&self.outbox).await {
            return ended;
        }

        let mut last_heard = Instant::now();
        // A drain that began before this stream's Hello was announced in it.
        let draining = self.executions.draining().clone();
        let mut drain_told = draining.is_cancelled();
        loop {
            // Biased: a run's started report is queued before its finished report
            // is filed, so polling the started reports first keeps them in order.
            tokio::select! {
                biased;
                () = stop.cancelled() => return Ended::Stopped,
                () = draining.cancelled(), if !drain_told => {
                    drain_told = true;
                    tracing::info!(scheduler = %addr, "telling the leader this executor drains");
                    if let Err(ended) = conn.send(message(pb::executor_message::Kind::Drain(pb::Drain {}))).await {
                        return ended;
                    }
                }
                                Some(progress) = self.started.recv() => {
                    if let Err(ended) = conn.send(message(progress)).await {
                        return ended;
                    }
                }
                changed = outbox_changes.changed() => {
                    if changed.is_err() {
                        return Ended::Stopped;
                    }
                    if let Err(ended) = conn.send_finished(&self.outbox).await {
                        return ended;
                    }
                }
                received = inbound.message() => match received {
                    Ok(Some(msg)) => {
                        last_heard = Instant::now();
                        if let Some(ended) = self.handle(msg, &mut conn) {
                            return ended;
                        }
                    }
                    Ok(None) => {
                        return Ended::Lost {
                            welcomed: true,
                            reason: "the scheduler ended the stream".into(),
                        };
                    }
                    Err(status) => return Ended::from_status(&status, true),
                },
                () = tokio::time::sleep_until(last_heard + silence_limit) => {
                    return Ended::Lost {
                        welcomed: true,
                        reason: format!("nothing heard from the scheduler for {silence_limit:?}"),
                    };
                }
            }
        }
    }

    /// Acts on one message from the leader; `Some` ends the connection.
    fn handle(&self, msg: pb::SchedulerMessage, conn: &mut Connection) -> Option<Ended> {
        use pb::scheduler_message::Kind;
        match msg.kind {
            Some(Kind::Assignment(assignment)) => {
                tracing::debug!(execution_id = %assignment.execution_id, "assignment received");
                self.executions.assign(assignment);
            }
            Some(Kind::Cancel(cancel)) => {
                let if_not_started = (!cancel.if_not_started_status.is_empty()).then(|| {
                    cancel
                        .if_not_started_status
                        .parse::<ExecutionStatus>()
                        .ok()
                        .filter(|s| s.is_final())
                        .unwrap_or(ExecutionStatus::Cancelled)
                });
                match self
                    .executions
                    .cancel(&cancel.execution_id, &cancel.reason, if_not_started)
                {
                    CancelEffect::Cancelled => tracing::info!(
                        execution_id = %cancel.execution_id,
                        reason = %cancel.reason,
                        "cancelling execution"
                    ),
                    CancelEffect::AlreadyStarted => tracing::info!(
                        execution_id = %cancel.execution_id,
                        reason = %cancel.reason,
                        "the run had started before the stop arrived; it goes on"
                    ),
                    CancelEffect::Unknown => tracing::debug!(
                        execution_id = %cancel.execution_id,
                        "cancel for an execution not running here"
                    ),
                }
            }
            Some(Kind::FinishedAck(ack)) => {
                self.outbox.ack(&ack.execution_id);
                conn.sent.remove(&ack.execution_id);
            }
            Some(Kind::Heartbeat(_)) => {}
            Some(Kind::Welcome(welcome)) => {
                self.executions.observe_term(welcome.term);
            }
            Some(Kind::Redirect(redirect)) => {
                let leader = redirect.leader_addr.trim();
                return Some(Ended::Redirect {
                    leader: (!leader.is_empty()).then(|| leader.to_string()),
                });
            }
            None => tracing::debug!("ignoring an empty scheduler message"),
        }
        None
    }
}

/// The sending half of one welcomed stream.
struct Connection {
    outbound: mpsc::Sender<pb::ExecutorMessage>,
    /// Finished reports already sent on this stream (until acked).
    sent: HashSet<String>,
    /// How long a message may wait for room before the stream counts as dead.
    send_limit: Duration,
}

impl Connection {
    async fn send(&mut self, msg: pb::ExecutorMessage) -> Result<(), Ended> {
        match tokio::time::timeout(self.send_limit, self.outbound.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ended::Lost {
                welcomed: true,
                reason: "the stream closed".into(),
            }),
            Err(_) => Err(Ended::Lost {
                welcomed: true,
                reason: "the scheduler stopped reading".into(),
            }),
        }
    }

    /// Sends every outbox report not yet sent on this stream.
    async fn send_finished(&mut self, outbox: &Outbox) -> Result<(), Ended> {
        if self.sent.len() > 2 * MAX_REPORTS {
            // Reports the outbox dropped without an ack: forget them here too.
            self.sent.retain(|id| outbox.contains(id));
        }
        for report in outbox.pending_except(|id| self.sent.contains(id)) {
            self.sent.insert(report.execution_id.clone());
            self.send(message(pb::executor_message::Kind::Finished(report)))
                .await?;
        }
        Ok(())
    }
}

/// Heartbeats every `interval` until `stop`, carrying the running ids.
async fn send_heartbeats(
    outbound: mpsc::Sender<pb::ExecutorMessage>,
    executions: Arc<Executions>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let heartbeat = pb::executor_message::Kind::Heartbeat(pb::Heartbeat {
            running: executions.running_ids(),
        });
        match outbound.try_send(message(heartbeat)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!("outbound stream full, skipping a heartbeat");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

fn message(kind: pb::executor_message::Kind) -> pb::ExecutorMessage {
    pb::ExecutorMessage { kind: Some(kind) }
}

fn scheduler_kind_name(kind: Option<&pb::scheduler_message::Kind>) -> &'static str {
    use pb::scheduler_message::Kind;
    match kind {
        None => "an empty message",
        Some(Kind::Welcome(_)) => "welcome",
        Some(Kind::Redirect(_)) => "redirect",
        Some(Kind::Assignment(_)) => "assignment",
        Some(Kind::Cancel(_)) => "cancel",
        Some(Kind::FinishedAck(_)) => "finished_ack",
        Some(Kind::Heartbeat(_)) => "heartbeat",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Agent;
    use crate::test::{FakeServer, ack, eventually, shell_assignment, welcome};
    use pb::executor_message::Kind as Sent;
    use pb::scheduler_message::Kind as Answer;

    /// Heartbeat interval for tests that do not exercise liveness: long enough that
    /// a silent fake is never dropped mid-test.
    const QUIET_MS: u32 = 60_000;

    /// An executor running in the background, with its insides visible.
    struct Running {
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<Result<()>>,
        executions: Arc<Executions>,
        outbox: Arc<Outbox>,
    }

    impl Running {
        fn start(config: Config) -> Self {
            let shutdown = CancellationToken::new();
            let agent = Agent::new(config, shutdown.clone()).unwrap();
            let executions = agent.executions();
            let outbox = agent.outbox();
            let task = tokio::spawn(agent.run());
            Running {
                shutdown,
                task,
                executions,
                outbox,
            }
        }

        async fn stop(self) {
            self.shutdown.cancel();
            tokio::time::timeout(Duration::from_secs(30), self.task)
                .await
                .expect("the executor stops in time")
                .unwrap()
                .unwrap();
        }
    }

    fn config(schedulers: &[&str]) -> Config {
        let mut config = Config::new(
            schedulers.iter().map(|s| s.to_string()).collect(),
            "exec-a".into(),
        );
        config.kill_grace = Duration::from_millis(200);
        config.insecure = true;
        config
    }

    #[test]
    fn addresses_gain_a_scheme() {
        assert_eq!(
            endpoint_uri("127.0.0.1:7070", false).unwrap(),
            "http://127.0.0.1:7070"
        );
        assert_eq!(
            endpoint_uri(" http://sched:7070 ", false).unwrap(),
            "http://sched:7070"
        );
        // TLS is the executor's setting; the address's scheme only follows it.
        assert_eq!(
            endpoint_uri("https://sched:7070", false).unwrap(),
            "http://sched:7070"
        );
        assert_eq!(
            endpoint_uri("http://sched:7070", true).unwrap(),
            "https://sched:7070"
        );
        assert_eq!(
            endpoint_uri("sched:7070", true).unwrap(),
            "https://sched:7070"
        );
        assert!(matches!(
            endpoint_uri("ftp://sched:7070", false),
            Err(Error::InvalidAddress { .. })
        ));
        assert!(matches!(
            endpoint_uri("", true),
            Err(Error::InvalidAddress { .. })
        ));
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut backoff = Backoff::new();
        let first = backoff.next_delay();
        assert!(
            first >= BACKOFF_INITIAL / 2 && first <= BACKOFF_INITIAL,
            "{first:?}"
        );
        let second = backoff.next_delay();
        assert!(
            second >= BACKOFF_INITIAL && second <= BACKOFF_INITIAL * 2,
            "{second:?}"
        );
        for _ in 0..20 {
            let d = backoff.next_delay();
            assert!(d <= BACKOFF_MAX, "{d:?}");
        }
        let capped = backoff.next_delay();
        assert!(capped >= BACKOFF_MAX / 2, "{capped:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= BACKOFF_INITIAL);
    }

    #[tokio::test]
    async fn invalid_configs_are_refused() {
        let shutdown = CancellationToken::new();
        let no_schedulers = Config::new(vec![], "a".into());
        assert!(matches!(
            crate::run(no_schedulers, shutdown.clone()).await,
            Err(Error::InvalidConfig(_))
        ));
        let no_id = Config::new(vec!["127.0.0.1:1".into()], " ".into());
        assert!(matches!(
            crate::run(no_id, shutdown).await,
            Err(Error::InvalidConfig(_))
        ));
    }

    #[tokio::test]
    async fn hello_introduces_the_executor() {
        let mut server = FakeServer::start().await;
        let mut config = config(&[&server.addr]);
        config.tags.insert("role".into(), "web".into());
        config.tags.insert("region".into(), "eu".into());
        config.capacity = 3;
        let executor = Running::start(config);

        let hello = server.accept().await.hello().await;
        assert_eq!(hello.executor_id, "exec-a");
        assert_eq!(hello.tags.get("role").map(String::as_str), Some("web"));
        assert_eq!(hello.tags.get("region").map(String::as_str), Some("eu"));
        assert_eq!(hello.tags.len(), 2);
        assert_eq!(hello.capacity, 3);
        assert_eq!(
            hello.protocol_version,
            kairos_proto::EXECUTOR_PROTOCOL_VERSION
        );
        assert_eq!(hello.version, env!("CARGO_PKG_VERSION"));
        assert!(hello.running.is_empty());
        executor.stop().await;
    }

    #[tokio::test]
    async fn an_assignment_is_reported_started_then_finished() {
        let mut server = FakeServer::start().await;
        let executor = Running::start(config(&[&server.addr]));
        let mut conn = server.accept().await;
        conn.hello().await;
        conn.send(welcome(1, QUIET_MS)).await;
        conn.send(shell_assignment(
            "e1",
            1,
            "echo hello; echo oops >&2; exit 4",
        ))
        .await;

        let started = conn.started().await;
        assert_eq!(started.execution_id, "e1");
        assert!(started.started_at.is_some());
        let finished = conn.finished().await;
        assert_eq!(finished.execution_id, "e1");
        assert_eq!(finished.status, "failed");
        assert_eq!(finished.exit_code, Some(4));
        assert_eq!(finished.error, "exit code 4");
        assert_eq!(finished.output, "hello\noops\n");
        assert!(!finished.output_truncated);
        assert_eq!(finished.started_at, started.started_at);
        assert!(finished.finished_at.is_some());
        executor.stop().await;
    }

    #[tokio::test]
    async fn an_ack_clears_the_outbox_for_good() {
        let mut server = FakeServer::start().await;
        let executor = Running::start(config(&[&server.addr]));
        let mut conn = server.accept().await;
        conn.hello().await;
        conn.send(welcome(1, QUIET_MS)).await;
        conn.send(shell_assignment("e1", 1, "echo one")).await;
        conn.started().await;
        assert_eq!(conn.finished().await.execution_id, "e1");
        assert!(executor.outbox.contains("e1"), "kept until acked");

        conn.send(ack("e1")).await;
        let outbox = Arc::clone(&executor.outbox);
        eventually("the ack clears the outbox", || outbox.len() == 0).await;

        // After a reconnect nothing is re-sent: the next report is about new work.
        conn.close();
        let mut conn = server.accept().await;
        conn.hello().await;
        conn.send(welcome(1, QUIET_MS)).await;
        conn.send(shell_assignment("e2", 1, "echo two")).await;
        assert_eq!(conn.started().await.execution_id, "e2");
        executor.stop().await;
    }

    #[tokio::test]
    async fn an_unacked_report_is_resent_after_a_reconnect() {
        let mut server = FakeServer::start().await;
        let executor = Running::start(config(&[&server.addr]));
        let mut conn = server.accept().await;
        let first_hello = conn.hello().await;
        assert_eq!(first_hello.boot_id.len(), 16, "{first_hello:?}");
        assert!(first_hello.unreported.is_empty());
        conn.send(welcome(1, QUIET_MS)).await;
        conn.send(shell_assignment("e1", 1, "echo result")).await;
        conn.started().await;
        let first = conn.finished().await;
        conn.close();

        let mut conn = server.accept().await;
        let hello = conn.hello().await;
        assert!(hello.running.is_empty(), "e1 finished: {:?}", hello.running);
        assert_eq!(
            hello.unreported,
            ["e1"],
            "its report is not acknowledged yet"
        );
        assert_eq!(
            hello.boot_id, first_hello.boot_id,
            "the same process keeps its boot id"
        );
        conn.send(welcome(2, QUIET_MS)).await;
        let again = conn.finished().await;
        assert_eq!(again, first);
        assert_eq!(again.output, "result\n");

        conn.send(ack("e1")).await;
        let outbox = Arc::clone(&executor.outbox);
        eventually("the ack clears the outbox", || outbox.len() == 0).await;
        executor.stop().await;
    }

    #[tokio::test]
    async fn an_assignment_from_an_older_term_is_refused() {
        let mut server = FakeServer::start().await;
        let executor = Running::start(config(&[&server.addr]));
        let mut conn = server.accept().await;
        conn.hello().await;
        conn.send(welcome(5, QUIET_MS)).await;
        conn.send(shell_assignment("stale", 4, "echo stale")).await;
        conn.send(shell_assignment("fresh", 5, "echo fresh")).await;

        // Assignments are handled in order, so by the time "fresh" is reported
        // "stale" was decided; had it been accepted it would be registered.
        assert_eq!(conn.started().await.execution_id, "fresh");
        assert!(!executor.executions.is_running("stale"));
        assert_eq!(conn.finished().await.execution_id, "fresh");
        assert!(!executor.outbox.contains("stale"));
        assert!(!executor.executions.is_running("stale"));
        executor.stop().await;
    }

    #[tokio::test]
    async fn a_redirect_leads_to_the_leader() {
        let mut follower = FakeServer::start().await;
        let mut leader = FakeServer::start().await;
        let executor = Running::start(config(&[&follower.addr]));

        let mut conn = follower.accept().await;
        conn.hello().await;
        conn.send(Answer::Redirect(pb::Redirect {
            leader_addr: leader.addr.clone(),
        }))
        .await;
        conn.close();

        let mut conn = leader.accept().await;
        assert_eq!(conn.hello().await.executor_id, "exec-a");
        conn.send(welcome(1, QUIET_MS)).await;
        conn.send(shell_assignment("e1", 1, "true")).await;
        assert_eq!(conn.started().await.execution_id, "e1");
        executor.stop().await;
    }

    #[tokio::test]
    async fn unavailable_with_the_leader_address_is_a_redirect() {
        let mut leader = FakeServer::start().await;
        let follower = FakeServer::start_not_leader(&leader.addr).await;
        let executor = Running::start(config(&[&follower.addr]));

        let mut conn = leader.accept().await;
        assert_eq!(conn.hello().await.executor_id, "exec-a");
        executor.stop().await;
    }

    #[tokio::test]
    async fn an_unreachable_scheduler_is_skipped() {
        // A port that was just free: nothing listens there.
        let dead = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().to_string()
        };
        let mut alive = FakeServer::start().await;
        let executor = Running::start(config(&[&dead, &alive.addr]));
        let mut conn = alive.accept().await;
        assert_eq!(conn.hello().await.executor_id, "exec-a");
        executor.stop().await;
    }

    #[tokio::test]
    async fn a_silent_scheduler_is_dropped_and_runs_survive_the_reconnect() {
        let mut server = FakeServer::start().await;
        let executor = Running::start(config(&[&server.addr]));
        let mut conn = server.accept().await;
        conn.hello().await;
        conn.send(welcome(1, 50)).await;
        conn.send(shell_assignment("long", 1, "sleep 100")).await;
        assert_eq!(conn.started().await.execution_id, "long");

        // Heartbeats carry the running ids. Meanwhile the fake answers each
        // message, so the executor keeps this stream.
        let deadline = tokio::time::Instant::now() + crate::test::WAIT;
        loop {
            let received = conn.recv_any().await;
            if let Sent::Heartbeat(hb) = &received
                && hb.running == ["long"]
            {
                break;
            }
            conn.send(Answer::Heartbeat(pb::Heartbeat::default())).await;
            assert!(
                tokio::time::Instant::now() < deadline,
                "no heartbeat with the run"
            );
        }

        // The fake now says nothing at all (the stream stays open): the executor
        // gives up on it and reconnects, still owning the run.
        let mut second = server.accept().await;
        let hello = second.hello().await;
        assert_eq!(hello.running, ["long"]);
        assert!(executor.executions.is_running("long"));
        drop(conn);

        second.send(welcome(1, QUIET_MS)).await;
        second
            .send(Answer::Cancel(pb::CancelAssignment {
                execution_id: "long".into(),
                reason: "test over".into(),
                ..Default::default()
            }))
            .await;
        let finished = second.finished().await;
        assert_eq!(finished.status, "cancelled");
        assert_eq!(finished.error, "cancelled: test over");
        executor.stop().await;
    }

    #[tokio::test]
    async fn shutdown_drains_then_kills_what_outlives_the_grace() {
        let mut server = FakeServer::start().await;
        let mut cfg = config(&[&server.addr]);
        cfg.shutdown_grace = Duration::from_millis(800);
        let executor = Running::start(cfg);
        let mut conn = server.accept().await;
        assert!(!conn.hello().await.draining);
        conn.send(welcome(1, QUIET_MS)).await;
        conn.send(shell_assignment("short", 1, "sleep 0.3")).await;
        conn.send(shell_assignment("long", 1, "sleep 100")).await;
        conn.started().await;
        conn.started().await;

        executor.shutdown.cancel();
        // First the leader hears of the drain, then the short run ends on its own
        // and the long one is killed when the grace is over.
        assert!(matches!(conn.recv().await, Sent::Drain(_)));
        let short = conn.finished().await;
        assert_eq!(
            (short.execution_id.as_str(), short.status.as_str()),
            ("short", "succeeded")
        );
        conn.send(ack("short")).await;
        let long = conn.finished().await;
        assert_eq!(long.execution_id, "long");
        assert_eq!(long.status, "failed");
        assert_eq!(
            long.error,
            "killed: the executor shut down before the run ended"
        );
        conn.send(ack("long")).await;
        tokio::time::timeout(Duration::from_secs(30), executor.task)
            .await
            .expect("the executor stops in time")
            .unwrap()
            .unwrap();
        assert_eq!(executor.outbox.len(), 0);
    }

    #[tokio::test]
    async fn a_drain_survives_a_reconnect() {
        let mut server = FakeServer::start().await;
        let mut cfg = config(&[&server.addr]);
        cfg.shutdown_grace = Duration::from_secs(30);
        let executor = Running::start(cfg);
        let mut conn = server.accept().await;
        conn.hello().await;
        conn.send(welcome(1, QUIET_MS)).await;
        conn.send(shell_assignment("long", 1, "sleep 100")).await;
        conn.started().await;
        executor.shutdown.cancel();
        assert!(matches!(conn.recv().await, Sent::Drain(_)));
        // The leader changes: the next one learns of the drain from the Hello.
        drop(conn);
        let mut second = server.accept().await;
        let hello = second.hello().await;
        assert!(hello.draining);
        assert_eq!(hello.running, ["long"]);
        second.send(welcome(2, QUIET_MS)).await;
        second
            .send(Answer::Cancel(pb::CancelAssignment {
                execution_id: "long".into(),
                reason: "test over".into(),
                ..Default::default()
            }))
            .await;
        let finished = second.finished().await;
        assert_eq!(finished.status, "cancelled");
        second.send(ack("long")).await;
        tokio::time::timeout(Duration::from_secs(30), executor.task)
            .await
            .expect("the executor stops in time")
            .unwrap()
            .unwrap();
    }
}
