//! `grpcurl list` / `describe` work because reflection and health are served.

use gloss_tests::start_node;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

async fn ask(addr: &str, request: MessageRequest) -> MessageResponse {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut replies = client
        .server_reflection_info(futures::stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    replies
        .message()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
}

#[tokio::test]
async fn reflection_lists_gloss_services_and_health() {
    let node = start_node().await;
    let addr = node.coordinator.addrs().grpc.to_string();
    let MessageResponse::ListServicesResponse(list) =
        ask(&addr, MessageRequest::ListServices(String::new())).await
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "gloss.v1.ClusterService",
        "gloss.v1.ProjectService",
        "gloss.v1.DatasetService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    // `describe` needs the files, with their comments.
    let MessageResponse::FileDescriptorResponse(files) = ask(
        &addr,
        MessageRequest::FileContainingSymbol("gloss.v1.DatasetService".into()),
    )
    .await
    else {
        panic!("expected file descriptors");
    };
    let all: Vec<u8> = files.file_descriptor_proto.concat();
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("ImportExamples"));
    assert!(
        text.contains("Stream a file into a dataset"),
        "comments are part of the descriptors"
    );
}
