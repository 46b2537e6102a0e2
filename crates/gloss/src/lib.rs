//! The `gloss` command line: `gloss up` (a coordinator with an embedded worker on one data
//! directory, for laptops and the quick start), `gloss coordinator`, `gloss worker`,
//! `gloss predict`, `gloss digest` and `gloss bench` (benchmarks that print tables). Kept as a
//! library so test harnesses can run the exact same entry point in a child process.
//!
//! Only the command line and the benchmarks live here: it parses flags and config, then calls
//! `gloss-coordinator` (with `gloss-web`'s routes) and `gloss-worker`, which hold the logic.

mod bench;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use gloss_coordinator::users::FIRST_ADMIN;
use gloss_coordinator::{Coordinator, StartOptions};
use gloss_core::config::{Config, Overrides};
use gloss_worker::{model_store, predict, worker};

#[derive(Parser)]
#[command(
    name = "gloss",
    version,
    about = "Gloss: a private annotation and distillation cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a single-node Gloss on a local data directory (default ./gloss-data): a
    /// coordinator and a worker in one process.
    Up {
        /// Load the built-in demo project when the data directory holds no project yet.
        #[arg(long)]
        demo: bool,
        /// Do not run a worker in this process.
        #[arg(long)]
        no_worker: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Start a coordinator. A new data directory forms a group from --initial-members (or a
    /// single-node group without it).
    Coordinator {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Start a worker: it joins the coordinators with the join token and runs the jobs they
    /// place on it (pre-annotation, training, evaluation).
    Worker(worker::WorkerArgs),
    /// Run an exported student over JSON Lines (`glossctl model export`, then unpack): adds
    /// `label`, `score` and per-label `scores` to each record. Needs no cluster.
    Predict(PredictArgs),
    /// Print the SHA-256 digest of a base model directory, as evaluate/predict jobs name it.
    Digest {
        /// The model directory.
        dir: PathBuf,
    },
    /// Benchmarks that print tables.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
}

#[derive(Args, Debug)]
struct PredictArgs {
    /// The model directory (an exported artifact, unpacked: config.json, model.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// JSON Lines with a `text` field (default: standard input); every other field is kept.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Examples per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

/// Node settings. Each flag can also come from its `GLOSS_*` variable or the config file;
/// flags win over the environment, which wins over the file.
#[derive(Args, Clone, Default)]
struct NodeArgs {
    /// TOML config file with any of the settings below (snake_case keys), and single sign-on in
    /// its `[oidc]` table (docs/sso.md).
    #[arg(long, env = "GLOSS_CONFIG")]
    config: Option<PathBuf>,
    /// Raft node id of this coordinator [default: 1].
    #[arg(long, env = "GLOSS_NODE_ID")]
    node_id: Option<u64>,
    /// Data directory [default: gloss-data].
    #[arg(long, env = "GLOSS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Public gRPC address [default: 127.0.0.1:7070].
    #[arg(long, env = "GLOSS_LISTEN")]
    listen: Option<SocketAddr>,
    /// HTTP address for /healthz, /readyz, /metrics and the web app [default: 127.0.0.1:7080].
    #[arg(long, env = "GLOSS_HTTP")]
    http: Option<SocketAddr>,
    /// Internal (Raft) address [default: 127.0.0.1:7071].
    #[arg(long, env = "GLOSS_RAFT_LISTEN")]
    raft_listen: Option<SocketAddr>,
    /// Internal address peers use to reach this node [default: --raft-listen].
    #[arg(long, env = "GLOSS_ADVERTISE")]
    advertise: Option<String>,
    /// Public address clients are sent to for this node [default: --listen].
    #[arg(long, env = "GLOSS_ADVERTISE_API")]
    advertise_api: Option<String>,
    /// Largest accepted import record in bytes [default: 1048576].
    #[arg(long, env = "GLOSS_MAX_RECORD_BYTES")]
    max_record_bytes: Option<usize>,
    /// Largest accepted image in bytes, inline or read from the image directory
    /// [default: 10485760].
    #[arg(long, env = "GLOSS_MAX_IMAGE_BYTES")]
    max_image_bytes: Option<usize>,
    /// Directory that records' relative `image` paths are read from at import (never a URL:
    /// images are not fetched from the network) [default: none, only inline images].
    #[arg(long, env = "GLOSS_IMAGE_DIR")]
    image_dir: Option<PathBuf>,
    /// Examples per replicated import batch [default: 2000].
    #[arg(long, env = "GLOSS_IMPORT_BATCH")]
    import_batch: Option<usize>,
    /// Raft entries between snapshots [default: 20000].
    #[arg(long, env = "GLOSS_SNAPSHOT_EVERY")]
    snapshot_every: Option<u64>,
    /// Members of a new group as ID=HOST:PORT,... (internal addresses), the same on every
    /// member [default: this node alone].
    #[arg(long, env = "GLOSS_INITIAL_MEMBERS")]
    initial_members: Option<String>,
    /// File holding the token workers present to register (without one, workers cannot join
    /// this cluster; `gloss up` then makes one for its own worker).
    #[arg(long, env = "GLOSS_JOIN_TOKEN_FILE")]
    join_token_file: Option<PathBuf>,
    /// File holding the first administrator's token, registered on the cluster's first start
    /// instead of a generated one.
    #[arg(long, env = "GLOSS_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// Directory with `ca.crt`, `tls.crt`, `tls.key` (`glossctl certs init` writes them):
    /// mutual TLS on the internal port, TLS on the public gRPC and HTTP ports.
    #[arg(long, env = "GLOSS_TLS_DIR")]
    tls_dir: Option<PathBuf>,
    /// Do not form a group on an empty data directory; wait to be added to an existing one
    /// (`glossctl cluster add-learner`), e.g. to replace a dead coordinator.
    #[arg(long, env = "GLOSS_JOIN")]
    join: bool,
}

impl NodeArgs {
    fn config(&self) -> Result<Config> {
        let flags = Overrides {
            node_id: self.node_id,
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            http: self.http,
            raft_listen: self.raft_listen,
            advertise: self.advertise.clone(),
            advertise_api: self.advertise_api.clone(),
            max_record_bytes: self.max_record_bytes,
            max_image_bytes: self.max_image_bytes,
            image_dir: self.image_dir.clone(),
            import_batch: self.import_batch,
            snapshot_every: self.snapshot_every,
            initial_members: self.initial_members.clone(),
            join: self.join.then_some(true),
            join_token_file: self.join_token_file.clone(),
            admin_token_file: self.admin_token_file.clone(),
            tls_dir: self.tls_dir.clone(),
            // Single sign-on is a table: the config file's `[oidc]` only.
            oidc: None,
        };
        let file = match &self.config {
            Some(path) => Overrides::from_file(path)?,
            None => Overrides::default(),
        };
        Ok(Config::resolve(flags.over(file))?)
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// A random secret for this process's own worker.
fn random_token() -> Result<String> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("reading /dev/urandom for the embedded worker's join token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

async fn serve(node: NodeArgs, demo: bool, embedded_worker: bool) -> Result<()> {
    let mut config = node.config()?;
    // `gloss up` runs a worker in the same process; it joins with a token made for this run
    // when none is configured.
    if embedded_worker && config.join_token.is_none() {
        config.join_token = Some(gloss_core::config::Secret::new(random_token()?));
    }
    let options = StartOptions {
        http_routes: Some(gloss_web::router),
        ..StartOptions::default()
    };
    let coordinator = Coordinator::start_with(&config, options)
        .await
        .context("starting the coordinator")?;
    // The first administrator is created once per cluster, by whichever coordinator gets there
    // first once a leader exists; its token is printed here and stored only hashed.
    tokio::spawn({
        let service = coordinator.service().clone();
        async move {
            for _ in 0..600 {
                match service.bootstrap_admin(FIRST_ADMIN).await {
                    Ok(Some(t)) => {
                        println!(
                            "  first administrator {FIRST_ADMIN:?}; token (shown once, keep it):"
                        );
                        println!("    {}", t.token);
                        return;
                    }
                    Ok(None) => return,
                    Err(e) => tracing::debug!(error = %e, "first administrator not created yet"),
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    if demo {
        coordinator.wait_for_leader(Duration::from_secs(30)).await?;
        match gloss_coordinator::demo::load(coordinator.service()).await? {
            Some(s) => tracing::info!(
                imported = s.imported,
                "demo project loaded: {}/{}",
                gloss_coordinator::demo::PROJECT,
                gloss_coordinator::demo::DATASET
            ),
            None => tracing::info!("data directory already holds projects; demo not loaded"),
        }
    }
    let a = coordinator.addrs();
    let data_dir = std::fs::canonicalize(&config.data_dir).unwrap_or(config.data_dir.clone());
    println!(
        "gloss {} is up (node {})",
        gloss_core::VERSION,
        config.node_id
    );
    match &config.tls_dir {
        Some(dir) => {
            let ca = dir.join(gloss_tls::CA_FILE);
            println!(
                "  gRPC API   {}   (TLS; try: grpcurl -cacert {} {} list)",
                a.grpc,
                ca.display(),
                a.grpc
            );
            println!(
                "  web app    https://{}/   (also /healthz /readyz /metrics)",
                a.http
            );
        }
        None => {
            println!(
                "  gRPC API   {}   (try: grpcurl -plaintext {} list)",
                a.grpc, a.grpc
            );
            println!(
                "  web app    http://{}/   (also /healthz /readyz /metrics)",
                a.http
            );
        }
    }
    if demo {
        println!(
            "  demo users {} (password {:?})",
            gloss_coordinator::demo::USERS
                .iter()
                .map(|(name, role)| format!("{name} ({role})"))
                .collect::<Vec<_>>()
                .join(", "),
            gloss_coordinator::demo::PASSWORD
        );
    }
    println!("  internal   {}", a.raft);
    println!("  data       {}", data_dir.display());
    let (stop_worker, worker_stopped) = tokio::sync::watch::channel(false);
    let worker = embedded_worker.then(|| {
        let args = worker::WorkerArgs {
            coordinator: vec![a.raft.to_string()],
            join_token_file: None,
            name: Some("embedded".into()),
            labels: vec!["embedded=true".into()],
            gpus: None,
            cpus: None,
            memory: None,
            work_dir: config.data_dir.join("worker"),
            models_dir: config.data_dir.join("models"),
            teachers: None,
            tls_dir: config.tls_dir.clone(),
        };
        let token = config
            .join_token
            .as_ref()
            .map(|t| t.expose().to_string())
            .unwrap_or_default();
        let mut rx = worker_stopped.clone();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = worker::run(args, token, stopped).await {
                tracing::error!(error = %format!("{e:#}"), "embedded worker stopped");
            }
        })
    });
    if worker.is_some() {
        println!("  worker     embedded (runs jobs in this process)");
    }
    println!("press Ctrl-C to stop");
    wait_for_signal().await;
    let _ = stop_worker.send(true);
    if let Some(w) = worker {
        let _ = w.await;
    }
    println!("stopping…");
    coordinator.shutdown().await?;
    println!("stopped cleanly");
    Ok(())
}

/// Parses the command line and runs `gloss`; the binary's whole `main`.
pub fn run_cli() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let service = match cli.command {
        Command::Worker(_) => "gloss-worker",
        _ => "gloss",
    };
    let result = runtime.block_on(async {
        let _telemetry = gloss_core::telemetry::init(service);
        match cli.command {
            Command::Up {
                demo,
                no_worker,
                node,
            } => serve(node, demo, !no_worker).await,
            Command::Coordinator { node } => serve(node, false, false).await,
            Command::Worker(args) => match worker::read_token(&args) {
                Ok(token) => worker::run(args, token, wait_for_signal()).await,
                Err(e) => Err(e),
            },
            Command::Predict(args) => predict::run(&args.model, args.input.as_deref(), args.batch),
            Command::Digest { dir } => model_store::dir_digest(&dir).map(|d| println!("{d}")),
            Command::Bench(cmd) => bench::run(cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
