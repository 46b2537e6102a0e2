//! Test harness for Gloss: start coordinators in-process on loopback port 0, or as child
//! processes that tests can `kill -9`, and talk to them with the real client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gloss_client::Client;
use gloss_coordinator::Coordinator;
pub use gloss_coordinator::Faults;
use gloss_core::config::{Config, Overrides};
use gloss_proto::v1::{ImportFormat, ImportHeader, ImportSummary};

/// A coordinator running inside the test process.
pub struct Node {
    pub coordinator: Coordinator,
    pub client: Client,
    _dir: Option<tempfile::TempDir>,
}

impl Node {
    /// This coordinator's node id.
    pub fn id(&self) -> u64 {
        self.coordinator.service().node_id()
    }

    /// Cluster status as this node answers it.
    pub async fn status(&self) -> gloss_proto::v1::ClusterStatus {
        let req = gloss_proto::v1::GetClusterStatusRequest {};
        self.client
            .cluster()
            .get_cluster_status(req)
            .await
            .expect("cluster status")
            .into_inner()
    }

    /// Creates a project through this node.
    pub async fn create_project(&self, name: &str) {
        let req = gloss_proto::v1::CreateProjectRequest {
            name: name.into(),
            ..Default::default()
        };
        self.client
            .projects()
            .create_project(req)
            .await
            .expect("project created");
    }

    /// One dataset as this node reads it.
    pub async fn dataset(&self, project: &str, name: &str) -> gloss_proto::v1::Dataset {
        let req = gloss_proto::v1::GetDatasetRequest {
            project: project.into(),
            name: name.into(),
        };
        self.client
            .datasets()
            .get_dataset(req)
            .await
            .expect("dataset exists")
            .into_inner()
    }

    /// Names of every project as this node reads them.
    pub async fn project_names(&self) -> Vec<String> {
        project_names(&self.client).await
    }
}

/// Names of every project, read through `client`.
pub async fn project_names(client: &Client) -> Vec<String> {
    let req = gloss_proto::v1::ListProjectsRequest {};
    let list = client
        .projects()
        .list_projects(req)
        .await
        .expect("projects listed");
    list.into_inner()
        .projects
        .into_iter()
        .map(|p| p.name)
        .collect()
}

/// `n` JSONL records `{"text":"<prefix> <i>"}`, one per line.
pub fn records(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"text\":\"{prefix} {i}\"}}\n"))
        .collect()
}

/// The first administrator's token of every sandbox cluster (configured, not generated).
pub const ADMIN_TOKEN: &str = "sandbox-admin-token-0123456789";

/// A client of `servers` signed with [`ADMIN_TOKEN`].
pub async fn connect(servers: &[String]) -> Result<Client, gloss_client::ClientError> {
    Client::connect(servers).await?.with_token(ADMIN_TOKEN)
}

/// [`connect`] over TLS, checking the server against the CA certificate `ca`.
pub async fn connect_tls(
    servers: &[String],
    ca: &Path,
) -> Result<Client, gloss_client::ClientError> {
    let tls = gloss_tls::ClientTls::from_ca_file(ca).expect("CA certificate loads");
    Client::connect_with(servers, Some(tls))
        .await?
        .with_token(ADMIN_TOKEN)
}

/// Starts a single-node coordinator in a fresh temporary directory, with its administrator.
pub async fn start_node() -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = start_node_in(dir.path(), Overrides::default()).await;
    node._dir = Some(dir);
    node
}

/// Starts a single-node coordinator on `data_dir` with extra settings.
pub async fn start_node_in(data_dir: &Path, extra: Overrides) -> Node {
    start_node_with(data_dir, extra, None).await
}

/// Starts `n` coordinators forming one group under `dir`, sharing `faults`; `extra` adds
/// settings for node `id`.
pub async fn start_group(
    dir: &Path,
    n: u64,
    faults: Option<Faults>,
    extra: impl Fn(u64) -> Overrides,
) -> Vec<Node> {
    let mut nodes = Vec::new();
    for (id, base) in (1..).zip(gloss_core::loopback::loopback_group(dir, n)) {
        let data_dir = dir.join(format!("n{id}"));
        nodes.push(start_node_with(&data_dir, extra(id).over(base), faults.clone()).await);
    }
    nodes[0]
        .coordinator
        .ensure_admin(Duration::from_secs(30))
        .await
        .expect("the first administrator is created");
    nodes
}

