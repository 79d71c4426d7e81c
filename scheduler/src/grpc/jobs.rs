//! `kairos.v1.JobService`: decode, call [`Core`], encode. Writes a follower cannot
//! serve go to the leader ([`crate::peers`]).

use std::sync::Arc;

use kairos_proto::v1 as pb;
use pb::job_service_client::JobServiceClient;
use tonic::{Request, Response, Status};

use super::status::IntoStatus;
use crate::core::Core;
use crate::peers::is_forwarded;
use crate::time::dt_from_ts;

#[derive(Debug, Clone)]
pub struct JobApi(pub Arc<Core>);

#[tonic::async_trait]
impl pb::job_service_server::JobService for JobApi {
    async fn put_job(
        &self,
        req: Request<pb::PutJobRequest>,
    ) -> Result<Response<pb::PutJobResponse>, Status> {
        let forwarded = is_forwarded(&req);
        let req = req.into_inner();
        let job = req
            .job
            .clone()
            .ok_or_else(|| Status::invalid_argument("invalid job: missing field job"))?;
        match self.0.put_job(job, req.expected_version).await {
            Ok((job, result)) => Ok(Response::new(pb::PutJobResponse {
                job: Some(job),
                result: result.as_str().to_string(),
            })),
            Err(e) => {
                self.0
                    .to_leader(e, forwarded, req, |ch, r| async move {
                        JobServiceClient::new(ch).put_job(r).await
                    })
                    .await
            }
        }
    }

    async fn get_job(&self, req: Request<pb::GetJobRequest>) -> Result<Response<pb::Job>, Status> {
        Ok(Response::new(
            self.0.get_job(&req.into_inner().name).await.or_status()?,
        ))
    }

    async fn list_jobs(
        &self,
        req: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let req = req.into_inner();
        let (jobs, next_page_token) = self
            .0
            .list_jobs(req.page_size, &req.page_token, &req.filter)
            .await
            .or_status()?;
        Ok(Response::new(pb::ListJobsResponse {
            jobs,
            next_page_token,
        }))
    }

    async fn delete_job(
        &self,
        req: Request<pb::DeleteJobRequest>,
    ) -> Result<Response<pb::DeleteJobResponse>, Status> {
        let forwarded = is_forwarded(&req);
        let req = req.into_inner();
        match self.0.delete_job(&req.name, req.cascade).await {
            Ok(deleted) => Ok(Response::new(pb::DeleteJobResponse { deleted })),
            Err(e) => {
                self.0
                    .to_leader(e, forwarded, req, |ch, r| async move {
                        JobServiceClient::new(ch).delete_job(r).await
                    })
                    .await
            }
        }
    }

    async fn run_job(
        &self,
        req: Request<pb::RunJobRequest>,
    ) -> Result<Response<pb::RunJobResponse>, Status> {
        let forwarded = is_forwarded(&req);
        let req = req.into_inner();
        match self.0.run_job(&req.name).await {
            Ok((execution, queued)) => Ok(Response::new(pb::RunJobResponse { execution, queued })),
            Err(e) => {
                self.0
                    .to_leader_at_most_once(e, forwarded, req, |ch, r| async move {
                        JobServiceClient::new(ch).run_job(r).await
                    })
                    .await
            }
        }
    }

    async fn pause_job(
        &self,
        req: Request<pb::PauseJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let forwarded = is_forwarded(&req);
        let req = req.into_inner();
        match self.0.set_paused(&req.name, true, &req.reason).await {
            Ok(job) => Ok(Response::new(job)),
            Err(e) => {
                self.0
                    .to_leader(e, forwarded, req, |ch, r| async move {
                        JobServiceClient::new(ch).pause_job(r).await
                    })
                    .await
            }
        }
    }

    async fn resume_job(
        &self,
        req: Request<pb::ResumeJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let forwarded = is_forwarded(&req);
        let req = req.into_inner();
        match self.0.set_paused(&req.name, false, "").await {
            Ok(job) => Ok(Response::new(job)),
            Err(e) => {
                self.0
                    .to_leader(e, forwarded, req, |ch, r| async move {
                        JobServiceClient::new(ch).resume_job(r).await
                    })
                    .await
            }
        }
    }

    async fn preview_schedule(
        &self,
        req: Request<pb::PreviewScheduleRequest>,
    ) -> Result<Response<pb::PreviewScheduleResponse>, Status> {
        let req = req.into_inner();
        let (instants, timezone) = self
            .0
            .preview(
                req.subject,
                req.from.as_ref().map(dt_from_ts),
                req.to.as_ref().map(dt_from_ts),
                req.limit,
            )
            .await
            .or_status()?;
        Ok(Response::new(pb::PreviewScheduleResponse {
            instants: instants.into_iter().map(crate::time::ts_from_dt).collect(),
            timezone,
        }))
    }

    async fn backfill(
        &self,
        req: Request<pb::BackfillRequest>,
    ) -> Result<Response<pb::BackfillResponse>, Status> {
        let forwarded = is_forwarded(&req);
        let req = req.into_inner();
        let result = self
            .0
            .backfill(
                &req.name,
                req.from.as_ref().map(dt_from_ts),
                req.to.as_ref().map(dt_from_ts),
                req.dry_run,
                req.parallel,
                req.rate,
            )
            .await;
        match result {
            Ok((instants, id)) => Ok(Response::new(pb::BackfillResponse {
                instants: instants.into_iter().map(crate::time::ts_from_dt).collect(),
                id: id.map(|i| i.to_string()).unwrap_or_default(),
            })),
            Err(e) => {
                self.0
                    .to_leader_at_most_once(e, forwarded, req, |ch, r| async move {
                        JobServiceClient::new(ch).backfill(r).await
                    })
                    .await
            }
        }
    }
}
