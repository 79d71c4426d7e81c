//! `kairos.v1.JobService`: decode, call [`Core`], encode.

use std::sync::Arc;

use kairos_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::status::IntoStatus;
use crate::core::Core;
use crate::time::dt_from_ts;

#[derive(Debug, Clone)]
pub struct JobApi(pub Arc<Core>);

#[tonic::async_trait]
impl pb::job_service_server::JobService for JobApi {
    async fn put_job(
        &self,
        req: Request<pb::PutJobRequest>,
    ) -> Result<Response<pb::PutJobResponse>, Status> {
        let req = req.into_inner();
        let job = req
            .job
            .ok_or_else(|| Status::invalid_argument("invalid job: missing field job"))?;
        let (job, result) = self
            .0
            .put_job(job, req.expected_version)
            .await
            .or_status()?;
        Ok(Response::new(pb::PutJobResponse {
            job: Some(job),
            result: result.as_str().to_string(),
        }))
    }

    async fn get_job(&self, req: Request<pb::GetJobRequest>) -> Result<Response<pb::Job>, Status> {
        Ok(Response::new(
            self.0.get_job(&req.into_inner().name).or_status()?,
        ))
    }

    async fn list_jobs(
        &self,
        req: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let req = req.into_inner();
        let (jobs, next_page_token) = self
            .0
            .list_jobs(req.page_size, &req.page_token)
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
        self.0
            .delete_job(&req.into_inner().name)
            .await
            .or_status()?;
        Ok(Response::new(pb::DeleteJobResponse {}))
    }

    async fn run_job(
        &self,
        req: Request<pb::RunJobRequest>,
    ) -> Result<Response<pb::RunJobResponse>, Status> {
        let execution = self.0.run_job(&req.into_inner().name).await.or_status()?;
        Ok(Response::new(pb::RunJobResponse {
            execution: Some(execution),
        }))
    }

    async fn pause_job(
        &self,
        req: Request<pb::PauseJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let req = req.into_inner();
        Ok(Response::new(
            self.0
                .set_paused(&req.name, true, &req.reason)
                .await
                .or_status()?,
        ))
    }

    async fn resume_job(
        &self,
        req: Request<pb::ResumeJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let req = req.into_inner();
        Ok(Response::new(
            self.0.set_paused(&req.name, false, "").await.or_status()?,
        ))
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
            .or_status()?;
        Ok(Response::new(pb::PreviewScheduleResponse {
            instants: instants.into_iter().map(crate::time::ts_from_dt).collect(),
            timezone,
        }))
    }
}