/// Starts a coordinator on `data_dir` with extra settings and injected network faults.
pub async fn start_node_with(data_dir: &Path, extra: Overrides, faults: Option<Faults>) -> Node {
    let any: Option<SocketAddr> = "127.0.0.1:0".parse().ok();
    let defaults = Overrides {
        data_dir: Some(data_dir.to_path_buf()),
        listen: any,
        http: any,
        raft_listen: any,
        ..Overrides::default()
    };
    std::fs::create_dir_all(data_dir).expect("data dir");
    let token_file = data_dir.join("admin-token");
    std::fs::write(&token_file, ADMIN_TOKEN).expect("admin token file");
    let defaults = Overrides {
        admin_token_file: Some(token_file),
        ..defaults
    };
    let config = Config::resolve(extra.over(defaults)).expect("valid test config");
    let options = gloss_coordinator::StartOptions {
        faults,
        http_routes: Some(gloss_web::router),
    };
    let coordinator = Coordinator::start_with(&config, options)
        .await
        .expect("coordinator starts");
    // A single-node group has a leader at once: make sure its administrator exists (a member of
    // a bigger group waits for the others; start_group does it once they are all up).
    if config.initial_members.is_empty() && !config.join {
        coordinator
            .ensure_admin(Duration::from_secs(20))
            .await
            .expect("the first administrator is created");
    }
    let servers = [coordinator.addrs().grpc.to_string()];
    let client = match &config.tls_dir {
        Some(dir) => connect_tls(&servers, &dir.join(gloss_tls::CA_FILE)).await,
        None => connect(&servers).await,
    }
    .expect("client connects");
    Node {
        coordinator,
        client,
        _dir: None,
    }
}

/// Header of a JSONL import into `project/dataset`, creating the dataset.
pub fn jsonl(project: &str, dataset: &str) -> ImportHeader {
    ImportHeader {
        project: project.into(),
        dataset: dataset.into(),
        format: ImportFormat::Jsonl as i32,
        create_dataset: true,
        source_name: "test".into(),
        ..ImportHeader::default()
    }
}

/// Imports `body` through the real client.
pub async fn import(
    client: &Client,
    header: ImportHeader,
    body: impl Into<Vec<u8>>,
) -> Result<ImportSummary, gloss_client::ClientError> {
    client
        .import(header, std::io::Cursor::new(body.into()), |_| {})
        .await
}

/// Exports a dataset to a string through the real client.
pub async fn export(client: &Client, project: &str, dataset: &str) -> String {
    let mut out = Vec::new();
    client
        .export(project, dataset, &mut out, |_, _| {})
        .await
        .expect("export succeeds");
    String::from_utf8(out).expect("export is UTF-8")
}

pub use gloss_core::loopback::free_port;

/// A `gloss` coordinator running as a child process.
pub struct NodeProcess {
    child: Child,
    pub grpc: SocketAddr,
    pub log: PathBuf,
}

impl NodeProcess {
    /// Starts `binary up` on `data_dir` with the given ports, logging to `data_dir/../node.log`.
    pub fn start(binary: &str, data_dir: &Path, grpc: u16, http: u16, raft: u16) -> NodeProcess {
        Self::start_with(binary, data_dir, grpc, http, raft, &[])
    }

