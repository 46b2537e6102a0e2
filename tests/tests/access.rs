//! Every public gRPC method against every role, over the real port: a caller without the role is
//! refused by the auth layer, a caller with it gets through (the call may still fail on its
//! empty request, but never for lack of rights); no token and a forged token are refused
//! everywhere; an annotator acts only as themselves.

use gloss_coordinator::access::ROUTES;
use gloss_proto::v1::*;
use gloss_tests::start_node;
use tonic::codec::ProstCodec;
use tonic::metadata::MetadataValue;

/// Any request or reply: an empty message encodes to nothing and decodes from anything.
#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}

async fn call(addr: &str, path: &str, token: Option<&str>) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(Empty {});
    if let Some(t) = token {
        let v: MetadataValue<_> = format!("Bearer {t}").parse().unwrap();
        req.metadata_mut().insert("authorization", v);
    }
    let codec: ProstCodec<Empty, Empty> = ProstCodec::default();
    match grpc
        .unary(req, http::uri::PathAndQuery::try_from(path).unwrap(), codec)
        .await
    {
        Ok(_) => tonic::Status::ok(""),
        Err(s) => s,
    }
}

fn denied_by_role(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::PermissionDenied && s.message().contains("needs the role")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_grants_exactly_the_roles_in_the_table() {
    let node = start_node().await;
    let s = node.coordinator.service().clone();
    let addr = node.coordinator.addrs().grpc.to_string();
    let mut tokens = Vec::new();
    for role in [Role::Admin, Role::Manager, Role::Reviewer, Role::Annotator] {
        let name = format!("{}-user", gloss_coordinator::users::role_name(role));
        s.create_user(&name, "", vec![role as i32], "")
            .await
            .unwrap();
        tokens.push((role, s.issue_token(&name, 0, "matrix").await.unwrap().token));
    }
    let mut checked = 0;
    for (method, roles) in ROUTES {
        let path = format!("/gloss.v1.{method}");
        for (role, token) in &tokens {
            let status = call(&addr, &path, Some(token)).await;
            let granted = *role == Role::Admin || roles.contains(role);
            assert_ne!(
                status.code(),
                tonic::Code::Unauthenticated,
                "{role:?} {method}: {status:?}"
            );
            if granted {
                assert!(
                    !denied_by_role(&status),
                    "{role:?} must be granted {method}: {status:?}"
                );
            } else {
                assert!(
                    denied_by_role(&status),
                    "{role:?} must be denied {method}: {status:?}"
                );
            }
            checked += 1;
        }
        let anonymous = call(&addr, &path, None).await;
        assert_eq!(
            anonymous.code(),
            tonic::Code::Unauthenticated,
            "{method} without a token"
        );
        let forged = call(&addr, &path, Some("glt_0000000000000000_00")).await;
        assert_eq!(
            forged.code(),
            tonic::Code::Unauthenticated,
            "{method} with a forged token"
        );
    }
    assert_eq!(checked, ROUTES.len() * 4);

    // Health, reflection and signing in need no token.
    let health = call(&addr, "/grpc.health.v1.Health/Check", None).await;
    assert_eq!(health.code(), tonic::Code::Ok, "{health:?}");

    // The feed: an annotator acts as themselves only; the reviewer on record is the caller.
    let annotator = &tokens[3].1;
    let client = gloss_client::Client::connect(std::slice::from_ref(&addr))
        .await
        .unwrap()
        .with_token(annotator)
        .unwrap();
    let err = client
        .feed()
        .next_examples(NextRequest {
            project: "p".into(),
            task: "t".into(),
            annotator: "someone-else".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message()
            .contains("cannot act as annotator \"someone-else\""),
        "{}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_records_who_changed_exported_and_issued_what() {
    let node = start_node().await;
    let s = node.coordinator.service().clone();
    let addr = node.coordinator.addrs().grpc.to_string();
    s.create_user("mia", "", vec![Role::Manager as i32], "")
        .await
        .unwrap();
    let mia_token = s.issue_token("mia", 0, "ci").await.unwrap().token;
    let mia = gloss_client::Client::connect(std::slice::from_ref(&addr))
        .await
        .unwrap()
        .with_token(&mia_token)
        .unwrap();
    mia.projects()
        .create_project(CreateProjectRequest {
            name: "audited".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    gloss_tests::import(
        &mia,
        gloss_tests::jsonl("audited", "raw"),
        "{\"text\":\"a\"}\n",
    )
    .await
    .unwrap();
    gloss_tests::export(&mia, "audited", "raw").await;
    // Admin-only: mia cannot read the log; the admin can.
    let denied = gloss_proto::v1::audit_service_client::AuditServiceClient::new(mia.channel())
        .list_audit(ListAuditRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let events =
        gloss_proto::v1::audit_service_client::AuditServiceClient::new(node.client.channel())
            .list_audit(ListAuditRequest::default())
            .await
            .unwrap()
            .into_inner()
            .events;
    let seen: Vec<(String, String, String)> = events
        .iter()
        .map(|e| (e.actor.clone(), e.action.clone(), e.target.clone()))
        .collect();
    let has = |actor: &str, action: &str, target: &str| {
        seen.iter()
            .any(|(a, b, c)| a == actor && b == action && c == target)
    };
    assert!(has("mia", "create_project", "audited"), "{seen:?}");
    assert!(
        has("mia", "create_dataset", "audited/raw") || has("mia", "import", "import 1"),
        "{seen:?}"
    );
    assert!(has("mia", "export_dataset", "audited/raw"), "{seen:?}");
    assert!(
        seen.iter()
            .any(|(_, b, c)| b == "issue_token" && c.starts_with("token ")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(_, b, c)| b == "create_user" && c == "user mia"),
        "{seen:?}"
    );
    // Append-only, in log order.
    assert!(events
        .windows(2)
        .all(|w| w[0].seq < w[1].seq && w[0].at_ms <= w[1].at_ms));
    let after = events[1].seq;
    let tail =
        gloss_proto::v1::audit_service_client::AuditServiceClient::new(node.client.channel())
            .list_audit(ListAuditRequest {
                after_seq: after,
                limit: 2,
            })
            .await
            .unwrap()
            .into_inner()
            .events;
    assert_eq!(
        tail.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![after + 1, after + 2]
    );
}
