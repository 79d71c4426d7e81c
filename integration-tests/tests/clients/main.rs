//! The clients end to end, against the real `kairos` binary: what a user of another
//! language or another tool checks before switching to Kairos.
//!
//! - [`python`]: the Python SDK in `sdk/python/` drives a three-scheduler group,
//!   riding through a leader killed in the middle of a script.
//! - [`grpcurl`]: every recipe in docs/grpcurl.md, run with the real grpcurl binary.
//! - [`dkron`]: the Dkron-compatible `/v1` API, as Dkron's documentation and its
//!   Python clients use it, and `kairos import --from-dkron`.
//! - [`openapi`]: /openapi.yaml, checked by schemathesis against `kairos dev`.
//! - [`rust`]: the `kairos-client` crate over a three-scheduler group, through a
//!   leader kill.

mod dkron;
mod grpcurl;
mod openapi;
mod python;
mod rust;
