//! Backup and restore: a backup taken while the cluster serves holds every acknowledged write;
//! a new cluster restored from it has the same state (digests per column family) and answers
//! the same; restoring over existing projects or from a damaged file is refused.

use futures::StreamExt;
use gloss_coordinator::access::Actor;
use gloss_proto::v1::*;
use gloss_tests::{export, seed_choice_gold, start_node};

async fn backup_bytes(client: &gloss_client::Client) -> Vec<u8> {
    let mut stream = client
        .cluster()
        .create_backup(CreateBackupRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap().data);
    }
    out
}

async fn restore(
    client: &gloss_client::Client,
    bytes: Vec<u8>,
) -> Result<RestoreSummary, tonic::Status> {
    let chunks: Vec<BackupChunk> = bytes
        .chunks(7_000)
        .map(|c| BackupChunk { data: c.to_vec() })
        .collect();
    client
        .cluster()
        .restore_backup(futures::stream::iter(chunks))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_restored_from_a_backup_has_the_same_state() {
    let a = start_node().await;
    seed_choice_gold(&a.client, 30).await;
    let sa = a.coordinator.service().clone();
    sa.create_user(
        &Actor::SYSTEM,
        "carol",
        "",
        vec![Role::Annotator as i32],
        "carol-password",
    )
    .await
    .unwrap();
    let bytes = backup_bytes(&a.client).await;
    assert!(bytes.starts_with(b"GLOSSBACKUP1\n"));

    let b = start_node().await;
    // The new cluster's own first administrator is replaced by the backup's users.
    b.coordinator
        .service()
        .bootstrap_admin("admin")
        .await
        .unwrap();
    let summary = restore(&b.client, bytes.clone()).await.unwrap();
    assert!(summary.records > 30);
    assert_eq!(summary.digests.len(), gloss_store::state_cf::ALL.len());

    // Same digests, recomputed independently on both clusters.
    let digest = |n: &gloss_tests::Node| {
        let db = n.coordinator.service().state_db();
        let snapshot = db.snapshot();
        gloss_state::backup::content_digest(&db, &snapshot).unwrap()
    };
    // Everything but the audit log (and its counter) is identical; the restored cluster's log
    // is the source's plus one entry: the restore itself.
    let without_audit = |d: Vec<(&'static str, String)>| -> Vec<(&'static str, String)> {
        d.into_iter()
            .filter(|(cf, _)| {
                *cf != gloss_store::state_cf::AUDIT && *cf != gloss_store::state_cf::META
            })
            .collect()
    };
    assert_eq!(without_audit(digest(&a)), without_audit(digest(&b)));
    let events = |n: &gloss_tests::Node| {
        gloss_state::audit::events(&n.coordinator.service().state_db(), 0, 10_000).unwrap()
    };
    let (ea, eb) = (events(&a), events(&b));
    assert_eq!(eb.len(), ea.len() + 1, "{eb:?}");
    assert_eq!(
        &eb[..ea.len()],
        &ea[..],
        "the source's audit log came back as it was"
    );
    assert_eq!(eb.last().unwrap().action, "restore_backup");
    assert_eq!(eb.last().unwrap().actor, "admin");
    // And the same answers through the API: data, tasks, gold, users.
    assert_eq!(
        export(&a.client, "films", "reviews").await,
        export(&b.client, "films", "reviews").await
    );
    let progress = b
        .client
        .tasks()
        .get_progress(GetProgressRequest {
            project: "films".into(),
            task: "polarity".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((progress.done, progress.gold), (30, 30));
    let sb = b.coordinator.service().clone();
    assert!(sb.sign_in("carol", "carol-password").await.is_ok());
    let users: Vec<String> = sb
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(
        users,
        vec!["admin".to_string(), "carol".to_string()],
        "exactly the backup's users"
    );
    // New writes after a restore get fresh ids (the counters came back too).
    let next = sb
        .next_examples(
            &Actor::SYSTEM,
            NextRequest {
                project: "films".into(),
                task: "polarity".into(),
                annotator: "someone".into(),
                count: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        next.examples.is_empty() && next.exhausted,
        "every example already has its answer"
    );

    // A cluster that holds projects refuses; a damaged file is refused with the reason.
    let err = restore(&b.client, bytes.clone()).await.unwrap_err();
    assert!(
        err.message().contains("holds no project"),
        "{}",
        err.message()
    );
    let c = start_node().await;
    let mut cut = bytes.clone();
    cut.truncate(bytes.len() - 3);
    let err = restore(&c.client, cut).await.unwrap_err();
    assert!(
        err.message().contains("after the last complete row"),
        "{}",
        err.message()
    );
    let err = restore(&c.client, b"not a backup at all".to_vec())
        .await
        .unwrap_err();
    assert!(err.message().contains("GLOSSBACKUP1"), "{}", err.message());
}
