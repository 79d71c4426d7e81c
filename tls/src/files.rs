//! TLS material as PEM files, and a cache that rebuilds what is made from them when
//! any of them changes on disk.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Error, Result};

/// How often the files' modification times are looked at again.
const RECHECK: Duration = Duration::from_secs(1);

/// A node's or client's TLS material: the CA bundle that signs its peers, and its
/// own certificate chain and key (absent for a client that only verifies the
/// server and authenticates with a token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// The three files of a `kairos certs init` directory for `name` (e.g.
    /// `scheduler-1`, `executor-web-1`, `client-admin`): `DIR/ca.crt`,
    /// `DIR/NAME.crt`, `DIR/NAME.key`.
    pub fn in_dir(dir: &Path, name: &str) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.crt"),
            cert: Some(dir.join(format!("{name}.crt"))),
            key: Some(dir.join(format!("{name}.key"))),
        }
    }

    /// The CA certificates.
    pub fn ca_certs(&self) -> Result<Vec<CertificateDer<'static>>> {
        read_certs(&self.ca)
    }

    /// The own certificate chain and key, when given.
    pub fn own(&self) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Ok(Some((read_certs(cert)?, read_key(key)?))),
            (None, None) => Ok(None),
            (Some(cert), None) => Err(Error::file(cert, "a certificate needs its key file too")),
            (None, Some(key)) => Err(Error::file(key, "a key needs its certificate file too")),
        }
    }

    fn stamp(&self) -> Vec<Option<SystemTime>> {
        [Some(&self.ca), self.cert.as_ref(), self.key.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }
}

pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let text = std::fs::read(path).map_err(|e| Error::file(path, e))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::file(path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(Error::file(path, "holds no certificate"));
    }
    Ok(certs)
}

pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let text = std::fs::read(path).map_err(|e| Error::file(path, e))?;
    PrivateKeyDer::from_pem_slice(&text)
        .map_err(|e| Error::file(path, format!("not a PEM private key: {e}")))
}

/// How a [`Reloading`] value is made from the files.
type Build<T> = Box<dyn Fn(&TlsFiles) -> Result<T> + Send + Sync>;

/// Something built from [`TlsFiles`] (a rustls config), rebuilt when they change.
pub(crate) struct Reloading<T> {
    files: TlsFiles,
    build: Build<T>,
    state: Mutex<State<T>>,
}

struct State<T> {
    current: Arc<T>,
    stamp: Vec<Option<SystemTime>>,
    checked: Instant,
}

impl<T> Reloading<T> {
    /// Builds once (an error here is the caller's: bad files at start stop it).
    pub(crate) fn new(
        files: TlsFiles,
        build: impl Fn(&TlsFiles) -> Result<T> + Send + Sync + 'static,
    ) -> Result<Reloading<T>> {
        let current = Arc::new(build(&files)?);
        let stamp = files.stamp();
        Ok(Reloading {
            files,
            build: Box::new(build),
            state: Mutex::new(State {
                current,
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    /// The current build; rebuilt first if a file changed since the last look (at
    /// most one look per [`RECHECK`]). A rebuild that fails keeps the previous one.
    pub(crate) fn get(&self) -> Arc<T> {
        let mut state = self
            .state
            .lock()
            .expect("invariant: the TLS reload lock is never poisoned");
        if state.checked.elapsed() >= RECHECK {
            state.checked = Instant::now();
            let stamp = self.files.stamp();
            if stamp != state.stamp {
                match (self.build)(&self.files) {
                    Ok(next) => {
                        tracing::info!(cert = ?self.files.cert, ca = %self.files.ca.display(), "TLS files changed: reloaded");
                        state.current = Arc::new(next);
                        state.stamp = stamp;
                    }
                    Err(e) => {
                        // Keep serving with what worked; try again at the next change.
                        tracing::warn!(error = %e, "TLS files changed but do not load; keeping the previous ones");
                        state.stamp = stamp;
                    }
                }
            }
        }
        state.current.clone()
    }

    pub(crate) fn files(&self) -> &TlsFiles {
        &self.files
    }
}
