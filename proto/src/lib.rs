//! Kairos's wire contract: the `kairos.v1` API (jobs, executions, cluster), the
//! internal executor and raft streams, and the replicated commands of the state
//! machine (`kairos.internal.v1`).
//!
//! Everything here is generated from `proto/` at build time: prost messages, tonic
//! clients and servers, and serde impls that follow the proto3 JSON mapping (so
//! `serde_json` output is what grpcurl prints). This crate holds no logic.

mod secret;
mod timestamp;

pub use timestamp::Timestamp;

/// Generated code, nested as the proto packages are (so cross-package references
/// resolve).
mod kairos {
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("kairos.v1");
        include!(concat!(env!("OUT_DIR"), "/kairos.v1.serde.rs"));
    }

    pub mod internal {
        pub mod v1 {
            #![allow(missing_docs, clippy::all, clippy::pedantic)]
            tonic::include_proto!("kairos.internal.v1");
            include!(concat!(env!("OUT_DIR"), "/kairos.internal.v1.serde.rs"));
        }
    }
}

/// The public API, package `kairos.v1`.
pub use kairos::v1;

/// Replicated state-machine commands, package `kairos.internal.v1`.
pub use kairos::internal::v1 as internal;

/// Encoded `FileDescriptorSet` of every file above, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/kairos_descriptor.bin"));

/// Version of the executor wire protocol (`Hello.protocol_version`). Bumped when a
/// change to `executor_gateway.proto` would confuse an older peer. 2: shell actions
/// carry `secret_env`, which an executor of protocol 1 would silently drop.
pub const EXECUTOR_PROTOCOL_VERSION: u32 = 2;

/// Metadata key carrying the leader's gRPC address on `Unavailable` answers.
pub const LEADER_METADATA_KEY: &str = "kairos-leader";
