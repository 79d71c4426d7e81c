//! The `--config FILE` of the role commands: a flat TOML table of flag values.
//!
//! Keys are the role's long flag names; dashes and underscores are interchangeable
//! (`node-id = 1` and `node_id = 1` are the same key, and giving both is an error).
//! Values are what the flag would take, written as TOML:
//!
//! ```toml
//! node-id = 1
//! data-dir = "/var/lib/kairos"
//! grpc-addr = "10.0.0.1:7070"
//! tick-interval = "50ms"
//! peers = "1=10.0.0.1:7070,2=10.0.0.2:7070"   # or an array, or a [peers] table
//! tag = ["role=web", "region=eu"]             # or "role=web,region=eu", or a [tag] table
//! ```
//!
//! A scalar may be a string, an integer, a float or a boolean; it is turned into
//! text and parsed by the same function as the flag ([`crate::settings::values`]),
//! so the file cannot accept a spelling the flag refuses. A list-valued key (one
//! whose flag may be repeated) takes an array of scalars, a comma-separated string,
//! or a table whose entries become `KEY=VALUE` items.
//!
//! Invariants: a key the role does not know is an error that names the key (a typo
//! must not silently fall back to a default); every error names the file and the
//! key. This module knows nothing about which keys exist or what they mean — the
//! caller passes the known keys; precedence is decided in [`crate::settings`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};

/// A parsed config file whose keys have been checked against a role's flags.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    /// Normalised key (dashes) → value.
    entries: BTreeMap<String, toml::Value>,
}

impl ConfigFile {
    /// Reads and checks `path`; `known` holds the accepted keys, dash-separated.
    pub fn load(path: &Path, known: &[String]) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Self::parse(path, &text, known)
    }

    /// Parses `text` as if read from `path` (which only names the file in errors).
    pub fn parse(path: &Path, text: &str, known: &[String]) -> anyhow::Result<Self> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|span| format!(" (line {})", line_of(text, span.start)))
                .unwrap_or_default();
            anyhow!(
                "config file {}{line}: {}",
                path.display(),
                e.message().trim()
            )
        })?;
        let mut entries = BTreeMap::new();
        let mut spelled: BTreeMap<String, String> = BTreeMap::new();
        for (key, value) in table {
            let normal = key.replace('_', "-");
            if !known.contains(&normal) {
                bail!(
                    "config file {}: unknown key `{key}`{} (known keys: {})",
                    path.display(),
                    suggestion(&normal, known)
                        .map(|s| format!(", did you mean `{s}`?"))
                        .unwrap_or_default(),
                    known.join(", ")
                );
            }
            if let Some(first) = spelled.insert(normal.clone(), key.clone()) {
                bail!(
                    "config file {}: `{normal}` is given twice (as `{first}` and `{key}`)",
                    path.display()
                );
            }
            entries.insert(normal, value);
        }
        Ok(ConfigFile {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The single value under `key`, parsed; `None` when the key is absent.
    pub fn value<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<Option<T>> {
        let Some(value) = self.entries.get(key) else {
            return Ok(None);
        };
        let text = scalar_text(value).ok_or_else(|| {
            self.error(
                key,
                format!("expected a single value, found {}", value.type_str()),
            )
        })?;
        parse(&text).map(Some).map_err(|e| self.error(key, e))
    }

    /// The items under a list-valued `key`, each parsed; empty when the key is absent.
    pub fn list<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<Vec<T>> {
        let Some(value) = self.entries.get(key) else {
            return Ok(Vec::new());
        };
        let items: Vec<String> = match value {
            toml::Value::String(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            toml::Value::Array(array) => array
                .iter()
                .map(|item| {
                    scalar_text(item).ok_or_else(|| {
                        self.error(
                            key,
                            format!(
                                "list items must be single values, found {}",
                                item.type_str()
                            ),
                        )
                    })
                })
                .collect::<anyhow::Result<_>>()?,
            toml::Value::Table(table) => table
                .iter()
                .map(|(k, v)| {
                    scalar_text(v).map(|v| format!("{k}={v}")).ok_or_else(|| {
                        self.error(
                            key,
                            format!("`{k}` must be a single value, found {}", v.type_str()),
                        )
                    })
                })
                .collect::<anyhow::Result<_>>()?,
            other => scalar_text(other).into_iter().collect(),
        };
        items
            .iter()
            .map(|item| parse(item).map_err(|e| self.error(key, e)))
            .collect()
    }

    fn error(&self, key: &str, reason: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("config file {}: `{key}`: {reason}", self.path.display())
    }
}

/// A scalar as the text a flag would have held; `None` for arrays and tables.
fn scalar_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |head| head.matches('\n').count())
        + 1
}

