//! Who a certificate says its holder is: the SAN URI `urn:kairos:<role>:<name>`.

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer as _;

use crate::IDENTITY_URI_PREFIX;

/// A certificate holder's role and name, as its certificate states them. The CA
/// vouches for it (the handshake verified the chain); what the role may do is the
/// scheduler's to decide.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// `scheduler`, `executor`, `admin`, `operator` or `viewer` (any word: the
    /// reader decides what it accepts).
    pub role: String,
    /// The node id of a scheduler, the executor's name, a person's or tool's name.
    pub name: String,
}

impl Identity {
    /// The SAN URI naming this identity.
    pub fn uri(&self) -> String {
        format!("{IDENTITY_URI_PREFIX}{}:{}", self.role, self.name)
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.role, self.name)
    }
}

/// The Kairos identity in a (leaf) certificate, if it has exactly one; `None` for a
/// certificate that names none, or names several (ambiguous: trusted for nothing).
pub fn identity_of(cert: &CertificateDer<'_>) -> Option<Identity> {
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert.as_ref()).ok()?;
    let san = parsed.subject_alternative_name().ok()??;
    let mut found = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => parse_uri(uri),
            _ => None,
        });
    let first = found.next()?;
    match found.next() {
        None => Some(first),
        Some(_) => None,
    }
}

fn parse_uri(uri: &str) -> Option<Identity> {
    let rest = uri.strip_prefix(IDENTITY_URI_PREFIX)?;
    let (role, name) = rest.split_once(':')?;
    (!role.is_empty() && !name.is_empty()).then(|| Identity {
        role: role.to_string(),
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_a_role_and_a_name() {
        assert_eq!(
            parse_uri("urn:kairos:scheduler:3"),
            Some(Identity {
                role: "scheduler".into(),
                name: "3".into()
            })
        );
        assert_eq!(
            parse_uri("urn:kairos:executor:web-1:a").map(|i| i.name),
            Some("web-1:a".into()),
            "the name is the rest"
        );
        for bad in [
            "urn:kairos:",
            "urn:kairos:admin",
            "urn:kairos::x",
            "urn:other:admin:x",
        ] {
            assert_eq!(parse_uri(bad), None, "{bad}");
        }
    }
}
