//! Multi-process: `kill -9` a coordinator during and after imports, restart it from its data
//! directory, and check that every acknowledged import is complete and no import is half-visible.
//!
//! `GLOSS_CRASH_ROUNDS` sets the number of kills (default 4).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gloss_client::Client;
use gloss_proto::v1::{CreateProjectRequest, GetDatasetRequest};
use gloss_tests::{export, free_port, import, jsonl, NodeProcess};

const BINARY: &str = env!("CARGO_BIN_EXE_gloss-under-test");
const RECORDS: u64 = 3_000;

#[derive(Default)]
struct Ledger {
    /// Imports the server acknowledged: (dataset, records).
    acked: Vec<String>,
    /// Imports whose outcome the client never learned.
    unknown: Vec<String>,
}

fn body(dataset: &str) -> String {
    (0..RECORDS)
        .map(|i| format!("{{\"text\":\"{dataset} record {i}\",\"meta\":{{\"i\":{i}}}}}\n"))
        .collect()
}

async fn count(client: &Client, dataset: &str) -> Option<u64> {
    let req = GetDatasetRequest {
        project: "crash".into(),
        name: dataset.into(),
    };
    match client.datasets().get_dataset(req).await {
        Ok(d) => Some(d.into_inner().example_count),
        Err(s) if s.code() == tonic::Code::NotFound => None,
        Err(s) => panic!("get_dataset {dataset}: {s}"),
    }
}

async fn verify(client: &Client, ledger: &Ledger) {
    for dataset in &ledger.acked {
        assert_eq!(
            count(client, dataset).await,
            Some(RECORDS),
            "acknowledged import into {dataset} is incomplete"
        );
        assert_eq!(
            export(client, "crash", dataset).await,
            body(dataset),
            "export of {dataset} differs"
        );
    }
    for dataset in &ledger.unknown {
        match count(client, dataset).await {
            None | Some(0) => {}
            Some(RECORDS) => assert_eq!(export(client, "crash", dataset).await, body(dataset)),
            Some(n) => panic!("import into {dataset} is half-visible: {n} of {RECORDS} records"),
        }
    }
}

async fn importer(
    client: Client,
    round: u32,
    worker: u32,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) {
    for k in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let dataset = format!("r{round}-w{worker}-{k}");
        match import(&client, jsonl("crash", &dataset), body(&dataset)).await {
            Ok(s) => {
                assert_eq!(s.imported, RECORDS, "{dataset}");
                ledger.lock().unwrap().acked.push(dataset);
            }
            Err(_) => {
                ledger.lock().unwrap().unknown.push(dataset);
                return; // the node is gone
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_never_loses_an_acknowledged_import() {
    let rounds: u32 = std::env::var("GLOSS_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let (grpc, http, raft) = (free_port(), free_port(), free_port());
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..=rounds {
        let node = NodeProcess::start(BINARY, &data, grpc, http, raft);
        let client = node.ready(Duration::from_secs(60)).await;
        if round == 0 {
            let req = CreateProjectRequest {
                name: "crash".into(),
                ..Default::default()
            };
            client.projects().create_project(req).await.unwrap();
        }
        {
            let snapshot = std::mem::take(&mut *ledger.lock().unwrap());
            verify(&client, &snapshot).await;
            *ledger.lock().unwrap() = snapshot;
        }
        if round == rounds {
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..3)
            .map(|w| {
                tokio::spawn(importer(
                    client.clone(),
                    round,
                    w,
                    stop.clone(),
                    ledger.clone(),
                ))
            })
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(300 + seed % 1500)).await;
        if round % 2 == 1 {
            // Kill an idle node: every import it acknowledged must be there after restart.
            stop.store(true, Ordering::SeqCst);
            for w in workers {
                w.await.unwrap();
            }
            node.kill9();
        } else {
            node.kill9();
            for w in workers {
                w.await.unwrap();
            }
        }
    }
    let ledger = ledger.lock().unwrap();
    assert!(
        !ledger.acked.is_empty(),
        "no import was acknowledged; the test proved nothing"
    );
    eprintln!("{} acknowledged imports survived {rounds} kills; {} in flight at a kill were all-or-nothing", ledger.acked.len(), ledger.unknown.len());
}
