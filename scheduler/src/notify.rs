//! Webhooks: telling other systems about executions.
//!
//! The leader, and only the leader, delivers: when a start or a final status of an
//! execution is committed, each matching webhook (the job's `notify` and the global
//! `--notify` ones) gets a JSON POST. Delivery never delays scheduling: notifications
//! go into a bounded queue (a full queue drops the notification and counts it), and
//! each delivery runs on its own task, with a timeout per attempt and a few retries
//! with backoff. Failures are logged and counted (`kairos_webhooks_total`), never
//! retried beyond that: a webhook is best effort, at most `ATTEMPTS` tries, and a
//! leader change can lose the ones in flight.
//!
//! The payload: `{"event": "start|success|failure", "job": NAME, "status": STATUS,
//! "execution": <the Execution in proto3 JSON>, "outputTail": <last 4 KiB of output>}`.

use std::sync::Arc;
use std::time::Duration;

use kairos_common::job::NotifyEvent;
use kairos_proto::v1 as pb;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::metrics::Metrics;

/// Notifications waiting for delivery; beyond it new ones are dropped (and counted).
const QUEUE: usize = 4096;
/// Deliveries in flight at once.
const CONCURRENT: usize = 32;
/// Tries per notification.
const ATTEMPTS: u32 = 3;
/// Time limit of one try.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Output sent with a notification.
const OUTPUT_TAIL_BYTES: usize = 4096;

struct Delivery {
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    event: NotifyEvent,
}

/// Hands notifications to the delivery worker.
pub struct Notifier {
    tx: mpsc::Sender<Delivery>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

impl Notifier {
    /// Starts the delivery worker (it stops with `shutdown`).
    pub fn start(metrics: Arc<Metrics>, shutdown: CancellationToken) -> Notifier {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver_all(rx, metrics.clone(), shutdown));
        Notifier { tx, metrics }
    }

    /// Queues the notifications `exec` deserves: the job's webhooks and the global ones
    /// that want `event`.
    pub fn notify(
        &self,
        job: &kairos_common::job::Job,
        global: &[String],
        event: NotifyEvent,
        exec: &pb::Execution,
    ) {
        let mut targets: Vec<(String, Vec<(String, String)>)> = job
            .notify
            .iter()
            .filter(|n| n.events.contains(&event))
            .map(|n| {
                (
                    n.url.clone(),
                    n.headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )
            })
            .collect();
        if event != NotifyEvent::Start {
            targets.extend(global.iter().map(|url| (url.clone(), Vec::new())));
        }
        if targets.is_empty() {
            return;
        }
        let body = payload(event, exec);
        for (url, headers) in targets {
            let delivery = Delivery {
                url,
                headers,
                body: body.clone(),
                event,
            };
            if self.tx.try_send(delivery).is_err() {
                self.metrics.webhook("dropped");
                warn!(job = %exec.job, execution = %exec.id, "webhook queue full: notification dropped");
            }
        }
    }
}

fn payload(event: NotifyEvent, exec: &pb::Execution) -> Vec<u8> {
    let mut cut = exec.output.len().saturating_sub(OUTPUT_TAIL_BYTES);
    while !exec.output.is_char_boundary(cut) {
        cut += 1;
    }
    let value = serde_json::json!({
        "event": event.as_str(),
        "job": exec.job,
        "status": exec.status,
        "execution": exec,
        "outputTail": &exec.output[cut..],
    });
    serde_json::to_vec(&value).expect("invariant: JSON values serialise")
}

async fn deliver_all(
    mut rx: mpsc::Receiver<Delivery>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "webhooks disabled: no HTTP client");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(CONCURRENT));
    loop {
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => return,
            d = rx.recv() => match d { Some(d) => d, None => return },
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let client = client.clone();
        let metrics = metrics.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            deliver(&client, delivery, &metrics, &shutdown).await;
        });
    }
}

async fn deliver(
    client: &reqwest::Client,
    d: Delivery,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) {
    let mut backoff = Duration::from_secs(1);
    for attempt in 1..=ATTEMPTS {
        let mut req = client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("kairos-event", d.event.as_str())
            .body(d.body.clone());
        for (k, v) in &d.headers {
            req = req.header(k, v);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                metrics.webhook("delivered");
                debug!(url = %d.url, attempt, "webhook delivered");
                return;
            }
            Ok(resp) => {
                debug!(url = %d.url, attempt, status = %resp.status(), "webhook refused");
            }
            Err(e) => debug!(url = %d.url, attempt, error = %e, "webhook failed"),
        }
        if attempt < ATTEMPTS {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff *= 2;
        }
    }
    metrics.webhook("failed");
    warn!(url = %d.url, "webhook not delivered after {ATTEMPTS} tries");
}
