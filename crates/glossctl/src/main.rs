//! `glossctl`: kubectl-style control of a Gloss cluster over its public gRPC API.
//!
//! Exit codes: 0 success, 1 the operation failed (message on stderr), 2 bad usage.

mod audit;
mod backup;
mod folder;
mod job;
mod login;
mod model;
mod output;
mod task;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use gloss_client::{Client, ClientError};
use gloss_proto::v1::*;
use indicatif::{ProgressBar, ProgressStyle};

use output::Output;

#[derive(Parser)]
#[command(
    name = "glossctl",
    version,
    about = "Control a Gloss annotation cluster"
)]
struct Cli {
    /// Coordinator addresses (HOST:PORT), comma-separated or repeated; the first reachable is used.
    #[arg(
        long,
        short = 's',
        global = true,
        env = "GLOSS_SERVER",
        value_delimiter = ',',
        default_value = "127.0.0.1:7070"
    )]
    server: Vec<String>,
    /// Bearer token to sign requests with (`glossctl user token NAME` issues one). Without it,
    /// the token `glossctl login` saved for these coordinators is used.
    #[arg(long, global = true, env = "GLOSS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificate to check the coordinators' TLS certificate against (`ca.crt`); the
    /// connection then uses TLS. Needed when the cluster runs with `--tls-dir`.
    #[arg(long, global = true, env = "GLOSS_CA_CERT")]
    ca_cert: Option<std::path::PathBuf>,
    /// Output format: `table` or `json`. In JSON a list command always prints an array (`[]`
    /// when empty, `[{..}]` for one item); show, create and other single-result commands print
    /// one object. For `dataset export`, `task export` and `model export` this flag names the
    /// output file instead (`-` for standard output).
    #[arg(long, short = 'o', global = true)]
    output: Option<String>,
    #[command(subcommand)]
    command: Noun,
}

