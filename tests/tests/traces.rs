//! Traces: `glossctl`, a coordinator and a worker, each its own process, export spans over OTLP
//! to a receiver on loopback. One import and one job arrive as connected traces: the client's
//! span → the coordinator's request span → its Raft write; and the submit request → the worker's
//! job span → the worker's calls back into the coordinator.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gloss_tests::{free_port, seed_choice_gold, NodeProcess, WorkerProcess, ADMIN_TOKEN};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_gloss-under-test");

/// One received span, flattened.
#[derive(Clone, Debug)]
struct Span {
    service: String,
    name: String,
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Vec<u8>,
    attributes: HashMap<String, String>,
}

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| text(&a.value))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push(Span {
                        service: service.clone(),
                        name: s.name,
                        trace: s.trace_id,
                        id: s.span_id,
                        parent: s.parent_span_id,
                        attributes: s
                            .attributes
                            .iter()
                            .map(|a| (a.key.clone(), text(&a.value)))
                            .collect(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    /// Waits until a span matching `want` has arrived.
    async fn wait_for(&self, what: &str, want: impl Fn(&Span) -> bool) -> Span {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.spans.lock().unwrap().iter().find(|s| want(s)) {
                return s.clone();
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = self
                    .spans
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|s| format!("{}:{}", s.service, s.name))
                    .collect();
                panic!("no span {what} arrived; got {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn glossctl() -> PathBuf {
    let path = Path::new(BINARY).with_file_name("glossctl");
    assert!(
        path.exists(),
        "{} is missing: build the workspace (cargo test --workspace builds it)",
        path.display()
    );
    path
}

fn run_glossctl(grpc: u16, args: &[&str]) -> String {
    let out = std::process::Command::new(glossctl())
        .args([
            "--server",
            &format!("127.0.0.1:{grpc}"),
            "--token",
            ADMIN_TOKEN,
        ])
        .args(args)
        .output()
        .expect("glossctl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "glossctl {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_an_import_and_a_job_arrive_with_their_parent_links() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    // Every process started below inherits these: export to the receiver, in small batches.
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"));
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "200");

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("join-token");
    std::fs::write(&token, "trace-test-join-token-0123456789").unwrap();
    let (grpc, http, raft) = (free_port(), free_port(), free_port());
    let extra = ["--join-token-file".to_string(), token.display().to_string()];
    let node = NodeProcess::start_with(BINARY, &dir.path().join("c1"), grpc, http, raft, &extra);
    let client = node.ready(Duration::from_secs(30)).await;
    seed_choice_gold(&client, 60).await;
    let raft_addr = std::net::SocketAddr::from(([127, 0, 0, 1], raft));
    let _worker = WorkerProcess::start(BINARY, dir.path(), "tracer", raft_addr, &token);

    // 1. An import: glossctl → DatasetService/Import → raft.write.
    let data = dir.path().join("news.jsonl");
    std::fs::write(&data, "{\"text\":\"one\"}\n{\"text\":\"two\"}\n").unwrap();
    run_glossctl(grpc, &["project", "create", "news"]);
    run_glossctl(
        grpc,
        &["dataset", "import", "news/raw", data.to_str().unwrap()],
    );
    let cli = receiver
        .wait_for("glossctl dataset import", |s| {
            s.service == "glossctl" && s.name == "glossctl dataset import"
        })
        .await;
    assert!(
        cli.parent.is_empty(),
        "the command's span is the trace's root"
    );
    let import = receiver
        .wait_for("Import under the command", |s| {
            s.service == "gloss"
                && s.name == "gloss.v1.DatasetService/ImportExamples"
                && s.parent == cli.id
        })
        .await;
    assert_eq!(import.trace, cli.trace);
    assert_eq!(
        import.attributes.get("rpc.system").map(String::as_str),
        Some("grpc")
    );
    receiver
        .wait_for("raft.write under Import", |s| {
            s.name == "raft.write" && s.parent == import.id && s.trace == cli.trace
        })
        .await;

    // 2. A job: glossctl → JobService/SubmitJob → the worker's job.run → its reports.
    // `--wait` exits non-zero unless the job succeeded.
    run_glossctl(
        grpc,
        &[
            "job",
            "submit",
            "train",
            "films/polarity",
            "--config",
            r#"{"epochs": 2, "patience": 2}"#,
            "--wait",
        ],
    );
    let cli = receiver
        .wait_for("glossctl job submit", |s| {
            s.service == "glossctl" && s.name == "glossctl job submit"
        })
        .await;
    let submit = receiver
        .wait_for("SubmitJob under the command", |s| {
            s.name == "gloss.v1.JobService/SubmitJob" && s.parent == cli.id
        })
        .await;
    let job = receiver
        .wait_for("the worker's job.run under SubmitJob", |s| {
            s.service == "gloss-worker" && s.name == "job.run" && s.parent == submit.id
        })
        .await;
    assert_eq!(job.trace, cli.trace, "the job joins the submitting trace");
    assert_eq!(
        job.attributes.get("job.attempt").map(String::as_str),
        Some("1")
    );
    let finish = receiver
        .wait_for("FinishJob under job.run", |s| {
            s.service == "gloss"
                && s.name == "gloss.v1.WorkerService/FinishJob"
                && s.parent == job.id
        })
        .await;
    assert_eq!(finish.trace, cli.trace);
    // The worker's reads of the task and its gold data are part of the job too.
    receiver
        .wait_for("a worker call on the task under job.run", |s| {
            s.service == "gloss"
                && s.name.starts_with("gloss.v1.TaskService/")
                && s.parent == job.id
        })
        .await;
    // Heartbeats carry no trace context and make no spans.
    assert!(
        !receiver
            .spans
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.name.ends_with("/Heartbeat") || s.name.ends_with("/AppendEntries")),
        "untraced internal calls make no spans"
    );
}
