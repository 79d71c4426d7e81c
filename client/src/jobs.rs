//! `kairos.v1.JobService` as typed calls, and the two that take more than one
//! RPC: [`Client::apply`] (every job of a file, in order, stopping at the first
//! refusal) and [`Client::list_jobs`] (every page).
//!
//! Each call is marked with its [`Safety`]: `PutJob` without an expected version is
//! an upsert and `PauseJob`/`ResumeJob` set a flag, so they may be resent;
//! `RunJob`, `Backfill` (unless a dry run) and `DeleteJob` are sent to a second
//! node only when they certainly never reached the first.

use kairos_proto::v1 as pb;
use pb::job_service_client::JobServiceClient;

use crate::client::{Client, rpc};
use crate::documents::JobDoc;
use crate::error::{Error, Result};
use crate::retry::Safety;

/// Jobs asked for per `ListJobs` page.
pub const LIST_PAGE_SIZE: u32 = 500;

/// The most pages [`Client::list_jobs`] reads (500 × 100 000 jobs is far beyond
/// what a group holds): a bound on a server that never ends its listing.
const MAX_PAGES: u32 = 100_000;

/// What [`Client::apply`] did: the answers of the jobs written, and the refusal
/// that stopped it, if one did.
#[derive(Debug)]
pub struct Applied {
    /// One answer per job written, in file order.
    pub responses: Vec<pb::PutJobResponse>,
    /// The job refused (its index in the documents) and why; the jobs after it
    /// were not tried.
    pub refused: Option<(usize, Error)>,
}

impl Client {
    /// `PutJob`: creates or replaces `job` (`result` says `created`, `updated` or
    /// `unchanged`).
    pub async fn put_job(&self, job: pb::Job) -> Result<pb::PutJobResponse> {
        self.put_job_request(pb::PutJobRequest {
            job: Some(job),
            expected_version: None,
        })
        .await
    }

    /// `PutJob` with every field of the request; with `expected_version` set the
    /// call is not resent (a second delivery would meet its own new version).
    pub async fn put_job_request(&self, request: pb::PutJobRequest) -> Result<pb::PutJobResponse> {
        let safety = if request.expected_version.is_some() {
            Safety::AtMostOnce
        } else {
            Safety::Idempotent
        };
        rpc!(
            self,
            JobServiceClient<_>,
            put_job,
            "PutJob",
            safety,
            request
        )
    }

    /// `GetJob`.
    pub async fn get_job(&self, name: &str) -> Result<pb::Job> {
        let request = pb::GetJobRequest { name: name.into() };
        rpc!(
            self,
            JobServiceClient<_>,
            get_job,
            "GetJob",
            Safety::Idempotent,
            request
        )
    }

    /// One `ListJobs` page.
    pub async fn list_jobs_page(
        &self,
        request: pb::ListJobsRequest,
    ) -> Result<pb::ListJobsResponse> {
        rpc!(
            self,
            JobServiceClient<_>,
            list_jobs,
            "ListJobs",
            Safety::Idempotent,
            request
        )
    }

    /// Every job whose metadata matches `filter` (every job when it is empty),
    /// following `next_page_token` to the end, in the server's order.
    pub async fn list_jobs(&self, filter: &str) -> Result<Vec<pb::Job>> {
        let mut jobs = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_PAGES {
            let page = self
                .list_jobs_page(pb::ListJobsRequest {
                    page_size: LIST_PAGE_SIZE,
                    page_token: token.clone(),
                    filter: filter.to_string(),
                })
                .await?;
            jobs.extend(page.jobs);
            if page.next_page_token.is_empty() {
                return Ok(jobs);
            }
            if page.next_page_token == token {
                return Err(Error::Protocol(format!(
                    "the scheduler returned the same page token twice ({token:?})"
                )));
            }
            token = page.next_page_token;
        }
        Err(Error::Protocol(format!(
            "the job listing did not end after {MAX_PAGES} pages"
        )))
    }

    /// `DeleteJob` (with `cascade`, its dependents too).
    pub async fn delete_job(&self, name: &str, cascade: bool) -> Result<pb::DeleteJobResponse> {
        let request = pb::DeleteJobRequest {
            name: name.into(),
            cascade,
        };
        rpc!(
            self,
            JobServiceClient<_>,
            delete_job,
            "DeleteJob",
            Safety::AtMostOnce,
            request
        )
    }