#[derive(Subcommand)]
enum Noun {
    /// Projects: the unit of data and access control.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Datasets inside a project (PROJECT/DATASET).
    #[command(subcommand)]
    Dataset(DatasetCmd),
    /// Annotation tasks (PROJECT/TASK): create, progress, agreement, review, export.
    #[command(subcommand)]
    Task(task::TaskCmd),
    /// The coordinator group.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Users, roles and tokens.
    #[command(subcommand)]
    User(user::UserCmd),
    /// Sign in and save a session token for these coordinators: single sign-on in a browser
    /// (the device code flow) when the cluster has it, or `--user NAME` with a password.
    Login(login::LoginArgs),
    /// Revoke the saved session token and forget it.
    Logout,
    /// Jobs on workers (train, evaluate, predict): submit, list, show, logs, cancel.
    #[command(subcommand)]
    Job(job::JobCmd),
    /// Workers.
    #[command(subcommand)]
    Worker(WorkerCmd),
    /// The model registry: trained students, evaluations, promotion, export.
    #[command(subcommand)]
    Model(model::ModelCmd),
    /// Backups of the whole cluster, and restoring a new cluster from one.
    #[command(subcommand)]
    Backup(backup::BackupCmd),
    /// Certificates for TLS: a development CA and a certificate for nodes and workers.
    #[command(subcommand)]
    Certs(CertsCmd),
    /// Print a shell completion script: `source <(glossctl completion bash)`, or save it where
    /// the shell loads completions (zsh: a `_glossctl` file on `$fpath`; fish:
    /// `~/.config/fish/completions/glossctl.fish`).
    Completion {
        /// The shell.
        shell: CompletionShell,
    },
    /// The audit log: who created, changed, exported or promoted what (admins).
    Audit {
        /// Entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Subcommand)]
enum CertsCmd {
    /// Write a new CA (`ca.crt`, `ca.key`) and one certificate signed by it (`tls.crt`,
    /// `tls.key`) that names every host, for servers and clients alike. Needs no cluster;
    /// refuses to overwrite existing files.
    Init {
        /// Directory to write to (created if missing).
        #[arg(long)]
        out: std::path::PathBuf,
        /// Every DNS name and IP address clients and peers use to reach the nodes,
        /// comma-separated (include localhost and 127.0.0.1 for local use).
        #[arg(long, value_delimiter = ',', required = true)]
        hosts: Vec<String>,
    },
}

#[derive(Subcommand)]
enum WorkerCmd {
    /// Registered workers: capacity, GPUs, state, jobs.
    List,
}

#[derive(Subcommand)]
enum ProjectCmd {
    /// Create a project.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List projects.
    List,
    /// Show one project.
    Show { name: String },
    /// Delete a project; --force also deletes its datasets.
    Delete {
        name: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum DatasetCmd {
    /// Create an empty dataset.
    Create { dataset: String },
    /// List a project's datasets.
    List { project: String },
    /// Show one dataset with its counts.
    Show { dataset: String },
    /// Delete a dataset and its examples.
    Delete { dataset: String },
    /// Import a file (JSONL, CSV, TSV or plain text) or a folder of images (PNG, JPEG, GIF,
    /// WebP: one example per image file directly inside it, in name order); atomic unless
    /// --skip-invalid.
    Import {
        dataset: String,
        /// The file, or a folder of images.
        file: PathBuf,
        /// jsonl, csv, tsv or text; guessed from the file extension when omitted.
        #[arg(long)]
        format: Option<String>,
        /// CSV/TSV column that holds the text.
        #[arg(long, default_value = "text")]
        text_column: String,
        /// Import the valid records and report the invalid ones.
        #[arg(long)]
        skip_invalid: bool,
        /// Fail when the dataset does not exist instead of creating it.
        #[arg(long)]
        no_create: bool,
    },
    /// Export a dataset as JSON Lines (to -o FILE, or standard output).
    Export { dataset: String },
    /// Page through a dataset's examples.
    Examples {
        dataset: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Token printed by the previous page.
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Raft status of the coordinator group.
    Status,
    /// Add a coordinator as a learner; returns once it has caught up.
    AddLearner {
        node_id: u64,
        /// Its internal (Raft) address, HOST:PORT.
        raft_address: String,
        /// Its public gRPC address, HOST:PORT.
        #[arg(long, default_value = "")]
        api_address: String,
    },
    /// Make a learner a voter.
    Promote { node_id: u64 },
    /// Remove a voter or learner from the group.
    Remove { node_id: u64 },
}

pub fn split(dataset: &str) -> Result<(String, String)> {
    match dataset.split_once('/') {
        Some((p, d)) if !p.is_empty() && !d.is_empty() && !d.contains('/') => {
            Ok((p.into(), d.into()))
        }
        _ => bail!("expected PROJECT/NAME, got {dataset:?}"),
    }
}

fn format_for(path: &std::path::Path, given: Option<&str>) -> Result<ImportFormat> {
    let name = match given {
        Some(f) => f.to_ascii_lowercase(),
        None => path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("jsonl")
            .to_ascii_lowercase(),
    };
    Ok(match name.as_str() {
        "jsonl" | "json" | "ndjson" => ImportFormat::Jsonl,
        "csv" => ImportFormat::Csv,
        "tsv" | "tab" => ImportFormat::Tsv,
        "txt" | "text" => ImportFormat::Text,
        other => bail!("unknown format {other:?}; use --format jsonl|csv|tsv|text"),
    })
}

pub(crate) fn bar(len: u64, template: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(ProgressStyle::with_template(template).expect("valid template"));
    pb
}

async fn run(cli: Cli) -> Result<()> {
    let exporting = match &cli.command {
        Noun::Dataset(DatasetCmd::Export { .. }) => true,
        Noun::Task(cmd) => task::is_export(cmd),
        Noun::Model(model::ModelCmd::Export { .. }) => true,
        _ => false,
    };
    let out = if exporting {
        Output::Table
    } else {
        Output::parse(cli.output.as_deref())?
    };
    // Certificates and completions are made locally, before (and without) any coordinator.
    match &cli.command {
        Noun::Certs(cmd) => return certs(cmd),
        Noun::Completion { shell } => return completion(*shell, &mut std::io::stdout()),
        _ => {}
    }
    let tls = match &cli.ca_cert {
        Some(path) => Some(gloss_tls::ClientTls::from_ca_file(path)?),
        None => None,
    };
    let mut client = Client::connect_with(&cli.server, tls).await?;
    let token = match cli.token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => Some(t.to_string()),
        None => login::saved_token(&cli.server)?,
    };
    if let Some(token) = token {
        client = client.with_token(&token)?;
    }
    match cli.command {
        Noun::Project(cmd) => project(&client, out, cmd).await,
        Noun::Task(cmd) => task::run(&client, out, cli.output.as_deref(), cmd).await,
        Noun::Dataset(cmd) => dataset(&client, out, cli.output.as_deref(), cmd).await,
        Noun::User(cmd) => user::run(&client, out, cmd).await,
        Noun::Login(args) => login::login(&client, &cli.server, out, args).await,
        Noun::Logout => login::logout(&client, &cli.server, out).await,
        Noun::Job(cmd) => job::run(&client, out, cmd).await,
        Noun::Model(cmd) => model::run(&client, out, cli.output.as_deref(), cmd).await,
        Noun::Backup(cmd) => backup::run(&client, out, cmd).await,
        Noun::Audit { after, limit } => audit::run(&client, out, after, limit).await,
        Noun::Worker(WorkerCmd::List) => job::workers(&client, out).await,
        Noun::Certs(cmd) => certs(&cmd),
        Noun::Completion { shell } => completion(shell, &mut std::io::stdout()),
        Noun::Cluster(cmd) => {
            let mut api = client.cluster();
            let status = match cmd {
                ClusterCmd::Status => api.get_cluster_status(GetClusterStatusRequest {}).await?,
                ClusterCmd::AddLearner {
                    node_id,
                    raft_address,
                    api_address,
                } => {
                    let req = AddLearnerRequest {
                        node_id,
                        raft_address,
                        api_address,
                    };
                    api.add_learner(req).await?
                }
                ClusterCmd::Promote { node_id } => {
                    api.promote_member(PromoteMemberRequest { node_id }).await?
                }
                ClusterCmd::Remove { node_id } => {
                    api.remove_member(RemoveMemberRequest { node_id }).await?
                }
            };
            out.cluster(&status.into_inner())
        }
    }
}

async fn project(client: &Client, out: Output, cmd: ProjectCmd) -> Result<()> {
    let mut api = client.projects();
    match cmd {
        ProjectCmd::Create { name, description } => {
            // One key for every retry of this command: the server applies it once.
            let request = CreateProjectRequest {
                name,
                description,
                idempotency_key: invocation_key(),
            };
            let p = client
                .retry(PATIENCE, |c| {
                    let request = request.clone();
                    async move { c.projects().create_project(request).await }
                })
                .await?
                .into_inner();
            out.project(&p)
        }
        ProjectCmd::List => out.projects(
            &api.list_projects(ListProjectsRequest {})
                .await?
                .into_inner()
                .projects,
        ),
        ProjectCmd::Show { name } => out.project(
            &api.get_project(GetProjectRequest { name })
                .await?
                .into_inner(),
        ),
        ProjectCmd::Delete { name, force } => {
            api.delete_project(DeleteProjectRequest {
                name: name.clone(),
                force,
            })
            .await?;
            out.done(&format!("project {name} deleted"))
        }
    }
}

/// Reports a rejected import (the first line of its message, then each bad record) and exits 1.
pub(crate) fn rejected(message: &str, errors: &[RecordError], invalid: u64) -> ! {
    let first = message.lines().next().unwrap_or_default();
    eprintln!("error: {first}");
    for e in errors {
        eprintln!("  {e}");
    }
    if invalid as usize > errors.len() {
        eprintln!("  ... and {} more", invalid as usize - errors.len());
    }
    std::process::exit(1);
}

/// Shells `glossctl completion` writes scripts for.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// Writes the completion script for `shell`.
fn completion(shell: CompletionShell, to: &mut dyn std::io::Write) -> Result<()> {
    use clap::CommandFactory as _;
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "glossctl", to);
    Ok(())
}

/// Writes a development CA and a certificate for the given hosts.
fn certs(cmd: &CertsCmd) -> Result<()> {
    let CertsCmd::Init { out, hosts } = cmd;
    let made = gloss_tls::generate(out, hosts)?;
    for file in &made.files {
        println!("wrote {}", file.display());
    }
    println!("the certificate names {}", made.hosts.join(", "));
    println!("keep ca.key offline; nodes need ca.crt, tls.crt and tls.key (--tls-dir)");
    Ok(())
}

async fn dataset(client: &Client, out: Output, to: Option<&str>, cmd: DatasetCmd) -> Result<()> {
    let mut api = client.datasets();
    match cmd {
        DatasetCmd::Create { dataset } => {
            let (project, name) = split(&dataset)?;
            let request = CreateDatasetRequest {
                project,
                name,
                kind: DatasetKind::Source as i32,
                description: String::new(),
            };
            out.dataset(&api.create_dataset(request).await?.into_inner())
        }
        DatasetCmd::List { project } => out.datasets(
            &api.list_datasets(ListDatasetsRequest { project })
                .await?
                .into_inner()
                .datasets,
        ),
        DatasetCmd::Show { dataset } => {
            let (project, name) = split(&dataset)?;
            out.dataset(
                &api.get_dataset(GetDatasetRequest { project, name })
                    .await?
                    .into_inner(),
            )
        }
        DatasetCmd::Delete { dataset } => {
            let (project, name) = split(&dataset)?;
            api.delete_dataset(DeleteDatasetRequest { project, name })
                .await?;
            out.done(&format!("dataset {dataset} deleted"))
        }
        DatasetCmd::Import {
            dataset,
            file,
            format,
            text_column,
            skip_invalid,
            no_create,
        } => {
            let (project, name) = split(&dataset)?;
            if file.is_dir() {
                let header = ImportHeader {
                    project,
                    dataset: name,
                    format: ImportFormat::Jsonl as i32,
                    text_column,
                    skip_invalid,
                    create_dataset: !no_create,
                    source_name: file.display().to_string(),
                };
                return import_folder(client, out, header, &file).await;
            }
            let format = format_for(&file, format.as_deref())?;
            let size = std::fs::metadata(&file)
                .with_context(|| format!("{}", file.display()))?
                .len();
            let header = ImportHeader {
                project,
                dataset: name,
                format: format as i32,
                text_column,
                skip_invalid,
                create_dataset: !no_create,
                source_name: file.display().to_string(),
            };
            let pb = bar(
                size,
                "{spinner} importing {bytes}/{total_bytes} {wide_bar} {bytes_per_sec} eta {eta}",
            );
            let progress = pb.clone();
            let result = client
                .import_file(header, &file, move |sent| progress.set_position(sent))
                .await;
            pb.finish_and_clear();
            match result {
                Ok(summary) => out.import(&summary),
                Err(ClientError::ImportRejected { message, summary }) => {
                    rejected(&message, &summary.errors, summary.invalid)
                }
                Err(e) => Err(e.into()),
            }
        }
        DatasetCmd::Examples {
            dataset,
            limit,
            page_token,
        } => {
            let (project, name) = split(&dataset)?;
            let page = api
                .list_examples(ListExamplesRequest {
                    project,
                    dataset: name,
                    page_size: limit,
                    page_token,
                })
                .await?
                .into_inner();
            out.examples(&page)
        }
        DatasetCmd::Export { dataset } => {
            let (project, name) = split(&dataset)?;
            let source = ExportSource::Dataset { project, name };
            write_export(client, &dataset, source, to).await
        }
    }
}

/// Imports a folder of images as one JSONL stream.
async fn import_folder(
    client: &Client,
    out: Output,
    header: ImportHeader,
    dir: &std::path::Path,
) -> Result<()> {
    let (files, skipped) = folder::image_files(dir)?;
    if files.is_empty() {
        bail!(
            "{} holds no image files (png, jpg, jpeg, gif, webp)",
            dir.display()
        );
    }
    if !skipped.is_empty() {
        eprintln!(
            "note: skipping {} file(s) that are not images: {}",
            skipped.len(),
            skipped.join(", ")
        );
    }
    let result = client
        .import(header, folder::stream(files.clone()), |_| {})
        .await;
    match result {
        Ok(summary) => out.import(&summary),
        Err(ClientError::ImportRejected { message, summary }) => rejected(
            &message,
            &folder::name_files(&summary.errors, &files),
            summary.invalid,
        ),
        Err(e) => Err(e.into()),
    }
}

/// How long a command keeps retrying on other coordinators while the group elects a leader.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);

/// An idempotency key unique to this invocation of glossctl.
fn invocation_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("glossctl-{}-{nanos}", std::process::id())
}

/// What an export reads.
pub enum ExportSource {
    Dataset { project: String, name: String },
    Task(ExportAnswersRequest),
}

async fn export_to<W>(
    client: &Client,
    source: &ExportSource,
    out: &mut W,
    report: impl Fn(u64, u64),
) -> Result<u64, ClientError>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    match source {
        ExportSource::Dataset { project, name } => client.export(project, name, out, report).await,
        ExportSource::Task(request) => client.export_answers(request.clone(), out, report).await,
    }
}

/// Writes an export to standard output or, atomically, to the file `to`.
pub async fn write_export(
    client: &Client,
    what: &str,
    source: ExportSource,
    to: Option<&str>,
) -> Result<()> {
    let pb = bar(
        0,
        "{spinner} exporting {pos}/{len} records {wide_bar} {per_sec} eta {eta}",
    );
    let progress = pb.clone();
    let report = move |done: u64, total: u64| {
        progress.set_length(total.max(done));
        progress.set_position(done);
    };
    match to {
        None | Some("-") => {
            pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            export_to(client, &source, &mut tokio::io::stdout(), report).await?;
        }
        Some(path) => {
            // Write next to the target and rename, so a failed export never leaves a partial file.
            let tmp = format!("{path}.partial");
            let file = tokio::fs::File::create(&tmp)
                .await
                .with_context(|| tmp.clone())?;
            let mut writer = tokio::io::BufWriter::with_capacity(1 << 20, file);
            let n = match export_to(client, &source, &mut writer, report).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e.into());
                }
            };
            writer
                .into_inner()
                .sync_all()
                .await
                .with_context(|| tmp.clone())?;
            std::fs::rename(&tmp, path).with_context(|| path.to_string())?;
            pb.finish_and_clear();
            eprintln!("exported {n} records from {what} to {path}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let matches = Cli::command().get_matches();
    // The span's name is the command without its arguments (which may hold a token).
    let mut name = String::from("glossctl");
    let mut sub = matches.subcommand();
    while let Some((word, m)) = sub {
        name.push(' ');
        name.push_str(word);
        sub = m.subcommand();
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = runtime.block_on(async {
        // Traces go out only when OTEL_EXPORTER_OTLP_ENDPOINT is set; the guard flushes them.
        let _telemetry = gloss_core::telemetry::init_with("glossctl", "warn");
        let span = tracing::info_span!("glossctl", otel.name = %name, otel.kind = "client");
        tracing::Instrument::instrument(run(cli), span).await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let status =
                e.downcast_ref::<tonic::Status>()
                    .or(match e.downcast_ref::<ClientError>() {
                        Some(ClientError::Status(s)) => Some(s.as_ref()),
                        _ => None,
                    });
            let message = match status {
                Some(s) => format!("{:?}: {}", s.code(), s.message()),
                None => format!("{e:#}"),
            };
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(shell: CompletionShell) -> String {
        let mut out = Vec::new();
        completion(shell, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn bash_loads_the_completion_script_and_completes_nouns_and_verbs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("glossctl.bash");
        std::fs::write(&file, script(CompletionShell::Bash)).unwrap();
        // Load the script in a real bash and ask it to complete `glossctl da` and
        // `glossctl dataset im`.
        let probe = format!(
            r#"source {}
complete -p glossctl >/dev/null || exit 3
COMP_WORDS=(glossctl da); COMP_CWORD=1; COMP_LINE="glossctl da"; COMP_POINT=${{#COMP_LINE}}
_glossctl glossctl da glossctl; echo "nouns: ${{COMPREPLY[*]}}"
COMP_WORDS=(glossctl dataset im); COMP_CWORD=2; COMP_LINE="glossctl dataset im"; COMP_POINT=${{#COMP_LINE}}
_glossctl glossctl im dataset; echo "verbs: ${{COMPREPLY[*]}}""#,
            file.display()
        );
        let out = std::process::Command::new("bash")
            .args(["--norc", "-c", &probe])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("nouns: dataset"), "{text}");
        assert!(text.contains("verbs: import"), "{text}");
    }

    #[test]
    fn zsh_and_fish_scripts_name_glossctl_and_its_nouns() {
        let zsh = script(CompletionShell::Zsh);
        assert!(zsh.starts_with("#compdef glossctl"), "{zsh}");
        assert!(zsh.contains("'dataset:"), "zsh script lists the nouns");
        let fish = script(CompletionShell::Fish);
        assert!(fish.contains("complete -c glossctl"), "{fish}");
        assert!(
            fish.contains("-a \"completion\""),
            "fish script lists the nouns"
        );
    }
}
