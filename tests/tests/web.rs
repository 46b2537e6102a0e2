//! The web app's HTTP side on a running coordinator: sign-in, roles and task pools on every
//! route, the annotate/undo/review flow through the JSON API, and the embedded assets.

use gloss_coordinator::access::Actor;
use std::net::SocketAddr;

use gloss_proto::v1::*;
use gloss_tests::{import, jsonl, start_node, Node};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request; returns status, headers (lowercased names) and body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String, String) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if !payload.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!(
        "Content-Length: {}\r\n\r\n{payload}",
        payload.len()
    ));
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    // Bodies come back chunked or with a length; chunked ones are decoded here.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        out
    } else {
        body.to_string()
    };
    (status, head.to_ascii_lowercase(), body)
}

struct Web {
    node: Node,
    addr: SocketAddr,
}

impl Web {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let token = (!token.is_empty()).then_some(token);
        let (status, _, body) = http(self.addr, method, path, token, body).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    async fn sign_in(&self, user: &str) -> String {
        let (status, v) = self
            .call(
                "POST",
                "/api/session",
                "",
                Some(json!({"user": user, "password": "password-1"})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v["token"].as_str().unwrap().to_string()
    }
}

/// A node with a project, two tasks (one open to a pool, one to a group) and four users.
async fn web() -> Web {
    let node = start_node().await;
    node.create_project("news").await;
    let body = "{\"text\":\"Alice Smith flew to Paris.\"}\n{\"text\":\"Bob works for Acme.\"}\n";
    import(&node.client, jsonl("news", "raw"), body.to_string())
        .await
        .unwrap();
    let service = node.coordinator.service().clone();
    for (name, role) in [
        ("ann", Role::Annotator),
        ("outsider", Role::Annotator),
        ("rev", Role::Reviewer),
        ("lead", Role::Manager),
        ("grouped", Role::Annotator),
    ] {
        service
            .create_user(&Actor::SYSTEM, name, "", vec![role as i32], "password-1")
            .await
            .unwrap();
    }
    // Roles held in one project only.
    for (name, project, role) in [
        ("rev-news", "news", Role::Reviewer),
        ("rev-other", "other", Role::Reviewer),
        ("lead-other", "other", Role::Manager),
    ] {
        let grant = ProjectRoles {
            project: project.into(),
            roles: vec![role as i32],
        };
        service
            .create_user_with(&Actor::SYSTEM, name, "", vec![], vec![grant], "password-1")
            .await
            .unwrap();
    }
    service
        .set_group(
            &Actor::SYSTEM,
            Group {
                project: "news".into(),
                name: "night".into(),
                members: vec!["grouped".into()],
            },
        )
        .await
        .unwrap();
    let mut sections = Task {
        project: "news".into(),
        name: "sections".into(),
        labels: vec!["A".into(), "B".into()],
        source_dataset: "raw".into(),
        overlap: 2,
        pool: vec!["ann".into(), "group:night".into()],
        ..Task::default()
    };
    sections.set_interface(Interface::Choice);
    service.create_task(&Actor::SYSTEM, sections).await.unwrap();
    let addr = node.coordinator.addrs().http;
    Web { node, addr }
}

/// `outsider` holds the annotator role but is not in the task's pool. Example 1 was handed out
/// and still has room (overlap 2), so only the pool stands between them and a late answer: the
/// state machine refuses it whichever way it comes, gRPC or the web app, and records nothing.
#[tokio::test]
async fn the_pool_holds_for_every_feed_command_over_grpc_and_the_web() {
    let w = web().await;
    let ann = w.sign_in("ann").await;
    let (status, v) = w
        .call(
            "POST",
            "/api/tasks/news/sections/next",
            &ann,
            Some(json!({"count": 1})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let outsider = w.sign_in("outsider").await;
    let grpc = w.node.client.clone().with_token(&outsider).unwrap();
    let answer = Answer {
        answer_id: "late-1".into(),
        project: "news".into(),
        task: "sections".into(),
        seq: 1,
        annotator: "outsider".into(),
        decision: Decision::Accept as i32,
        choices: vec!["A".into()],
        ..Answer::default()
    };
    let refused = |status: tonic::Status| {
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        assert!(
            status
                .message()
                .contains("outsider is not in the annotator pool of task news/sections"),
            "{status:?}"
        );
    };
    let mut feed = grpc.feed();
    refused(
        feed.submit_answer(SubmitRequest {
            answer: Some(answer.clone()),
        })
        .await
        .unwrap_err(),
    );
    refused(
        feed.revise_answer(SubmitRequest {
            answer: Some(answer.clone()),
        })
        .await
        .unwrap_err(),
    );
    refused(
        feed.undo_answer(UndoRequest {
            project: "news".into(),
            task: "sections".into(),
            annotator: "outsider".into(),
            seq: 1,
        })
        .await
        .unwrap_err(),
    );
    refused(
        feed.heartbeat(HeartbeatRequest {
            project: "news".into(),
            task: "sections".into(),
            annotator: "outsider".into(),
        })
        .await
        .unwrap_err(),
    );
    refused(
        feed.next_examples(NextRequest {
            project: "news".into(),
            task: "sections".into(),
            annotator: "outsider".into(),
            count: 1,
            ..Default::default()
        })
        .await
        .unwrap_err(),
    );
    let base = "/api/tasks/news/sections";
    let late = json!({"answer": {"answer_id": "late-2", "seq": 1, "decision": "DECISION_ACCEPT", "choices": ["A"]}});
    for (path, body) in [
        (format!("{base}/answers"), Some(late.clone())),
        (
            format!("{base}/answers"),
            Some(json!({"answer": late["answer"], "revise": true})),
        ),
        (format!("{base}/undo"), Some(json!({"seq": 1}))),
        (format!("{base}/heartbeat"), None),
        (format!("{base}/next"), Some(json!({"count": 1}))),
    ] {
        let (status, v) = w.call("POST", &path, &outsider, body).await;
        assert_eq!(status, 403, "{path}: {v}");
        assert_eq!(v["code"], "permission_denied", "{path}: {v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("outsider is not in the annotator pool"),
            "{path}: {v}"
        );
    }
    let progress = w
        .node
        .coordinator
        .service()
        .task_progress("news", "sections")
        .await
        .unwrap();
    assert_eq!(progress.answers, 0, "{progress:?}");
    // The pool's own member still answers the example as before.
    let (status, v) = w
        .call(
            "POST",
            &format!("{base}/answers"),
            &ann,
            Some(json!({"answer": {"answer_id": "a-1", "seq": 1, "decision": "DECISION_ACCEPT", "choices": ["A"]}})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn sign_in_needs_the_right_password_and_a_live_token() {
    let w = web().await;
    let (status, v) = w
        .call(
            "POST",
            "/api/session",
            "",
            Some(json!({"user": "ann", "password": "wrong-pass"})),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(v["error"], "unknown user name or wrong password");
    let (status, _) = w
        .call(
            "POST",
            "/api/session",
            "",
            Some(json!({"user": "nobody", "password": "password-1"})),
        )
        .await;
    assert_eq!(status, 401);

    let token = w.sign_in("ann").await;
    let (status, me) = w.call("GET", "/api/me", &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(me["name"], "ann");
    assert_eq!(me["roles"], json!(["annotator"]));

    // The token works for a token sign-in too, and stops working once signed out.
    let (status, _) = w
        .call("POST", "/api/session", "", Some(json!({"token": token})))
        .await;
    assert_eq!(status, 200);
    let (status, _) = w.call("DELETE", "/api/session", &token, None).await;
    assert_eq!(status, 204);
    let (status, v) = w.call("GET", "/api/me", &token, None).await;
    assert_eq!(status, 401, "{v}");

    // No token, a malformed one, a forged secret.
    assert_eq!(w.call("GET", "/api/tasks", "", None).await.0, 401);
    assert_eq!(w.call("GET", "/api/tasks", "nonsense", None).await.0, 401);
    let live = w.sign_in("ann").await;
    let forged = format!("{}0", &live[..live.len() - 1]);
    let forged = if forged == live {
        format!("{}1", &live[..live.len() - 1])
    } else {
        forged
    };
    assert_eq!(w.call("GET", "/api/tasks", &forged, None).await.0, 401);

    // Disabling a user revokes their tokens.
    w.node
        .coordinator
        .service()
        .update_user(
            &Actor::SYSTEM,
            UpdateUserRequest {
                name: "ann".into(),
                set_disabled: true,
                disabled: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(w.call("GET", "/api/me", &live, None).await.0, 401);
}

#[tokio::test]
async fn every_route_checks_the_callers_role_and_the_tasks_pool() {
    let w = web().await;
    let mut tokens = std::collections::HashMap::new();
    for name in [
        "ann",
        "outsider",
        "rev",
        "lead",
        "grouped",
        "rev-news",
        "rev-other",
        "lead-other",
    ] {
        tokens.insert(name, w.sign_in(name).await);
    }
    let base = "/api/tasks/news/sections";
    let next = Some(json!({"count": 1}));
    let answer = |id: &str| {
        Some(
            json!({"answer": {"answer_id": id, "seq": 1, "decision": "DECISION_ACCEPT", "choices": ["A"]}}),
        )
    };
    // (user, method, path, body, expected status)
    let cases: Vec<(&str, &str, String, Option<Value>, u16)> = vec![
        ("ann", "GET", "/api/tasks".into(), None, 200),
        ("ann", "GET", base.into(), None, 200),
        ("ann", "POST", format!("{base}/next"), next.clone(), 200),
        ("ann", "POST", format!("{base}/heartbeat"), None, 200),
        (
            "ann",
            "POST",
            format!("{base}/answers"),
            answer("a-ann"),
            200,
        ),
        // The route checks access first; this text example has no image to serve.
        ("ann", "GET", format!("{base}/examples/1/image"), None, 404),
        (
            "outsider",
            "GET",
            format!("{base}/examples/1/image"),
            None,
            403,
        ),
        ("ann", "GET", format!("{base}/review"), None, 403),
        ("ann", "GET", format!("{base}/progress"), None, 403),
        ("ann", "GET", "/api/dashboard".into(), None, 403),
        ("grouped", "POST", format!("{base}/next"), next.clone(), 200),
        ("outsider", "GET", base.into(), None, 403),
        (
            "outsider",
            "POST",
            format!("{base}/next"),
            next.clone(),
            403,
        ),
        (
            "outsider",
            "POST",
            format!("{base}/answers"),
            answer("a-out"),
            403,
        ),
        ("rev", "POST", format!("{base}/next"), next.clone(), 403),
        ("rev", "GET", format!("{base}/review"), None, 200),
        ("rev", "GET", format!("{base}/agreement"), None, 200),
        ("rev", "GET", "/api/dashboard".into(), None, 403),
        ("lead", "GET", "/api/dashboard".into(), None, 200),
        ("lead", "GET", format!("{base}/progress"), None, 200),
        ("lead", "POST", format!("{base}/next"), next.clone(), 403),
        ("rev-news", "GET", format!("{base}/review"), None, 200),
        ("rev-news", "GET", format!("{base}/agreement"), None, 200),
        (
            "rev-news",
            "POST",
            format!("{base}/next"),
            next.clone(),
            403,
        ),
        ("rev-news", "GET", "/api/dashboard".into(), None, 403),
        ("rev-other", "GET", format!("{base}/review"), None, 403),
        ("rev-other", "GET", format!("{base}/agreement"), None, 403),
        ("lead-other", "GET", format!("{base}/progress"), None, 403),
        ("lead-other", "GET", "/api/dashboard".into(), None, 200),
    ];
    for (user, method, path, body, want) in cases {
        let (status, v) = w.call(method, &path, &tokens[user], body).await;
        assert_eq!(status, want, "{user} {method} {path}: {v}");
        if want == 403 {
            assert!(
                v["error"].as_str().unwrap().contains(user),
                "{user} {path}: {v}"
            );
        }
    }
    // The task list shows annotators only the tasks whose pool admits them.
    let (_, v) = w.call("GET", "/api/tasks", &tokens["outsider"], None).await;
    assert_eq!(v["tasks"], json!([]));
    let (_, v) = w.call("GET", "/api/tasks", &tokens["grouped"], None).await;
    assert_eq!(v["tasks"][0]["name"], "sections");
    assert_eq!(v["tasks"][0]["can_annotate"], true);
    assert_eq!(v["tasks"][0]["can_review"], false);
    // A project's reviewer sees its tasks; another project's manager sees neither its tasks nor
    // its projects on the dashboard.
    let (_, v) = w.call("GET", "/api/tasks", &tokens["rev-news"], None).await;
    assert_eq!(v["tasks"][0]["can_review"], true, "{v}");
    let (_, v) = w
        .call("GET", "/api/tasks", &tokens["lead-other"], None)
        .await;
    assert_eq!(v["tasks"], json!([]));
    let (_, v) = w
        .call("GET", "/api/dashboard", &tokens["lead-other"], None)
        .await;
    assert!(!v.to_string().contains("sections"), "{v}");
    let (_, v) = w.call("GET", "/api/me", &tokens["rev-news"], None).await;
    assert_eq!(
        v["project_roles"],
        json!([{"project": "news", "roles": ["reviewer"]}])
    );
}

#[tokio::test]
async fn answers_through_the_web_api_are_idempotent_undoable_and_reviewable() {
    let w = web().await;
    let ann = w.sign_in("ann").await;
    let grouped = w.sign_in("grouped").await;
    let rev = w.sign_in("rev").await;
    let base = "/api/tasks/news/sections";
    let (status, next) = w
        .call(
            "POST",
            &format!("{base}/next"),
            &ann,
            Some(json!({"count": 2})),
        )
        .await;
    assert_eq!(status, 200, "{next}");
    let seqs: Vec<u64> = next["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(next["examples"][0]["text"], "Alice Smith flew to Paris.");

    // The annotator comes from the session, whatever the body claims.
    let body = json!({"answer": {"answer_id": "w-1", "seq": 1, "decision": "DECISION_ACCEPT", "choices": ["A"], "annotator": "lead"}});
    let (status, v) = w
        .call("POST", &format!("{base}/answers"), &ann, Some(body.clone()))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["answer"]["annotator"], "ann");
    assert_eq!(v["duplicate"], false);
    let (_, v) = w
        .call("POST", &format!("{base}/answers"), &ann, Some(body))
        .await;
    assert_eq!(
        v["duplicate"], true,
        "a retry with the same id is recorded once"
    );

    // Bad input names the problem.
    let bad = json!({"answer": {"answer_id": "w-2", "seq": 2, "decision": "DECISION_ACCEPT", "choices": ["Z"]}});
    let (status, v) = w
        .call("POST", &format!("{base}/answers"), &ann, Some(bad))
        .await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("example 2"), "{v}");
    let typo = json!({"answer": {"answer_id": "w-2", "seq": 2, "chioces": ["A"]}});
    let (status, v) = w
        .call("POST", &format!("{base}/answers"), &ann, Some(typo))
        .await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("chioces"), "{v}");

    // Undo gives the example back with the withdrawn answer.
    let (status, v) = w
        .call(
            "POST",
            &format!("{base}/undo"),
            &ann,
            Some(json!({"seq": 1})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["example"]["seq"], 1);
    assert_eq!(v["example"]["previous"]["choices"], json!(["A"]));
    let again = json!({"answer": {"answer_id": "w-3", "seq": 1, "decision": "DECISION_ACCEPT", "choices": ["A"]}});
    assert_eq!(
        w.call("POST", &format!("{base}/answers"), &ann, Some(again))
            .await
            .0,
        200
    );

    // A second annotator disagrees: the example goes to review, and the reviewer picks one.
    w.call(
        "POST",
        &format!("{base}/next"),
        &grouped,
        Some(json!({"count": 1})),
    )
    .await;
    let other = json!({"answer": {"answer_id": "g-1", "seq": 1, "decision": "DECISION_ACCEPT", "choices": ["B"]}});
    assert_eq!(
        w.call("POST", &format!("{base}/answers"), &grouped, Some(other))
            .await
            .0,
        200
    );
    let (status, q) = w.call("GET", &format!("{base}/review"), &rev, None).await;
    assert_eq!(status, 200, "{q}");
    assert_eq!(q["pending"], 1);
    let item = &q["items"][0];
    assert_eq!(item["seq"], 1);
    assert_eq!(item["answers"].as_array().unwrap().len(), 2);
    assert!(
        item["tokens"].as_array().unwrap().len() >= 5,
        "tokens for the editor: {item}"
    );
    let (status, gold) = w
        .call(
            "POST",
            &format!("{base}/review/1"),
            &rev,
            Some(json!({"answer_id": "g-1"})),
        )
        .await;
    assert_eq!(status, 200, "{gold}");
    assert_eq!(gold["answer"]["choices"], json!(["B"]));
    assert_eq!(gold["reviewer"], "rev");
    let (_, q) = w.call("GET", &format!("{base}/review"), &rev, None).await;
    assert_eq!(q["pending"], 0);
    let (status, v) = w
        .call(
            "POST",
            &format!("{base}/review/2"),
            &rev,
            Some(json!({"answer_id": "x", "edited": {}})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test]
async fn the_app_is_served_from_the_binary_with_a_strict_policy() {
    let w = web().await;
    let (status, head, body) = http(w.addr, "GET", "/", None, None).await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(body.contains("/assets/app.js"));
    let (status, head, _) = http(w.addr, "GET", "/app/annotate/news/sections", None, None).await;
    assert_eq!(status, 200, "app routes render the page: {head}");
    let (status, head, body) = http(w.addr, "GET", "/assets/lib/outbox.js", None, None).await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert!(body.contains("export class Outbox"));
    let (status, _, _) = http(w.addr, "GET", "/assets/nope.js", None, None).await;
    assert_eq!(status, 404);
}
