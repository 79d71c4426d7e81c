//! The gRPC API is discoverable: a client that has only server reflection (no proto
//! files) can list the services and call `kairos.v1.JobService/ListJobs`.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use kairos_integration_tests::{Dev, dynamic::DynamicCodec};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage as _, Value};
use tonic_reflection::pb::{v1, v1alpha};

const BIN: &str = env!("CARGO_BIN_EXE_kairos");

async fn ask_v1(
    channel: tonic::transport::Channel,
    request: v1::server_reflection_request::MessageRequest,
) -> Result<v1::server_reflection_response::MessageResponse> {
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel);
    let req = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([req]))
        .await?
        .into_inner();
    let resp = stream.message().await?.context("no reflection answer")?;
    resp.message_response.context("empty reflection answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflection_client_lists_services_and_calls_list_jobs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let dev = tokio::task::spawn_blocking(move || Dev::start(BIN.as_ref(), &data)).await??;
    let channel = tonic::transport::Endpoint::from_shared(dev.endpoint())?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await?;

    // v1: list services.
    let services = match ask_v1(
        channel.clone(),
        v1::server_reflection_request::MessageRequest::ListServices(String::new()),
    )
    .await?
    {
        v1::server_reflection_response::MessageResponse::ListServicesResponse(l) => {
            l.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
        }
        other => return Err(anyhow!("unexpected answer {other:?}")),
    };
    for want in [
        "kairos.v1.JobService",
        "kairos.v1.ExecutionService",
        "kairos.v1.ClusterService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.iter().any(|s| s == want),
            "{want} missing from {services:?}"
        );
    }

    // v1alpha (what grpcurl 1.8 speaks) lists them too.
    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let req = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut stream = alpha
        .server_reflection_info(tokio_stream::iter([req]))
        .await?
        .into_inner();
    let answer = stream.message().await?.context("no v1alpha answer")?;
    let alpha_services = match answer.message_response {
        Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(l)) => {
            l.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
        }
        other => return Err(anyhow!("unexpected v1alpha answer {other:?}")),
    };
    assert!(
        alpha_services.iter().any(|s| s == "kairos.v1.JobService"),
        "{alpha_services:?}"
    );
    assert!(
        alpha_services.iter().any(|s| s == "grpc.health.v1.Health"),
        "{alpha_services:?}"
    );

    // Fetch the file describing JobService, then (as any reflection client must) the
    // files it imports, by name, until nothing is missing.
    let first = match ask_v1(
        channel.clone(),
        v1::server_reflection_request::MessageRequest::FileContainingSymbol(
            "kairos.v1.JobService".into(),
        ),
    )
    .await?
    {
        v1::server_reflection_response::MessageResponse::FileDescriptorResponse(f) => {
            f.file_descriptor_proto
        }
        other => return Err(anyhow!("unexpected answer {other:?}")),
    };
    let mut protos: Vec<prost_types::FileDescriptorProto> = first
        .iter()
        .map(|b| prost_types::FileDescriptorProto::decode(b.as_slice()))
        .collect::<Result<_, _>>()?;
    for _ in 0..32 {
        let known: Vec<String> = protos.iter().map(|f| f.name().to_string()).collect();
        let Some(missing) = protos
            .iter()
            .flat_map(|f| f.dependency.iter())
            .find(|d| !known.contains(d))
            .cloned()
        else {
            break;
        };
        match ask_v1(
            channel.clone(),
            v1::server_reflection_request::MessageRequest::FileByFilename(missing.clone()),
        )
        .await?
        {
            v1::server_reflection_response::MessageResponse::FileDescriptorResponse(f) => {
                for b in f.file_descriptor_proto {
                    protos.push(prost_types::FileDescriptorProto::decode(b.as_slice())?);
                }
            }
            other => return Err(anyhow!("no descriptor for {missing}: {other:?}")),
        }
    }
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_protos(protos)?;
    let service = pool
        .get_service_by_name("kairos.v1.JobService")
        .context("JobService not described")?;
    let method = service
        .methods()
        .find(|m| m.name() == "ListJobs")
        .context("ListJobs not described")?;

    let mut request = DynamicMessage::new(method.input());
    request.set_field_by_name("page_size", Value::U32(10));
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let path = format!("/{}/{}", service.full_name(), method.name());
    let response = grpc
        .unary(
            tonic::Request::new(request),
            path.parse()?,
            DynamicCodec::new(method.output()),
        )
        .await?
        .into_inner();
    assert_eq!(
        response.descriptor().full_name(),
        "kairos.v1.ListJobsResponse"
    );
    let jobs = response
        .get_field_by_name("jobs")
        .context("no jobs field")?;
    assert_eq!(jobs.as_list().map(<[_]>::len), Some(0));
    Ok(())
}