    /// `RunJob`: one manual run now. Never resent once it may have reached a
    /// scheduler; such a failure is [`Error::Ambiguous`].
    pub async fn run_job(&self, name: &str) -> Result<pb::RunJobResponse> {
        let request = pb::RunJobRequest { name: name.into() };
        rpc!(
            self,
            JobServiceClient<_>,
            run_job,
            "RunJob",
            Safety::AtMostOnce,
            request
        )
    }

    /// `PauseJob`, with a reason for people (may be empty).
    pub async fn pause_job(&self, name: &str, reason: &str) -> Result<pb::Job> {
        let request = pb::PauseJobRequest {
            name: name.into(),
            reason: reason.into(),
        };
        rpc!(
            self,
            JobServiceClient<_>,
            pause_job,
            "PauseJob",
            Safety::Idempotent,
            request
        )
    }

    /// `ResumeJob`.
    pub async fn resume_job(&self, name: &str) -> Result<pb::Job> {
        let request = pb::ResumeJobRequest { name: name.into() };
        rpc!(
            self,
            JobServiceClient<_>,
            resume_job,
            "ResumeJob",
            Safety::Idempotent,
            request
        )
    }

    /// `PreviewSchedule`: the instants a stored job or a document would fire at.
    pub async fn preview_schedule(
        &self,
        request: pb::PreviewScheduleRequest,
    ) -> Result<pb::PreviewScheduleResponse> {
        rpc!(
            self,
            JobServiceClient<_>,
            preview_schedule,
            "PreviewSchedule",
            Safety::Idempotent,
            request
        )
    }

    /// `Backfill`; a dry run only reads, a real one is never resent.
    pub async fn backfill(&self, request: pb::BackfillRequest) -> Result<pb::BackfillResponse> {
        let safety = if request.dry_run {
            Safety::Idempotent
        } else {
            Safety::AtMostOnce
        };
        rpc!(
            self,
            JobServiceClient<_>,
            backfill,
            "Backfill",
            safety,
            request
        )
    }

    /// Writes every job of `docs` with `PutJob`, in order, stopping at the first
    /// refusal; `landed` hears of each job written as it is. The documents should
    /// have passed [`crate::documents::check`] (a file-level check this does not
    /// repeat).
    pub async fn apply(
        &self,
        docs: &[JobDoc],
        mut landed: impl FnMut(&JobDoc, &pb::PutJobResponse),
    ) -> Applied {
        let mut responses = Vec::with_capacity(docs.len());
        for (index, doc) in docs.iter().enumerate() {
            match self.put_job(doc.job.clone()).await {
                Ok(response) => {
                    landed(doc, &response);
                    responses.push(response);
                }
                Err(error) => {
                    return Applied {
                        responses,
                        refused: Some((index, error)),
                    };
                }
            }
        }
        Applied {
            responses,
            refused: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::client::test::{Answer, Script, serve};
    use crate::{Client, ClientConfig, RetryPolicy, documents};

    #[tokio::test]
    async fn every_page_is_read() -> anyhow::Result<()> {
        let script = Arc::new(Script::default());
        let addr = serve(script.clone()).await?;
        let client = Client::new(ClientConfig::new([addr.to_string()]))?;
        let names: Vec<String> = client
            .list_jobs("")
            .await?
            .into_iter()
            .map(|j| j.name)
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        let tokens: Vec<String> = script.calls().into_iter().map(|(_, t)| t).collect();
        assert_eq!(tokens, ["", "p2", "p3"]);
        Ok(())
    }

    #[tokio::test]
    async fn apply_stops_at_the_first_refusal() -> anyhow::Result<()> {
        let script = Arc::new(Script::default());
        script
            .answers
            .lock()
            .unwrap()
            .extend([Answer::Ok, Answer::NotFound]);
        let addr = serve(script.clone()).await?;
        let mut config = ClientConfig::new([addr.to_string()]);
        config.retry = RetryPolicy::ONCE;
        let client = Client::new(config)?;
        let docs = documents::parse("jobs.yaml", "name: a\n---\nname: b\n---\nname: c\n")?;
        let mut landed = Vec::new();
        let applied = client
            .apply(&docs, |doc, _| landed.push(doc.job.name.clone()))
            .await;
        assert_eq!(landed, ["a"]);
        assert_eq!(applied.responses.len(), 1);
        let (index, error) = applied
            .refused
            .ok_or_else(|| anyhow::anyhow!("nothing refused"))?;
        assert_eq!(index, 1);
        assert_eq!(error.code(), Some(tonic::Code::NotFound));
        assert_eq!(script.calls().len(), 2, "c was not tried");
        Ok(())
    }
}
