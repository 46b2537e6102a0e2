//! A typed client of a Gloss cluster: connects to the first reachable coordinator of a list
//! (plain or TLS; with a client certificate for the internal port), sends a bearer token and the
//! caller's trace context with every call, runs calls that are safe to repeat again on the next
//! coordinator ([`Client::retry`]), and wraps the streaming calls (import a file or reader,
//! export examples or a task's answers to a writer) with progress hooks. Services it does not
//! wrap (the worker protocol on the internal port, models, jobs) run over [`Client::channel`].
//!
//! Depends on `gloss-proto`, `gloss-tls` (endpoints and client TLS) and `gloss-core` (trace
//! context). It must never depend on server crates, so tools, workers and SDKs can link it alone.

use std::path::Path;
use std::time::Duration;

use gloss_proto::v1::cluster_service_client::ClusterServiceClient;
use gloss_proto::v1::dataset_service_client::DatasetServiceClient;
use gloss_proto::v1::feed_service_client::FeedServiceClient;
use gloss_proto::v1::project_service_client::ProjectServiceClient;
use gloss_proto::v1::review_service_client::ReviewServiceClient;
use gloss_proto::v1::task_service_client::TaskServiceClient;
use gloss_proto::v1::user_service_client::UserServiceClient;
use gloss_proto::v1::{
    import_answers_request, import_request, ExportAnswersRequest, ExportChunk, ExportRequest,
    ImportAnswersHeader, ImportAnswersRequest, ImportAnswersSummary, ImportHeader, ImportRequest,
    ImportSummary,
};
use gloss_tls::ClientTls;
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tonic::transport::Channel;

/// Bytes per import message.
const IMPORT_CHUNK: usize = 1 << 20;

/// Errors of client calls.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No server of the list could be reached.
    #[error("cannot reach any Gloss server ({servers}): {last}")]
    Connect { servers: String, last: String },
    /// A server address (or the TLS set-up for it) is unusable.
    #[error("{0}")]
    Address(String),
    /// The server answered with an error.
    #[error("{}", .0.message())]
    Status(Box<tonic::Status>),
    /// The server rejected an import; the summary lists the bad records.
    #[error("{message}")]
    ImportRejected {
        message: String,
        summary: Box<ImportSummary>,
    },
    /// The server rejected an import of annotations; the summary lists the bad records.
    #[error("{message}")]
    AnswersRejected {
        message: String,
        summary: Box<ImportAnswersSummary>,
    },
    /// Reading or writing a local file failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        ClientError::Status(Box::new(status))
    }
}

/// Adds the bearer token, and the caller's trace context, to every call.
#[derive(Clone, Default)]
pub struct TokenInterceptor {
    header: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(h) = &self.header {
            req.metadata_mut().insert("authorization", h.clone());
        }
        gloss_core::telemetry::inject(req.metadata_mut());
        Ok(req)
    }
}

/// The channel every service client of [`Client`] uses: the connection plus the token.
pub type Conn = tonic::service::interceptor::InterceptedService<Channel, TokenInterceptor>;

/// A connection to a Gloss cluster.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    token: TokenInterceptor,
    server: String,
    servers: Vec<String>,
    tls: Option<ClientTls>,
}

impl Client {
    /// Connects to the first reachable server of `servers` (each `HOST:PORT` or a URL).
    pub async fn connect(servers: &[String]) -> Result<Client, ClientError> {
        Self::connect_with(servers, None).await
    }

    /// [`Client::connect`] over TLS when `tls` is given (the cluster CA, and for the internal
    /// port a certificate to present).
    pub async fn connect_with(
        servers: &[String],
        tls: Option<ClientTls>,
    ) -> Result<Client, ClientError> {
        let mut last = String::from("no server given");
        for server in servers {
            let endpoint = gloss_tls::endpoint(server, tls.as_ref())
                .map_err(|e| ClientError::Address(e.to_string()))?;
            match endpoint.connect().await {
                Ok(channel) => {
                    return Ok(Client {
                        channel,
                        token: TokenInterceptor::default(),
                        server: server.clone(),
                        servers: servers.to_vec(),
                        tls,
                    })
                }
                Err(e) => last = format!("{server}: {}", source_chain(&e)),
            }
        }
        Err(ClientError::Connect {
            servers: servers.join(","),
            last,
        })
    }

