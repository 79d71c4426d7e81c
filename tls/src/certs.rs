//! `kairos certs init` and `kairos certs issue`: a CA and the certificates a test or
//! small group needs, in one directory.
//!
//! Files, all PEM: `ca.crt` and `ca.key` (the CA; keep the key off the nodes),
//! `scheduler-<id>`, `executor-<name>` and `<role>-<name>` (people and tools:
//! `admin-alice`) each as `.crt` and `.key`. Keys are written with mode 0600. Every
//! certificate names its holder in a SAN URI `urn:kairos:<role>:<name>`; scheduler
//! certificates are also valid for the given host names and addresses, as servers
//! and as clients (peers dial each other). Valid for a year from today.
//!
//! Deliberately small: no revocation lists, no intermediate CAs, no renewal daemon —
//! production groups bring their own CA (cert-manager, Vault, an internal PKI) and
//! point the flags at its files.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::Datelike as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::{Error, Identity, Result};

/// What `init` makes.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Scheduler node ids.
    pub schedulers: Vec<u64>,
    /// Names and addresses every scheduler certificate is valid for (the hosts the
    /// clients dial: `localhost`, `127.0.0.1`, `kairos-0.kairos-peers.ns.svc`, …).
    pub hosts: Vec<String>,
    /// Executor names.
    pub executors: Vec<String>,
    /// People and tools: (role, name), e.g. ("admin", "alice").
    pub clients: Vec<(String, String)>,
}

fn gen_err(e: impl std::fmt::Display) -> Error {
    Error::Generate(e.to_string())
}

/// Makes a new CA in `dir` (created if needed; refused if it holds a CA already)
/// and the certificates of `spec`; returns the files written.
pub fn init(dir: &Path, spec: &Spec) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    let ca_key_path = dir.join("ca.key");
    if ca_key_path.exists() {
        return Err(Error::file(
            &ca_key_path,
            "a CA exists here already; use `kairos certs issue` to add certificates, or another directory",
        ));
    }
    let ca_key = KeyPair::generate().map_err(gen_err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    ca.distinguished_name = DistinguishedName::new();
    // Each CA's name is its own (a piece of its public key): a certificate from
    // another CA then fails as "unknown issuer", not as a bad signature under a CA of
    // the same name.
    let tag: String = ca_key
        .public_key_raw()
        .iter()
        .skip(1)
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    ca.distinguished_name
        .push(DnType::CommonName, format!("Kairos CA {tag}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut ca, 10);
    let ca_cert = ca.self_signed(&ca_key).map_err(gen_err)?;
    let mut written = vec![
        write(dir, "ca.crt", &ca_cert.pem(), false)?,
        write(dir, "ca.key", &ca_key.serialize_pem(), true)?,
    ];
    let issuer = Issuer::new(ca, ca_key);
    for id in &spec.schedulers {
        let who = Identity {
            role: "scheduler".into(),
            name: id.to_string(),
        };
        written.extend(leaf(
            dir,
            &format!("scheduler-{id}"),
            &who,
            &spec.hosts,
            &issuer,
        )?);
    }
    for name in &spec.executors {
        let who = Identity {
            role: "executor".into(),
            name: name.clone(),
        };
        written.extend(leaf(dir, &format!("executor-{name}"), &who, &[], &issuer)?);
    }
    for (role, name) in &spec.clients {
        let who = Identity {
            role: role.clone(),
            name: name.clone(),
        };
        written.extend(leaf(dir, &format!("{role}-{name}"), &who, &[], &issuer)?);
    }
    Ok(written)
}

/// Signs one more certificate with the CA in `dir` (its `ca.crt` and `ca.key`):
/// `DIR/FILE.crt` and `.key` for `who`, valid for `hosts` when it serves. Existing
/// files of that name are replaced (a rotation).
pub fn issue(dir: &Path, file: &str, who: &Identity, hosts: &[String]) -> Result<Vec<PathBuf>> {
    let key_path = dir.join("ca.key");
    let cert_path = dir.join("ca.crt");
    let key_pem = std::fs::read_to_string(&key_path).map_err(|e| Error::file(&key_path, e))?;
    let cert_pem = std::fs::read_to_string(&cert_path).map_err(|e| Error::file(&cert_path, e))?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| Error::file(&key_path, e))?;
    let issuer =
        Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| Error::file(&cert_path, e))?;
    leaf(dir, file, who, hosts, &issuer)
}

fn leaf(
    dir: &Path,
    file: &str,
    who: &Identity,
    hosts: &[String],
    issuer: &Issuer<'_, KeyPair>,
) -> Result<Vec<PathBuf>> {
    let key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, who.to_string());
    let mut sans = vec![SanType::URI(who.uri().try_into().map_err(gen_err)?)];
    for host in hosts {
        match host.parse::<IpAddr>() {
            Ok(ip) => sans.push(SanType::IpAddress(ip)),
            Err(_) => sans.push(SanType::DnsName(host.clone().try_into().map_err(gen_err)?)),
        }
    }
    params.subject_alt_names = sans;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = if hosts.is_empty() {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    } else {
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    };
    set_validity(&mut params, 1);
    let cert = params.signed_by(&key, issuer).map_err(gen_err)?;
    Ok(vec![
        write(dir, &format!("{file}.crt"), &cert.pem(), false)?,
        write(dir, &format!("{file}.key"), &key.serialize_pem(), true)?,
    ])
}

/// From yesterday (a clock a little behind still accepts it) for `years` years.
fn set_validity(params: &mut CertificateParams, years: i32) {
    let start = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let (y, m, d) = (
        start.year(),
        start.month() as u8,
        (start.day() as u8).min(28),
    );
    params.not_before = rcgen::date_time_ymd(y, m, d);
    params.not_after = rcgen::date_time_ymd(y + years, m, d);
}

/// Writes atomically (a temporary file renamed over), private keys with mode 0600.
fn write(dir: &Path, name: &str, text: &str, private: bool) -> Result<PathBuf> {
    use std::io::Write as _;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let _ = private;
    let mut f = options.open(&tmp).map_err(|e| Error::file(&tmp, e))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::file(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::file(&path, e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TlsFiles, identity_of};

    #[test]
    fn init_makes_a_ca_and_certificates_that_name_their_holders() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec {
            schedulers: vec![1, 2],
            hosts: vec!["localhost".into(), "127.0.0.1".into()],
            executors: vec!["web-1".into()],
            clients: vec![("admin".into(), "alice".into())],
        };
        let written = init(dir.path(), &spec).unwrap();
        assert_eq!(written.len(), 2 + 4 * 2);
        for (file, role, name) in [
            ("scheduler-2", "scheduler", "2"),
            ("executor-web-1", "executor", "web-1"),
            ("admin-alice", "admin", "alice"),
        ] {
            let files = TlsFiles::in_dir(dir.path(), file);
            let (chain, _) = files.own().unwrap().unwrap();
            assert_eq!(
                identity_of(&chain[0]),
                Some(Identity {
                    role: role.into(),
                    name: name.into()
                }),
                "{file}"
            );
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the CA key is private");
        }
        assert!(
            init(dir.path(), &spec).is_err(),
            "a second init does not overwrite the CA"
        );
        // Issue adds a certificate with the same CA.
        let who = Identity {
            role: "viewer".into(),
            name: "bob".into(),
        };
        issue(dir.path(), "viewer-bob", &who, &[]).unwrap();
        let (chain, _) = TlsFiles::in_dir(dir.path(), "viewer-bob")
            .own()
            .unwrap()
            .unwrap();
        assert_eq!(identity_of(&chain[0]), Some(who));
    }
}
