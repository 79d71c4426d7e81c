//! `kairos.v1.ExecutionService` as typed calls, the two streams, and waiting for a
//! run.
//!
//! - [`Client::list_executions`] pages (newest first) until it has `limit`
//!   executions or the history ends; the merged answer keeps the last page's
//!   `next_page_token` (empty when the history was read to the end).
//! - [`Client::watch_executions`] and [`Client::tail_output`] open server streams;
//!   the opening is retried like a read, a stream that breaks later is not
//!   reopened (what it missed is the caller's to fetch). [`Output`] reads the
//!   output stored with the execution when the scheduler has no `TailOutput`.
//! - [`Client::wait`] polls `GetExecution` every [`POLL_INTERVAL`] until the status
//!   is final, and when a failed, timed-out or lost attempt has retries left under
//!   the job's policy it follows the next attempt of the same scheduled instant,
//!   so "did my run succeed?" gets the final answer.

use std::str::FromStr as _;
use std::time::Duration;

use kairos_common::status::ExecutionStatus;
use kairos_proto::v1 as pb;
use pb::execution_service_client::ExecutionServiceClient;
use tokio::time::{Instant, MissedTickBehavior};

use crate::client::{Client, rpc};
use crate::error::{Error, Result};
use crate::retry::Safety;

/// Time between two polls while waiting for a run.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The most executions asked for in one page (the server's cap).
const MAX_PAGE_SIZE: u32 = 1000;

/// Executions looked at when searching for the next attempt of a run.
const RETRY_SEARCH_PAGE_SIZE: u32 = 100;

/// The most pages [`Client::list_executions`] reads.
const MAX_PAGES: u32 = 100_000;

/// What [`Client::wait`] reports while it waits.
#[derive(Debug)]
pub enum WaitEvent<'a> {
    /// `execution` ended in a way the job's retry policy acts on; the wait goes on
    /// with attempt `execution.attempt + 1` of `max_attempts`.
    Retrying {
        execution: &'a pb::Execution,
        max_attempts: u32,
    },
}

/// An execution's output as it arrives: the live stream, or the stored output of
/// a scheduler without `TailOutput`.
#[derive(Debug)]
pub struct Output {
    source: OutputSource,
}

#[derive(Debug)]
enum OutputSource {
    Live(tonic::Streaming<pb::OutputChunk>),
    /// The stored output, still to be fetched (after the execution ends, when
    /// following).
    Stored {
        client: Client,
        id: String,
        follow: bool,
    },
    Done,
}

impl Output {
    /// The next chunk; `None` at the end of the output.
    pub async fn next(&mut self) -> Result<Option<pb::OutputChunk>> {
        match std::mem::replace(&mut self.source, OutputSource::Done) {
            OutputSource::Live(mut stream) => {
                let chunk = stream.message().await.map_err(Error::Status)?;
                if chunk.is_some() {
                    self.source = OutputSource::Live(stream);
                }
                Ok(chunk)
            }
            OutputSource::Stored { client, id, follow } => {
                let mut execution = client.get_execution(&id).await?;
                if follow {
                    let mut ticker = tokio::time::interval(POLL_INTERVAL);
                    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
                    // Bounded by the execution's own end (its timeout, or the
                    // scheduler marking it lost).
                    while !is_final(&execution.status) {
                        ticker.tick().await;
                        execution = client.get_execution(&id).await?;
                    }
                }
                Ok((!execution.output.is_empty()).then_some(pb::OutputChunk {
                    data: execution.output,
                }))
            }
            OutputSource::Done => Ok(None),
        }
    }
}

impl Client {
    /// `GetExecution`.
    pub async fn get_execution(&self, id: &str) -> Result<pb::Execution> {
        let request = pb::GetExecutionRequest { id: id.into() };
        rpc!(
            self,
            ExecutionServiceClient<_>,
            get_execution,
            "GetExecution",
            Safety::Idempotent,
            request
        )
    }

    /// One `ListExecutions` page.
    pub async fn list_executions_page(
        &self,
        request: pb::ListExecutionsRequest,
    ) -> Result<pb::ListExecutionsResponse> {
        rpc!(
            self,
            ExecutionServiceClient<_>,
            list_executions,
            "ListExecutions",
            Safety::Idempotent,
            request
        )
    }