/// A known key the unknown one was probably meant to be (a plural, a missing dash).
fn suggestion<'a>(unknown: &str, known: &'a [String]) -> Option<&'a str> {
    let squash = |s: &str| s.replace('-', "");
    known
        .iter()
        .find(|k| {
            squash(k) == squash(unknown)
                || squash(unknown).trim_end_matches('s') == squash(k)
                || squash(k).trim_end_matches('s') == squash(unknown)
        })
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        ["node-id", "data-dir", "peers", "tag"]
            .map(String::from)
            .to_vec()
    }

    fn parse(text: &str) -> anyhow::Result<ConfigFile> {
        ConfigFile::parse(Path::new("kairos.toml"), text, &known())
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = parse("node-id = 1\nnodes = 3\n")
            .err()
            .map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("kairos.toml"), "{err}");
        assert!(err.contains("unknown key `nodes`"), "{err}");
        assert!(err.contains("node-id, data-dir"), "{err}");
    }

    #[test]
    fn unknown_key_gets_a_suggestion() {
        let err = parse("tags = [\"a=b\"]\n").err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .unwrap_or_default()
                .contains("did you mean `tag`?"),
            "{err:?}"
        );
    }

    #[test]
    fn dashes_and_underscores_are_the_same_key() -> anyhow::Result<()> {
        let file = parse("node_id = 7\n")?;
        assert_eq!(
            file.value("node-id", |s| s.parse::<u64>().map_err(|e| e.to_string()))?,
            Some(7)
        );
        let twice = parse("node_id = 7\nnode-id = 8\n")
            .err()
            .map(|e| e.to_string());
        assert!(twice.unwrap_or_default().contains("given twice"));
        Ok(())
    }

    #[test]
    fn toml_syntax_errors_name_the_line() {
        let err = parse("node-id = 1\ndata-dir = \n")
            .err()
            .map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(
            err.starts_with("config file kairos.toml (line 2):"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn lists_take_arrays_strings_and_tables() -> anyhow::Result<()> {
        let id = |s: &str| Ok::<_, String>(s.to_string());
        let file = parse("peers = \"1=a:1, 2=b:2\"\ntag = [\"x=1\", \"y=2\"]\n")?;
        assert_eq!(file.list("peers", id)?, ["1=a:1", "2=b:2"]);
        assert_eq!(file.list("tag", id)?, ["x=1", "y=2"]);
        let file = parse("[peers]\n1 = \"a:1\"\n2 = \"b:2\"\n")?;
        assert_eq!(file.list("peers", id)?, ["1=a:1", "2=b:2"]);
        Ok(())
    }

    #[test]
    fn value_errors_name_file_and_key() {
        let file = parse("node-id = \"one\"\n");
        let err = file
            .and_then(|f| f.value("node-id", |s| s.parse::<u64>().map_err(|e| e.to_string())))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("config file kairos.toml: `node-id`:"),
            "{err}"
        );
        let file = parse("node-id = [1]\n");
        let err = file
            .and_then(|f| f.value("node-id", |s| Ok::<_, String>(s.to_string())))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("expected a single value"), "{err}");
    }
}
