//! `glossctl backup create|restore`: a consistent backup of the whole cluster to a file, and
//! bringing a new cluster up from one.

use anyhow::{Context, Result};
use clap::Subcommand;
use gloss_client::Client;
use gloss_proto::v1::{BackupChunk, CreateBackupRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::output::Output;

#[derive(Subcommand)]
pub enum BackupCmd {
    /// Write a consistent backup of every project, dataset, task, answer, user, job and model
    /// to FILE while the cluster keeps serving.
    Create { file: std::path::PathBuf },
    /// Restore FILE into a new cluster (one that holds no project); its users and tokens are
    /// replaced by the backup's. Checks the restored digests against the backup's.
    Restore { file: std::path::PathBuf },
}

pub async fn run(client: &Client, out: Output, cmd: BackupCmd) -> Result<()> {
    let mut api = client.cluster();
    match cmd {
        BackupCmd::Create { file } => {
            let tmp = file.with_extension("partial");
            let mut f = tokio::fs::File::create(&tmp)
                .await
                .with_context(|| format!("creating {}", tmp.display()))?;
            let mut stream = api
                .create_backup(CreateBackupRequest {})
                .await?
                .into_inner();
            let mut bytes = 0u64;
            while let Some(chunk) = stream.message().await? {
                bytes += chunk.data.len() as u64;
                f.write_all(&chunk.data).await?;
            }
            f.sync_all().await?;
            // Only a complete backup gets the name asked for.
            tokio::fs::rename(&tmp, &file).await?;
            out.done(&format!(
                "backup written to {} ({bytes} bytes)",
                file.display()
            ))
        }
        BackupCmd::Restore { file } => {
            let mut f = tokio::fs::File::open(&file)
                .await
                .with_context(|| format!("opening {}", file.display()))?;
            let (tx, rx) = tokio::sync::mpsc::channel::<BackupChunk>(4);
            let reader = tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = f.read(&mut buf).await?;
                    if n == 0
                        || tx
                            .send(BackupChunk {
                                data: buf[..n].to_vec(),
                            })
                            .await
                            .is_err()
                    {
                        return Ok::<(), std::io::Error>(());
                    }
                }
            });
            let summary = api
                .restore_backup(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await?
                .into_inner();
            reader.await??;
            out.done(&format!(
                "restored {} records (source applied index {}); all {} column family digests match",
                summary.records,
                summary.source_applied_index,
                summary.digests.len()
            ))
        }
    }
}
