//! Executions: read one, list them (paged, by job), cancel one.

use std::collections::BTreeMap;

use kairos_common::ids::ExecutionId;
use kairos_common::job::JobName;
use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use tracing::info;

use crate::state::Applied;
use crate::{Error, Result};

use super::{Core, DEFAULT_EXECUTION_PAGE, now_ms, page_size_or, unexpected};

impl Core {
    /// Stops a pending or running execution: recorded `cancelled` at once, and its
    /// executor told to kill the process group.
    pub async fn cancel_execution(&self, id: &str) -> Result<pb::Execution> {
        let id: ExecutionId = id.parse()?;
        self.leader_or_wait().await?;
        let cmd = ipb::command::Kind::CancelExecution(ipb::CancelExecution {
            id: id.0,
            reason: "cancelled on request".into(),
            now_ms: now_ms(self.clock.as_ref()),
        });
        match self.propose(cmd).await? {
            Applied::Cancelled { execution, active } => {
                info!(execution = %execution.id, job = %execution.job, "execution cancelled");
                self.cancel_on_executors(std::slice::from_ref(&active), "cancelled on request");
                Ok(*execution)
            }
            other => Err(unexpected(other)),
        }
    }

    pub async fn get_execution(&self, id: &str) -> Result<pb::Execution> {
        let id: ExecutionId = id.parse()?;
        self.read_barrier().await?;
        let mut e = self
            .view
            .execution(id.0)?
            .ok_or_else(|| Error::NotFound(format!("execution {id}")))?;
        if !e.group.is_empty() {
            e.group_status = self.view.group_status(&e.job, &e.group)?;
        }
        Ok(e)
    }

    pub async fn list_executions(
        &self,
        job: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<pb::Execution>, String)> {
        self.read_barrier().await?;
        self.list_executions_local(job, page_size, page_token)
    }

    /// Executions as this node has them, without a read barrier (status page).
    pub fn list_executions_local(
        &self,
        job: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<pb::Execution>, String)> {
        let limit = page_size_or(page_size, DEFAULT_EXECUTION_PAGE)?;
        let before =
            if page_token.is_empty() {
                None
            } else {
                Some(page_token.parse::<u64>().map_err(|_| {
                    Error::invalid("page_token", "not a token from a previous page")
                })?)
            };
        let job = if job.is_empty() {
            None
        } else {
            JobName::parse(job)?;
            Some(job)
        };
        let mut page = self.view.executions_page(job, before, limit)?;
        let mut groups: BTreeMap<(String, String), String> = Default::default();
        for e in page.executions.iter_mut().filter(|e| !e.group.is_empty()) {
            let key = (e.job.clone(), e.group.clone());
            if !groups.contains_key(&key) {
                let status = self.view.group_status(&e.job, &e.group)?;
                groups.insert(key.clone(), status);
            }
            e.group_status = groups[&key].clone();
        }
        Ok((
            page.executions,
            page.next_after.map(|id| id.to_string()).unwrap_or_default(),
        ))
    }
}
