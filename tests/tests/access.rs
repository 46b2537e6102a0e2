//! Every public gRPC method against every role, over the real port: a caller without the role is
//! refused by the auth layer, a caller with it gets through (the call may still fail on its
//! empty request, but never for lack of rights); no token and a forged token are refused
//! everywhere; an annotator acts only as themselves.

use gloss_coordinator::access::Actor;
use gloss_coordinator::access::ROUTES;
use gloss_proto::v1::*;
use gloss_tests::start_node;
use tonic::codec::ProstCodec;
use tonic::metadata::MetadataValue;

/// Any request or reply: an empty message encodes to nothing and decodes from anything.
#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}

async fn call(addr: &str, path: &str, token: Option<&str>) -> tonic::Status {
    call_with(addr, path, token, Empty {}).await
}

/// `path` called with `body`, signed with `token`; the status it ends with.
async fn call_with<M: prost::Message + Send + Sync + 'static>(
    addr: &str,
    path: &str,
    token: Option<&str>,
    body: M,
) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(body);
    if let Some(t) = token {
        let v: MetadataValue<_> = format!("Bearer {t}").parse().unwrap();
        req.metadata_mut().insert("authorization", v);
    }
    let codec: ProstCodec<M, Empty> = ProstCodec::default();
    match grpc
        .unary(req, http::uri::PathAndQuery::try_from(path).unwrap(), codec)
        .await
    {
        Ok(_) => tonic::Status::ok(""),
        Err(s) => s,
    }
}

async fn matrix_token(s: &gloss_coordinator::Service, user: &str) -> String {
    s.issue_token(&Actor::SYSTEM, user, 0, "matrix")
        .await
        .unwrap()
        .token
}

