//! `Debug` for secret environment values, which never prints a value: a job
//! document, an assignment or a command that holds one can be logged with `{:?}`
//! without disclosing it.

use std::fmt;

use crate::v1::SecretEnv;
use crate::v1::secret_env::Source;

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Value(_) => f.write_str("Value(<hidden>)"),
            Source::File(path) => f.debug_tuple("File").field(path).finish(),
            Source::Env(name) => f.debug_tuple("Env").field(name).finish(),
            Source::Stored(stored) => f.debug_tuple("Stored").field(stored).finish(),
        }
    }
}

impl fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretEnv")
            .field("source", &self.source)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;

    #[test]
    fn debug_output_of_a_job_never_holds_a_secret_value() {
        let job = v1::Job {
            name: "backup".into(),
            action: Some(v1::job::Action::Shell(v1::ShellAction {
                command: "backup".into(),
                secret_env: [
                    (
                        "DB_PASSWORD".to_string(),
                        SecretEnv {
                            source: Some(Source::Value("hunter2-very-secret".into())),
                        },
                    ),
                    (
                        "API_KEY".to_string(),
                        SecretEnv {
                            source: Some(Source::File("/run/secrets/api".into())),
                        },
                    ),
                ]
                .into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let printed = format!("{job:?} {job:#?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("Value(<hidden>)"), "{printed}");
        assert!(printed.contains("/run/secrets/api"), "{printed}");
    }
}
