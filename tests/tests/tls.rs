//! TLS: a coordinator group with `--tls-dir` runs Raft and its workers over mutual TLS, serves
//! its public gRPC and HTTP ports over TLS, and refuses plain connections and certificates that
//! the cluster's CA did not sign.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use gloss_client::Client;
use gloss_core::config::Overrides;
use gloss_proto::v1::job_service_client::JobServiceClient;
use gloss_proto::v1::{ListDatasetsRequest, ListProjectsRequest, ListWorkersRequest};
use gloss_tests::{connect, start_group};
use gloss_tls::{ClientTls, TlsDir};

const JOIN_TOKEN: &str = "tls-test-join-token";

/// Lists datasets through `client` (on the internal port: no role check, only mTLS).
async fn internal_call(client: &Client) -> Result<(), String> {
    client
        .datasets()
        .list_datasets(ListDatasetsRequest {
            project: "over-tls".into(),
        })
        .await
        .map(|_| ())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

/// `curl` exit status and body for `url`, checking the server against `ca` when given.
fn curl(url: &str, ca: Option<&Path>) -> (bool, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "5", url]);
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    let out = cmd.output().expect("curl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tls_group_serves_over_tls_and_refuses_plain_and_foreign_peers() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    gloss_tls::generate(&certs, &["localhost".into(), "127.0.0.1".into()]).unwrap();
    let join = dir.path().join("join-token");
    std::fs::write(&join, JOIN_TOKEN).unwrap();
    let nodes = start_group(dir.path(), 3, None, |_| Overrides {
        tls_dir: Some(certs.clone()),
        join_token_file: Some(join.clone()),
        ..Overrides::default()
    })
    .await;
    let ca = certs.join(gloss_tls::CA_FILE);

    // Raft replicates over mutual TLS, and a follower forwards a write to the leader over it.
    let leader = nodes[0].status().await.leader_id;
    let follower = nodes
        .iter()
        .find(|n| Some(n.id()) != leader)
        .expect("a follower");
    follower.create_project("over-tls").await;
    for node in &nodes {
        let mut seen = false;
        for _ in 0..50 {
            if node.project_names().await.contains(&"over-tls".to_string()) {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(seen, "node {} has the project written over TLS", node.id());
    }

    // The public gRPC port: TLS with the CA works; plain HTTP/2 does not.
    let grpc = nodes[0].coordinator.addrs().grpc.to_string();
    let tls_client = gloss_tests::connect_tls(std::slice::from_ref(&grpc), &ca)
        .await
        .unwrap();
    tls_client
        .projects()
        .list_projects(ListProjectsRequest {})
        .await
        .expect("a TLS client is served");
    let plain = match connect(std::slice::from_ref(&grpc)).await {
        Ok(c) => c
            .projects()
            .list_projects(ListProjectsRequest {})
            .await
            .map(|_| ()),
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    assert!(plain.is_err(), "a plain client must not be served");

    // The internal port requires a certificate signed by the cluster CA.
    let raft = nodes[0].coordinator.addrs().raft.to_string();
    let node_tls = TlsDir::load(&certs).unwrap().internal_client();
    let member = Client::connect_with(std::slice::from_ref(&raft), Some(node_tls.clone()))
        .await
        .unwrap();
    internal_call(&member)
        .await
        .expect("a node certificate is let in");
    let ca_only = ClientTls::from_ca_file(&ca).unwrap();
    let anonymous = match Client::connect_with(std::slice::from_ref(&raft), Some(ca_only)).await {
        Ok(c) => internal_call(&c).await,
        Err(e) => Err(e.to_string()),
    };
    assert!(anonymous.is_err(), "no client certificate: refused");
    let other = dir.path().join("other-ca");
    gloss_tls::generate(&other, &["localhost".into(), "127.0.0.1".into()]).unwrap();
    // A certificate from another CA, checking the server against our CA so that only the
    // server's judgement of the client certificate is tested.
    let mixed = dir.path().join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    std::fs::copy(&ca, mixed.join(gloss_tls::CA_FILE)).unwrap();
    for name in [gloss_tls::CERT_FILE, gloss_tls::KEY_FILE] {
        std::fs::copy(other.join(name), mixed.join(name)).unwrap();
    }
    let foreign_tls = TlsDir::load(&mixed).unwrap().internal_client();
    let foreign = match Client::connect_with(std::slice::from_ref(&raft), Some(foreign_tls)).await {
        Ok(c) => internal_call(&c).await,
        Err(e) => Err(e.to_string()),
    };
    assert!(foreign.is_err(), "a certificate from another CA: refused");
    let plain_internal = match Client::connect(std::slice::from_ref(&raft)).await {
        Ok(c) => internal_call(&c).await,
        Err(e) => Err(e.to_string()),
    };
    assert!(
        plain_internal.is_err(),
        "plain TCP on the internal port: refused"
    );

    // A worker joins over mutual TLS.
    let args = gloss_worker::worker::WorkerArgs {
        coordinator: nodes
            .iter()
            .map(|n| n.coordinator.addrs().raft.to_string())
            .collect(),
        join_token_file: None,
        name: Some("tls-worker".into()),
        labels: vec![],
        gpus: None,
        cpus: Some(1.0),
        memory: Some("1GiB".into()),
        work_dir: dir.path().join("work"),
        models_dir: dir.path().join("models"),
        teachers: None,
        tls_dir: Some(certs.clone()),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(async move {
        let mut rx = stopped;
        gloss_worker::worker::run(args, JOIN_TOKEN.into(), async move {
            let _ = rx.wait_for(|s| *s).await;
        })
        .await
    });
    let mut jobs = JobServiceClient::new(tls_client.channel());
    let mut listed = false;
    for _ in 0..100 {
        let workers = jobs
            .list_workers(ListWorkersRequest {})
            .await
            .unwrap()
            .into_inner()
            .workers;
        if workers.iter().any(|w| w.name == "tls-worker") {
            listed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(listed, "the worker registered over mutual TLS");
    let _ = stop.send(true);
    worker.await.unwrap().unwrap();

    // The HTTP port serves HTTPS checked against the CA, and nothing in plain HTTP.
    let http = nodes[0].coordinator.addrs().http;
    let (ok, body) = curl(
        &format!("https://127.0.0.1:{}/healthz", http.port()),
        Some(&ca),
    );
    assert!(ok && body == "ok\n", "https /healthz: {ok} {body:?}");
    let (ok, _) = curl(
        &format!("https://localhost:{}/readyz", http.port()),
        Some(&ca),
    );
    assert!(ok, "the certificate names localhost too");
    let (ok, _) = curl(&format!("http://127.0.0.1:{}/healthz", http.port()), None);
    assert!(!ok, "plain HTTP must not be served");
    let (ok, _) = curl(&format!("https://127.0.0.1:{}/healthz", http.port()), None);
    assert!(
        !ok,
        "a client without the CA does not trust the certificate"
    );
}
