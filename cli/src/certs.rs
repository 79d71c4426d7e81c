//! `kairos certs init|issue`: a CA and certificates for a test or a small group, in
//! one directory (see `kairos_tls::certs`). Nothing is dialled.

use anyhow::{anyhow, bail};
use kairos_common::access::Role;
use kairos_tls::Identity;
use kairos_tls::certs::{Spec, init, issue};

use crate::args::CertsCommand;
use crate::output::OutputFormat;

pub fn run(command: CertsCommand, output: OutputFormat) -> anyhow::Result<()> {
    let written = match command {
        CertsCommand::Init {
            dir,
            schedulers,
            hosts,
            executors,
            clients,
        } => {
            let clients = if clients.is_empty() {
                vec![("admin".to_string(), "admin".to_string())]
            } else {
                clients
                    .iter()
                    .map(|c| {
                        let (role, name) = c.split_once('=').ok_or_else(|| {
                            anyhow!("--client {c:?}: give ROLE=NAME, e.g. admin=alice")
                        })?;
                        check_role(role, "--client")?;
                        check_name(name, "--client")?;
                        Ok((role.to_string(), name.to_string()))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?
            };
            for name in &executors {
                check_name(name, "--executor")?;
            }
            let spec = Spec {
                schedulers: if schedulers.is_empty() {
                    vec![1, 2, 3]
                } else {
                    schedulers
                },
                hosts: if hosts.is_empty() {
                    vec!["localhost".into(), "127.0.0.1".into()]
                } else {
                    hosts
                },
                executors,
                clients,
            };
            init(&dir, &spec)?
        }
        CertsCommand::Issue {
            dir,
            role,
            name,
            hosts,
        } => {
            check_role(&role, "--role")?;
            // An executor pool certificate, `PREFIX*`, registers any executor whose
            // name starts with PREFIX (a Deployment's pods).
            let pool = (role == "executor")
                .then(|| name.strip_suffix('*'))
                .flatten();
            check_name(pool.unwrap_or(&name), "--name")?;
            if role == "scheduler" && hosts.is_empty() {
                bail!("--host: a scheduler certificate needs the names it is reached at");
            }
            let file = match pool {
                Some(prefix) => format!("{role}-pool-{prefix}"),
                None => format!("{role}-{name}"),
            };
            issue(&dir, &file, &Identity { role, name }, &hosts)?
        }
    };
    let paths: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    crate::output::emit(output, &serde_json::json!({ "written": paths }), |_| {
        paths.iter().map(|p| format!("wrote {p}\n")).collect()
    })
}

fn check_role(role: &str, flag: &str) -> anyhow::Result<()> {
    role.parse::<Role>()
        .map(|_| ())
        .map_err(|e| anyhow!("{flag}: {e}"))
}

fn check_name(name: &str, flag: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        bail!("{flag} {name:?}: names are 1 to 128 of a-z, A-Z, 0-9, '-', '_', '.'")
    }
}
