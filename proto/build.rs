//! Generates the protobuf types, tonic stubs and proto3-JSON serde impls with a
//! vendored protoc, so a build needs no system protoc.

use std::path::PathBuf;

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos: Vec<PathBuf> = [
        "kairos/v1/job.proto",
        "kairos/v1/execution.proto",
        "kairos/v1/cluster.proto",
        "kairos/v1/executor_gateway.proto",
        "kairos/v1/raft_transport.proto",
        "kairos/v1/token.proto",
        "kairos/internal/v1/state.proto",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    println!("cargo:rerun-if-changed={}", root.display());

    let descriptor_path = out_dir.join("kairos_descriptor.bin");
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // A secret's value must not reach a log through `{:?}`: its Debug is written by
    // hand (src/secret.rs) and prints the source's kind only.
    config.skip_debug([".kairos.v1.SecretEnv"]);
    tonic_prost_build::configure()
        // No `Client::connect` constructors: the executor gateway's `Connect` RPC
        // would collide with them. Clients are built with `Client::new(channel)`.
        .build_transport(false)
        .file_descriptor_set_path(&descriptor_path)
        .compile_well_known_types(true)
        // Timestamps get their spec-conformant JSON form ("...Z") from our own type.
        .extern_path(".google.protobuf.Timestamp", "crate::Timestamp")
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_with_config(
            config,
            &protos,
            &[root, protoc_bin_vendored::include_path()?],
        )?;

    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .build(&[".kairos"])?;
    Ok(())
}