/// `SignOut` revokes the token it is called with: the walk goes on with a new one.
async fn renew_after_sign_out(
    s: &gloss_coordinator::Service,
    method: &str,
    user: &str,
    token: &mut String,
) {
    if method == "UserService/SignOut" {
        *token = matrix_token(s, user).await;
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
        s.create_user(&Actor::SYSTEM, &name, "", vec![role as i32], "")
            .await
            .unwrap();
        tokens.push((role, name.clone(), matrix_token(&s, &name).await));
    }
    let mut checked = 0;
    for (method, roles, _) in ROUTES {
        let path = format!("/gloss.v1.{method}");
        for (role, name, token) in &mut tokens {
            let status = call(&addr, &path, Some(token)).await;
            let role = &*role;
            renew_after_sign_out(&s, method, name, token).await;
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
    let options = call(&addr, "/gloss.v1.UserService/GetSignInOptions", None).await;
    assert_eq!(options.code(), tonic::Code::Ok, "{options:?}");
    // Reaches the service, which says single sign-on is not configured here.
    let sso = call(&addr, "/gloss.v1.UserService/SignInWithOidc", None).await;
    assert_eq!(sso.code(), tonic::Code::FailedPrecondition, "{sso:?}");

    // The feed: an annotator acts as themselves only; the reviewer on record is the caller.
    let annotator = &tokens[3].2;
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
    s.create_user(&Actor::SYSTEM, "mia", "", vec![Role::Manager as i32], "")
        .await
        .unwrap();
    let mia_token = s
        .issue_token(&Actor::SYSTEM, "mia", 0, "ci")
        .await
        .unwrap()
        .token;
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

/// A request for `method` whose project field (`field`, a dotted path) holds `value` (an empty
/// request when `field` is empty).
fn request_naming(method: &str, field: &str, value: &str) -> prost_reflect::DynamicMessage {
    let pool = prost_reflect::DescriptorPool::decode(gloss_proto::FILE_DESCRIPTOR_SET).unwrap();
    let (service, name) = method.split_once('/').unwrap();
    let input = pool
        .get_service_by_name(&format!("gloss.v1.{service}"))
        .unwrap()
        .methods()
        .find(|m| m.name() == name)
        .unwrap()
        .input();
    let mut message = prost_reflect::DynamicMessage::new(input);
    if field.is_empty() {
        return message;
    }
    let mut at = &mut message;
    let mut parts = field.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            at.set_field_by_name(part, prost_reflect::Value::String(value.into()));
            break;
        }
        at = match at.get_field_by_name_mut(part).unwrap() {
            prost_reflect::Value::Message(m) => m,
            other => panic!("{method}: {part} is {other:?}"),
        };
    }
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_held_in_one_project_grants_exactly_that_project() {
    use gloss_coordinator::access::Scope;
    let node = start_node().await;
    let s = node.coordinator.service().clone();
    let addr = node.coordinator.addrs().grpc.to_string();
    // Two projects, each with a task and a queued job (no worker takes it).
    let mut jobs = Vec::new();
    for project in ["p1", "p2"] {
        s.create_project(&Actor::SYSTEM, project, "", String::new())
            .await
            .unwrap();
        gloss_tests::import(
            &node.client,
            gloss_tests::jsonl(project, "d"),
            "{\"text\":\"x\"}\n",
        )
        .await
        .unwrap();
        let mut task = Task {
            project: project.into(),
            name: "t".into(),
            labels: vec!["A".into(), "B".into()],
            source_dataset: "d".into(),
            ..Default::default()
        };
        task.set_interface(Interface::Choice);
        s.create_task(&Actor::SYSTEM, task).await.unwrap();
        let job = s
            .submit_job(
                &Actor::SYSTEM,
                SubmitJobRequest {
                    spec: Some(JobSpec {
                        kind: JobKind::Train as i32,
                        project: project.into(),
                        task: "t".into(),
                        ..Default::default()
                    }),
                    constraints: [("zone".to_string(), "none".to_string())].into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        jobs.push(job.id);
    }
    let mut tokens = Vec::new();
    for role in [Role::Manager, Role::Reviewer, Role::Annotator] {
        let name = format!("{}-in-p1", gloss_coordinator::users::role_name(role));
        s.create_user_with(
            &Actor::SYSTEM,
            &name,
            "",
            vec![],
            vec![ProjectRoles {
                project: "p1".into(),
                roles: vec![role as i32],
            }],
            "",
        )
        .await
        .unwrap();
        tokens.push((role, name.clone(), matrix_token(&s, &name).await));
    }
    let mut checked = 0;
    for (method, roles, scope) in ROUTES {
        let path = format!("/gloss.v1.{method}");
        for (role, name, token) in &mut tokens {
            let role = &*role;
            let may = roles.contains(role);
            let (own, other) = match scope {
                Scope::Cluster => (None, Some("")),
                Scope::Anywhere => (Some(""), None),
                Scope::Project(_) => (Some("p1"), Some("p2")),
                Scope::Model(_) => (Some("p1/t/tiny"), Some("p2/t/tiny")),
                Scope::Job(_) => (Some(jobs[0].as_str()), Some(jobs[1].as_str())),
            };
            let field = match scope {
                Scope::Project(f) | Scope::Model(f) | Scope::Job(f) => *f,
                Scope::Cluster | Scope::Anywhere => "",
            };
            let build = |value: &str| request_naming(method, field, value);
            if let Some(value) = own {
                let status = call_with(&addr, &path, Some(token), build(value)).await;
                renew_after_sign_out(&s, method, name, token).await;
                if may {
                    assert!(
                        !denied_by_role(&status),
                        "{role:?} in p1 must be granted {method} on {value:?}: {status:?}"
                    );
                } else {
                    assert!(
                        denied_by_role(&status),
                        "{role:?} in p1 must be denied {method} on {value:?}: {status:?}"
                    );
                }
                checked += 1;
            }
            if let Some(value) = other {
                let status = call_with(&addr, &path, Some(token), build(value)).await;
                assert!(
                    denied_by_role(&status),
                    "{role:?} in p1 must be denied {method} outside p1 ({value:?}): {status:?}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > ROUTES.len() * 3, "{checked} checks");
    // Admin is cluster-wide only.
    let err = s
        .create_user_with(
            &Actor::SYSTEM,
            "boss",
            "",
            vec![],
            vec![ProjectRoles {
                project: "p1".into(),
                roles: vec![Role::Admin as i32],
            }],
            "",
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("admin is cluster-wide"), "{err}");
}