    /// Runs `call` and, when the coordinator it reached is gone or has no leader yet, runs it
    /// again on the next reachable coordinator of the list, for up to `patience`. Only calls that
    /// are safe to repeat belong here: reads, and writes carrying an idempotency key (the server
    /// applies a key once and answers repeats with the first result).
    pub async fn retry<T, F, Fut>(&self, patience: Duration, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = tokio::time::Instant::now() + patience;
        let mut client = self.clone();
        let mut attempt = 0;
        loop {
            let status = match call(client.clone()).await {
                Ok(v) => return Ok(v),
                Err(s)
                    if s.code() == tonic::Code::Unavailable
                        && tokio::time::Instant::now() < deadline =>
                {
                    s
                }
                Err(s) => return Err(s.into()),
            };
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            // Start the search after the server that failed, so a dead one is tried last.
            let n = self.servers.len().max(1);
            let order: Vec<String> = self
                .servers
                .iter()
                .cycle()
                .skip(attempt % n)
                .take(n)
                .cloned()
                .collect();
            match Client::connect_with(&order, self.tls.clone()).await {
                Ok(next) => {
                    client = Client {
                        token: self.token.clone(),
                        ..next
                    }
                }
                Err(_) if tokio::time::Instant::now() < deadline => {}
                Err(_) => return Err(status.into()),
            }
        }
    }

    /// This client, sending `token` (`glt_...`) with every call.
    pub fn with_token(mut self, token: &str) -> Result<Client, ClientError> {
        let value = format!("Bearer {}", token.trim()).parse().map_err(|_| {
            ClientError::Address("the token holds characters a header cannot".into())
        })?;
        self.token = TokenInterceptor {
            header: Some(value),
        };
        Ok(self)
    }

    /// The channel to the server (with the token), for service clients this crate does not wrap.
    pub fn channel(&self) -> Conn {
        tonic::service::interceptor::InterceptedService::new(
            self.channel.clone(),
            self.token.clone(),
        )
    }

    /// The server this client is connected to.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Cluster status calls.
    pub fn cluster(&self) -> ClusterServiceClient<Conn> {
        ClusterServiceClient::new(self.channel())
    }

    /// Project calls.
    pub fn projects(&self) -> ProjectServiceClient<Conn> {
        ProjectServiceClient::new(self.channel())
    }

    /// Dataset calls.
    pub fn datasets(&self) -> DatasetServiceClient<Conn> {
        DatasetServiceClient::new(self.channel()).max_decoding_message_size(64 << 20)
    }

    /// Streams `reader` into an import described by `header`; `progress` gets the bytes sent so
    /// far. Returns once the server committed (or rejected) the import.
    pub async fn import<R>(
        &self,
        header: ImportHeader,
        reader: R,
        progress: impl Fn(u64) + Send + 'static,
    ) -> Result<ImportSummary, ClientError>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let source = header.source_name.clone();
        let first = ImportRequest {
            item: Some(import_request::Item::Header(header)),
        };
        let wrap = |data| ImportRequest {
            item: Some(import_request::Item::Data(data)),
        };
        let (stream, reading) = upload(first, wrap, reader, progress);
        let answer = self.datasets().import_examples(stream).await;
        finish_upload(
            reading,
            source,
            answer,
            |message, summary: ImportSummary| ClientError::ImportRejected {
                message,
                summary: Box::new(summary),
            },
        )
        .await
    }

    /// Streams annotations made in another tool (`header.source` says which) into a task; see
    /// `TaskService.ImportAnswers`. `progress` gets the bytes sent so far.
    pub async fn import_answers<R>(
        &self,
        header: ImportAnswersHeader,
        reader: R,
        progress: impl Fn(u64) + Send + 'static,
    ) -> Result<ImportAnswersSummary, ClientError>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let source = header.source_name.clone();
        let first = ImportAnswersRequest {
            item: Some(import_answers_request::Item::Header(header)),
        };
        let wrap = |data| ImportAnswersRequest {
            item: Some(import_answers_request::Item::Data(data)),
        };
        let (stream, reading) = upload(first, wrap, reader, progress);
        let answer = self.tasks().import_answers(stream).await;
        finish_upload(reading, source, answer, |message, summary| {
            ClientError::AnswersRejected {
                message,
                summary: Box::new(summary),
            }
        })
        .await
    }

    /// Imports a local file (see [`Client::import`]).
    pub async fn import_file(
        &self,
        mut header: ImportHeader,
        path: &Path,
        progress: impl Fn(u64) + Send + 'static,
    ) -> Result<ImportSummary, ClientError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|source| ClientError::Io {
                path: path.display().to_string(),
                source,
            })?;
        if header.source_name.is_empty() {
            header.source_name = path.display().to_string();
        }
        self.import(header, file, progress).await
    }

    /// Writes every example of `project/dataset` as JSON Lines to `out`; `progress` gets
    /// (records written, records expected). Returns the number of records.
    pub async fn export<W>(
        &self,
        project: &str,
        dataset: &str,
        out: &mut W,
        progress: impl Fn(u64, u64),
    ) -> Result<u64, ClientError>
    where
        W: AsyncWrite + Unpin,
    {
        let request = ExportRequest {
            project: project.into(),
            dataset: dataset.into(),
        };
        let stream = self.datasets().export_examples(request).await?.into_inner();
        write_chunks(stream, out, progress).await
    }

    /// Writes a task's answers or gold records in `format` to `out` (see [`Client::export`]).
    pub async fn export_answers<W>(
        &self,
        request: ExportAnswersRequest,
        out: &mut W,
        progress: impl Fn(u64, u64),
    ) -> Result<u64, ClientError>
    where
        W: AsyncWrite + Unpin,
    {
        let stream = self.tasks().export_answers(request).await?.into_inner();
        write_chunks(stream, out, progress).await
    }

    /// Task calls.
    pub fn tasks(&self) -> TaskServiceClient<Conn> {
        TaskServiceClient::new(self.channel()).max_decoding_message_size(64 << 20)
    }

    /// Feed calls (annotators).
    pub fn feed(&self) -> FeedServiceClient<Conn> {
        FeedServiceClient::new(self.channel())
    }

    /// User and token calls.
    pub fn users(&self) -> UserServiceClient<Conn> {
        UserServiceClient::new(self.channel())
    }

    /// Review calls.
    pub fn review(&self) -> ReviewServiceClient<Conn> {
        ReviewServiceClient::new(self.channel()).max_decoding_message_size(64 << 20)
    }
}