    /// Up to `limit` executions of `job` (every job when empty; `limit` 0 = all),
    /// newest first, as one answer.
    pub async fn list_executions(
        &self,
        job: &str,
        limit: u32,
    ) -> Result<pb::ListExecutionsResponse> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut all = pb::ListExecutionsResponse::default();
        let mut token = String::new();
        for _ in 0..MAX_PAGES {
            let remaining = if limit == 0 {
                usize::MAX
            } else {
                limit.saturating_sub(all.executions.len())
            };
            let page_size = u32::try_from(remaining)
                .unwrap_or(u32::MAX)
                .min(MAX_PAGE_SIZE);
            let page = self
                .list_executions_page(pb::ListExecutionsRequest {
                    job: job.to_string(),
                    page_size,
                    page_token: token.clone(),
                })
                .await?;
            all.executions.extend(page.executions);
            all.next_page_token = page.next_page_token.clone();
            let enough = limit != 0 && all.executions.len() >= limit;
            if page.next_page_token.is_empty() || enough {
                if limit != 0 {
                    all.executions.truncate(limit);
                }
                return Ok(all);
            }
            if page.next_page_token == token {
                return Err(Error::Protocol(format!(
                    "the scheduler returned the same page token twice ({token:?})"
                )));
            }
            token = page.next_page_token;
        }
        Err(Error::Protocol(format!(
            "the execution listing did not end after {MAX_PAGES} pages"
        )))
    }

    /// `CancelExecution` (asynchronous: the answer may still say `running`).
    /// Cancelling twice asks for the same thing, so it may be resent.
    pub async fn cancel_execution(&self, id: &str) -> Result<pb::Execution> {
        let request = pb::CancelExecutionRequest { id: id.into() };
        rpc!(
            self,
            ExecutionServiceClient<_>,
            cancel_execution,
            "CancelExecution",
            Safety::Idempotent,
            request
        )
    }

    /// `ClearExecutions`: forgets a job's finished executions (clearing twice
    /// clears nothing more).
    pub async fn clear_executions(&self, request: pb::ClearExecutionsRequest) -> Result<pb::Job> {
        rpc!(
            self,
            ExecutionServiceClient<_>,
            clear_executions,
            "ClearExecutions",
            Safety::Idempotent,
            request
        )
    }

    /// `WatchExecutions`: every change to an execution of `job` (all jobs when
    /// empty), as it happens, until the stream is dropped or the server ends it.
    pub async fn watch_executions(&self, job: &str) -> Result<tonic::Streaming<pb::Execution>> {
        let max = self.max_response_bytes();
        let request = pb::WatchExecutionsRequest { job: job.into() };
        self.open_stream("WatchExecutions", None, request, move |conn, req| {
            let mut stub = ExecutionServiceClient::new(conn).max_decoding_message_size(max);
            async move { stub.watch_executions(req).await }
        })
        .await
    }

    /// `TailOutput`: the execution's output so far, and with `follow` what it
    /// prints until it ends. Without `follow` the whole stream has the request
    /// deadline. A scheduler without `TailOutput` gets the stored output instead
    /// (with `follow`, once the execution has ended).
    pub async fn tail_output(&self, id: &str, follow: bool) -> Result<Output> {
        let max = self.max_response_bytes();
        let timeout = (!follow).then(|| self.request_timeout());
        let request = pb::TailOutputRequest {
            id: id.into(),
            follow,
        };
        let opened = self
            .open_stream("TailOutput", timeout, request, move |conn, req| {
                let mut stub = ExecutionServiceClient::new(conn).max_decoding_message_size(max);
                async move { stub.tail_output(req).await }
            })
            .await;
        let source = match opened {
            Ok(stream) => OutputSource::Live(stream),
            Err(e) if e.code() == Some(tonic::Code::Unimplemented) => OutputSource::Stored {
                client: self.clone(),
                id: id.into(),
                follow,
            },
            Err(e) => return Err(e),
        };
        Ok(Output { source })
    }

    /// Polls `execution` until it ends, following its retries, for at most
    /// `timeout`; `events` hears when the wait moves on to the next attempt. An
    /// execution still going at the deadline is [`Error::StillRunning`].
    pub async fn wait(
        &self,
        execution: pb::Execution,
        timeout: Duration,
        mut events: impl FnMut(WaitEvent<'_>),
    ) -> Result<pb::Execution> {
        let deadline = Instant::now() + timeout;
        let still_running = |execution: &pb::Execution| Error::StillRunning {
            execution: Box::new(execution.clone()),
            waited: timeout,
        };
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut max_attempts: Option<u32> = None;
        let mut current = execution;
        loop {
            if is_final(&current.status) {
                if !retryable(&current.status) {
                    return Ok(current);
                }
                let max = match max_attempts {
                    Some(max) => max,
                    None => {
                        let job = self.get_job(&current.job).await?;
                        let max = job.retry.map_or(1, |r| r.max_attempts.max(1));
                        max_attempts = Some(max);
                        max
                    }
                };
                if current.attempt >= max {
                    return Ok(current);
                }
                events(WaitEvent::Retrying {
                    execution: &current,
                    max_attempts: max,
                });
                current = loop {
                    if Instant::now() >= deadline {
                        return Err(still_running(&current));
                    }
                    ticker.tick().await;
                    if let Some(next) = self.next_attempt(&current).await? {
                        break next;
                    }
                };
                continue;
            }
            if Instant::now() >= deadline {
                return Err(still_running(&current));
            }
            ticker.tick().await;
            current = self.get_execution(&current.id).await?;
        }
    }

    /// The attempt after `execution` for the same scheduled instant, once it exists.
    async fn next_attempt(&self, execution: &pb::Execution) -> Result<Option<pb::Execution>> {
        let page = self
            .list_executions_page(pb::ListExecutionsRequest {
                job: execution.job.clone(),
                page_size: RETRY_SEARCH_PAGE_SIZE,
                page_token: String::new(),
            })
            .await?;
        Ok(page.executions.into_iter().find(|e| {
            e.scheduled_at == execution.scheduled_at && e.attempt == execution.attempt + 1
        }))
    }
}

/// Only `pending` and `running` are transient; a word this client does not know is
/// taken as final, since the contract adds outcomes, never transient states.
pub fn is_final(status: &str) -> bool {
    ExecutionStatus::from_str(status).map_or(true, ExecutionStatus::is_final)
}

/// Outcomes a job's retry policy acts on.
pub fn retryable(status: &str) -> bool {
    matches!(
        ExecutionStatus::from_str(status),
        Ok(ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Lost)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_statuses() {
        assert!(!is_final("pending") && !is_final("running"));
        assert!(is_final("succeeded") && is_final("no_target") && is_final("some_future_outcome"));
        assert!(retryable("lost") && !retryable("cancelled") && !retryable("succeeded"));
    }
}