    /// Like [`NodeProcess::start`], with extra command-line arguments.
    pub fn start_with(
        binary: &str,
        data_dir: &Path,
        grpc: u16,
        http: u16,
        raft: u16,
        extra: &[String],
    ) -> NodeProcess {
        let log = data_dir.with_extension("log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        std::fs::create_dir_all(data_dir).expect("data dir");
        let token_file = data_dir.join("admin-token");
        std::fs::write(&token_file, ADMIN_TOKEN).expect("admin token file");
        let child = Command::new(binary)
            .arg("up")
            .arg("--admin-token-file")
            .arg(&token_file)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{grpc}")])
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(["--raft-listen", &format!("127.0.0.1:{raft}")])
            .args(["--import-batch", "500"])
            .arg("--no-worker")
            .args(extra)
            .env("GLOSS_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("gloss starts");
        NodeProcess {
            child,
            grpc: SocketAddr::from(([127, 0, 0, 1], grpc)),
            log,
        }
    }

    /// Waits until the node answers a linearizable read, then returns a client.
    pub async fn ready(&self, timeout: Duration) -> Client {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(client) = connect(&[self.grpc.to_string()]).await {
                let ok = client
                    .projects()
                    .list_projects(gloss_proto::v1::ListProjectsRequest {})
                    .await
                    .is_ok();
                if ok {
                    return client;
                }
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!(
                    "node at {} not ready within {timeout:?}; log:\n{log}",
                    self.grpc
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`.
    pub fn kill9(mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `gloss worker` running as a child process.
pub struct WorkerProcess {
    child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl WorkerProcess {
    /// Starts `binary worker` against the coordinator's internal address `raft`.
    pub fn start(
        binary: &str,
        dir: &Path,
        name: &str,
        raft: SocketAddr,
        token_file: &Path,
    ) -> WorkerProcess {
        let log = dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).expect("worker log file");
        let child = Command::new(binary)
            .arg("worker")
            .args(["--coordinator", &raft.to_string()])
            .arg("--join-token-file")
            .arg(token_file)
            .args(["--name", name, "--cpus", "1", "--memory", "2GiB"])
            .arg("--work-dir")
            .arg(dir.join(name))
            .env("GLOSS_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("worker starts");
        WorkerProcess {
            child,
            name: name.into(),
            log,
        }
    }

    /// The process id (for SIGSTOP/SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`STOP`, `CONT`) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// `kill -9`.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Project `films` with dataset `reviews` of `n` texts and a choice task `polarity` (POS/NEG,
/// overlap 1) where annotator `ann` answered every example, so each is a gold record. The label
/// follows the team's own convention (the code word `zorblax` or `quintor` in the text), not
/// the sentiment words, which are independent of it: a student learns it from the gold records,
/// a zero-shot teacher cannot know it.
pub async fn seed_choice_gold(client: &Client, n: usize) {
    client
        .projects()
        .create_project(gloss_proto::v1::CreateProjectRequest {
            name: "films".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let body: String = (0..n)
        .map(|i| {
            let words = if (i / 2) % 2 == 0 {
                "a wonderful moving film"
            } else {
                "an awful boring mess"
            };
            let code = if i % 2 == 0 { "zorblax" } else { "quintor" };
            format!("{{\"text\":\"{words}, filed under {code}, review number {i}\"}}\n")
        })
        .collect();
    import(client, jsonl("films", "reviews"), body)
        .await
        .unwrap();
    create_task(
        client,
        "films/polarity",
        "reviews",
        gloss_proto::v1::Interface::Choice,
        &["POS", "NEG"],
    )
    .await;
    let answered = answer_all(client, "films/polarity", "ann", |ex| {
        let label = if ex.text.contains("zorblax") {
            "POS"
        } else {
            "NEG"
        };
        gloss_proto::v1::Answer {
            decision: gloss_proto::v1::Decision::Accept as i32,
            choices: vec![label.into()],
            ..Default::default()
        }
    })
    .await;
    assert_eq!(answered, n);
}

/// A labelled span in code points; the coordinator fills in its tokens and text.
pub fn span(start: u32, end: u32, label: &str) -> gloss_proto::v1::Span {
    gloss_proto::v1::Span {
        start,
        end,
        label: label.into(),
        ..Default::default()
    }
}

/// Creates task `task` (`PROJECT/TASK`) over `dataset` with `labels` (overlap 1).
pub async fn create_task(
    client: &Client,
    task: &str,
    dataset: &str,
    interface: gloss_proto::v1::Interface,
    labels: &[&str],
) {
    let (project, name) = task.split_once('/').expect("PROJECT/TASK");
    let mut task = gloss_proto::v1::Task {
        project: project.into(),
        name: name.into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        source_dataset: dataset.into(),
        ..Default::default()
    };
    task.set_interface(interface);
    client
        .tasks()
        .create_task(gloss_proto::v1::CreateTaskRequest { task: Some(task) })
        .await
        .unwrap();
}

/// Up to `count` examples of `task` (`PROJECT/TASK`) leased to `annotator`.
pub async fn next_examples(
    client: &Client,
    task: &str,
    annotator: &str,
    count: u32,
) -> Vec<gloss_proto::v1::LeasedExample> {
    let (project, task) = task.split_once('/').expect("PROJECT/TASK");
    client
        .feed()
        .next_examples(gloss_proto::v1::NextRequest {
            project: project.into(),
            task: task.into(),
            annotator: annotator.into(),
            count,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .examples
}

/// Answers every example of `task` as `annotator` (`answer` fills in the decision and its
/// choices or spans), until the feed has nothing left; returns how many were answered.
pub async fn answer_all(
    client: &Client,
    task: &str,
    annotator: &str,
    mut answer: impl FnMut(&gloss_proto::v1::LeasedExample) -> gloss_proto::v1::Answer,
) -> usize {
    let (project, name) = task.split_once('/').expect("PROJECT/TASK");
    let mut answered = 0;
    loop {
        let batch = next_examples(client, task, annotator, 50).await;
        if batch.is_empty() {
            return answered;
        }
        for ex in batch {
            let answer = gloss_proto::v1::Answer {
                answer_id: format!("{annotator}-{}", ex.seq),
                project: project.into(),
                task: name.into(),
                seq: ex.seq,
                annotator: annotator.into(),
                ..answer(&ex)
            };
            client
                .feed()
                .submit_answer(gloss_proto::v1::SubmitRequest {
                    answer: Some(answer),
                })
                .await
                .unwrap();
            answered += 1;
        }
    }
}

/// The join token of [`node_with_gold`]'s cluster, for workers started in tests.
pub const JOIN_TOKEN: &str = "join-token-for-tests-0123456789";

/// A single node accepting workers with [`JOIN_TOKEN`].
pub async fn node_for_workers(dir: &Path) -> Node {
    let token_file = dir.join("join-token");
    std::fs::write(&token_file, JOIN_TOKEN).expect("join token file");
    start_node_in(
        &dir.join("data"),
        Overrides {
            join_token_file: Some(token_file),
            ..Overrides::default()
        },
    )
    .await
}

/// A single node accepting workers with [`JOIN_TOKEN`], holding `n` gold records of the
/// `films/polarity` choice task ([`seed_choice_gold`]).
pub async fn node_with_gold(dir: &Path, n: usize) -> Node {
    let node = node_for_workers(dir).await;
    seed_choice_gold(&node.client, n).await;
    node
}

/// Polls job `id` until `done` holds (two minutes at most).
pub async fn wait_for_job(
    service: &gloss_coordinator::Service,
    id: &str,
    what: &str,
    done: impl Fn(&gloss_proto::v1::Job) -> bool,
) -> gloss_proto::v1::Job {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = service.get_job(id).await.expect("job exists");
        if done(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "{what}: job stuck at {job:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits a `kind` job on `films/polarity` (one attempt) and waits for it to end.
pub async fn run_films_job(
    service: &gloss_coordinator::Service,
    kind: gloss_proto::v1::JobKind,
    model: &str,
    config: &str,
) -> gloss_proto::v1::Job {
    run_task_job(service, "films/polarity", kind, model, config).await
}

/// Submits a `kind` job on `task` (`PROJECT/TASK`, one attempt) and waits for it to end.
pub async fn run_task_job(
    service: &gloss_coordinator::Service,
    task: &str,
    kind: gloss_proto::v1::JobKind,
    model: &str,
    config: &str,
) -> gloss_proto::v1::Job {
    use gloss_proto::v1::{JobSpec, JobState, SubmitJobRequest};
    let (project, task) = task.split_once('/').expect("PROJECT/TASK");
    let req = SubmitJobRequest {
        spec: Some(JobSpec {
            kind: kind as i32,
            project: project.into(),
            task: task.into(),
            model: model.into(),
            config_json: config.into(),
        }),
        max_attempts: 1,
        ..Default::default()
    };
    let job = service
        .submit_job(&gloss_coordinator::access::Actor::SYSTEM, req)
        .await
        .expect("job accepted");
    wait_for_job(service, &job.id, model, |j| {
        matches!(j.state(), JobState::Succeeded | JobState::Failed)
    })
    .await
}

/// The test models, checked to hold MiniLM.
pub fn minilm_models() -> PathBuf {
    let models = test_models();
    assert!(
        models.join("minilm/model.safetensors").exists(),
        "run crates/gloss-ml/scripts/fetch-test-models.sh first (MiniLM in {})",
        models.display()
    );
    models
}

/// Where `crates/gloss-ml/scripts/fetch-test-models.sh` put the test models.
pub fn test_models() -> PathBuf {
    std::env::var_os("GLOSS_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/gloss-test-models")
        })
}

/// A worker running in this process until the returned sender says stop.
pub struct TestWorker {
    stop: tokio::sync::watch::Sender<bool>,
    running: tokio::task::JoinHandle<()>,
}

impl TestWorker {
    /// Starts a worker of `node` with 2 CPUs and 4 GiB, its scratch under `dir`.
    pub fn start(node: &Node, dir: &Path, models_dir: PathBuf, teachers: Option<PathBuf>) -> Self {
        Self::start_with(Self::args(node, dir, models_dir, teachers))
    }

    /// The settings [`TestWorker::start`] uses, to change before [`TestWorker::start_with`].
    pub fn args(
        node: &Node,
        dir: &Path,
        models_dir: PathBuf,
        teachers: Option<PathBuf>,
    ) -> gloss_worker::worker::WorkerArgs {
        gloss_worker::worker::WorkerArgs {
            coordinator: vec![node.coordinator.addrs().raft.to_string()],
            join_token_file: None,
            name: Some("w".into()),
            labels: vec![],
            gpus: None,
            cpus: Some(2.0),
            memory: Some("4GiB".into()),
            work_dir: dir.join("work"),
            tls_dir: None,
            models_dir,
            teachers,
        }
    }

    /// Starts a worker with `args`.
    pub fn start_with(args: gloss_worker::worker::WorkerArgs) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let running = tokio::spawn(async move {
            let mut rx = stopped;
            let stopped = gloss_worker::worker::run(args, JOIN_TOKEN.into(), async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
            if let Err(e) = stopped {
                panic!("the test worker stopped with an error: {e:#}");
            }
        });
        TestWorker { stop, running }
    }

    /// Stops the worker and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.running.await;
    }
}

/// One request a [`fake_chat_server`] received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub authorization: String,
    pub body: serde_json::Value,
}

/// A server on loopback speaking OpenAI's chat-completions protocol, for `openai:` teachers.
/// `reply` gets the user turn and gives the assistant's answer, or `None` for a reply that is
/// not JSON at all; every request is logged with its `Authorization` header. Returns the base
/// URL and the log.
pub async fn fake_chat_server(
    reply: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>> = Default::default();
    let log = seen.clone();
    let reply = std::sync::Arc::new(reply);
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let (log, reply) = (log.clone(), reply.clone());
            tokio::spawn(async move {
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                let (head, body) = loop {
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    raw.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&raw).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break (head.to_string(), body[..len].to_string());
                        }
                    }
                };
                let authorization = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("authorization")
                            .then(|| v.trim().to_string())
                    })
                    .unwrap_or_default();
                let body: serde_json::Value =
                    serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
                let messages = body["messages"].as_array().cloned().unwrap_or_default();
                let user = messages
                    .iter()
                    .rev()
                    .find(|m| m["role"] == "user")
                    .and_then(|m| m["content"].as_str())
                    .unwrap_or("")
                    .to_string();
                log.lock().unwrap().push(Seen {
                    authorization,
                    body: body.clone(),
                });
                let reply = match reply(&user) {
                    None => "<html>upstream hiccup</html>".to_string(),
                    Some(content) => serde_json::json!({
                        "choices": [{"message": {"role": "assistant", "content": content}}]
                    })
                    .to_string(),
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, seen)
}