/// Copies an export stream to `out`, reporting (records written, records expected).
async fn write_chunks<W>(
    mut stream: tonic::Streaming<ExportChunk>,
    out: &mut W,
    progress: impl Fn(u64, u64),
) -> Result<u64, ClientError>
where
    W: AsyncWrite + Unpin,
{
    let (mut records, mut total) = (0u64, 0u64);
    let io = |source| ClientError::Io {
        path: "export output".into(),
        source,
    };
    while let Some(chunk) = stream.message().await? {
        if chunk.total_records > 0 {
            total = chunk.total_records;
        }
        out.write_all(&chunk.data).await.map_err(io)?;
        records += chunk.records;
        progress(records, total);
    }
    out.flush().await.map_err(io)?;
    Ok(records)
}

/// The request stream of an upload: `first`, then `reader`'s bytes in chunks wrapped by `wrap`;
/// and the task reading them (its error is the reader's).
fn upload<M, R>(
    first: M,
    wrap: impl Fn(Vec<u8>) -> M + Send + 'static,
    mut reader: R,
    progress: impl Fn(u64) + Send + 'static,
) -> (
    impl futures::Stream<Item = M>,
    tokio::task::JoinHandle<std::io::Result<()>>,
)
where
    M: Send + 'static,
    R: AsyncRead + Unpin + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<M>(4);
    let reading = tokio::spawn(async move {
        if tx.send(first).await.is_err() {
            return Ok(());
        }
        let mut sent = 0u64;
        loop {
            let mut buf = vec![0u8; IMPORT_CHUNK];
            let mut filled = 0;
            while filled < IMPORT_CHUNK {
                let n = reader.read(&mut buf[filled..]).await?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                return Ok(());
            }
            buf.truncate(filled);
            sent += filled as u64;
            if tx.send(wrap(buf)).await.is_err() {
                return Ok(()); // the server ended the call; its answer says why
            }
            progress(sent);
        }
    });
    (tokio_stream_from(rx), reading)
}

/// The outcome of an upload: the reader's failure first, then the server's answer, with a
/// rejection's summary (in the status details) decoded into `rejected`.
async fn finish_upload<T, S: Message + Default>(
    reading: tokio::task::JoinHandle<std::io::Result<()>>,
    source: String,
    answer: Result<tonic::Response<T>, tonic::Status>,
    rejected: impl FnOnce(String, S) -> ClientError,
) -> Result<T, ClientError> {
    match reading.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(ClientError::Io {
                path: source,
                source: e,
            })
        }
        Err(e) => {
            return Err(ClientError::Io {
                path: source,
                source: std::io::Error::other(e),
            })
        }
    }
    match answer {
        Ok(r) => Ok(r.into_inner()),
        Err(status)
            if status.code() == tonic::Code::InvalidArgument && !status.details().is_empty() =>
        {
            match S::decode(status.details()) {
                Ok(summary) => Err(rejected(status.message().to_string(), summary)),
                Err(_) => Err(status.into()),
            }
        }
        Err(status) => Err(status.into()),
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
