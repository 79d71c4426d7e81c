//! TLS for every Kairos connection: the scheduler's listeners (gRPC, HTTP), and the
//! three kinds of client — peers dialling peers, executors dialling the leader, the
//! CLI and other clients dialling any node. rustls only (no OpenSSL).
//!
//! # What it gives
//! - [`TlsFiles`]: a CA bundle, a certificate chain and its key, as PEM files.
//!   They are **re-read when they change** (checked at most once a second, on the
//!   next handshake), so rotating certificates needs no restart; a file that fails to
//!   parse leaves the previous material in use and says so in the log.
//! - [`ServerTls`]: the server side. Clients may present a certificate; one that the
//!   CA did not sign fails the handshake, none at all is allowed here (the API then
//!   wants a token), so one port can serve both. [`accept`] turns a listener into a
//!   stream of handshaken connections, each handshake on its own task with a
//!   deadline, so a slow client cannot hold the port.
//! - [`ClientTls`]: the client side: trusts the CA, presents its own certificate when
//!   it has one, and makes a tonic [`tonic::transport::Channel`] ([`ClientTls::channel`]).
//! - [`Identity`]: who a certificate says its holder is. Kairos certificates name
//!   their holder in a SAN URI `urn:kairos:<role>:<name>` — `scheduler:3`,
//!   `executor:web-1`, `admin:alice` — besides the DNS names and addresses a server
//!   certificate is valid for.
//! - [`certs`]: `kairos certs init`, a CA and certificates for a test or small
//!   group; production users bring their own (cert-manager, an internal CA).
//!
//! # Not here
//! What an identity may do (the scheduler's authorization), tokens, and anything
//! about the CA's private key beyond writing it once with mode 0600.

pub mod certs;
mod client;
mod error;
mod files;
mod identity;
mod server;

pub use client::{ClientTls, client_config};
pub use error::{Error, Result};
pub use files::TlsFiles;
pub use identity::{Identity, identity_of};
pub use server::{Conn, ConnInfo, ServerTls, accept};

/// The SAN URI prefix of a Kairos identity.
pub const IDENTITY_URI_PREFIX: &str = "urn:kairos:";

/// Installs the ring crypto provider as the process default, once; rustls needs one
/// chosen when more than one is compiled in.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
