//! Errors of the domain layer: only bad input can go wrong here.

/// A value a user gave that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `field` is the document path of the offending value (`schedule`,
    /// `target.selector`, `shell.command`); `reason` says what is wrong with it in words.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The document path of the offending value.
    pub fn field(&self) -> &str {
        match self {
            Error::InvalidArgument { field, .. } => field,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line, `outer: inner: root`, leaving out a cause
/// whose text an outer message already holds. Transport and HTTP errors say little
/// at the top ("error sending request"); the causes say what happened ("Connection
/// refused", "invalid peer certificate: UnknownIssuer").
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layered {
        text: String,
        #[source]
        cause: Option<Box<Layered>>,
    }

    fn layered(texts: &[&str]) -> Layered {
        texts
            .iter()
            .rev()
            .fold(None, |cause: Option<Layered>, text| {
                Some(Layered {
                    text: text.to_string(),
                    cause: cause.map(Box::new),
                })
            })
            .expect("at least one text")
    }

    #[test]
    fn a_chain_names_every_cause_once() {
        assert_eq!(
            chain(&layered(&[
                "error sending request",
                "connect",
                "Connection refused"
            ])),
            "error sending request: connect: Connection refused"
        );
        assert_eq!(
            chain(&layered(&[
                "tls: invalid peer certificate",
                "invalid peer certificate"
            ])),
            "tls: invalid peer certificate"
        );
    }
}
