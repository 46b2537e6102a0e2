//! Commands that arrive together are proposed together: many concurrent writes through a
//! follower travel as a few batch entries, and every caller still gets its own command's result,
//! refusals included, with every replica holding the same state.

use std::time::{Duration, Instant};

use gloss_core::config::Overrides;
use gloss_proto::v1::CreateProjectRequest;
use gloss_tests::start_group;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_entries_and_each_gets_its_own_result() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_group(dir.path(), 3, None, |_| Overrides::default()).await;
    let leader = nodes[0]
        .coordinator
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let follower = nodes.iter().find(|n| n.id() != leader).unwrap();
    let stages = follower.coordinator.service().stages().clone();
    stages.reset();

    // 300 creations at once, 60 of them repeating a name another request also creates: exactly
    // one of each pair is created, the other is refused as existing.
    let names: Vec<String> = (0..300).map(|i| format!("p{}", i % 240)).collect();
    let mut calls = Vec::new();
    for name in &names {
        let client = follower.client.clone();
        let name = name.clone();
        calls.push(tokio::spawn(async move {
            let req = CreateProjectRequest {
                name: name.clone(),
                ..Default::default()
            };
            (name, client.projects().create_project(req).await)
        }));
    }
    let mut created = std::collections::BTreeMap::<String, usize>::new();
    let mut refused = std::collections::BTreeMap::<String, usize>::new();
    for call in calls {
        let (name, result) = call.await.unwrap();
        match result {
            Ok(reply) => {
                assert_eq!(
                    reply.into_inner().name,
                    name,
                    "a caller got another's result"
                );
                *created.entry(name).or_default() += 1;
            }
            Err(status) => {
                assert_eq!(
                    status.code(),
                    tonic::Code::AlreadyExists,
                    "{name}: {status}"
                );
                *refused.entry(name).or_default() += 1;
            }
        }
    }
    assert_eq!(created.len(), 240, "every name was created");
    assert!(created.values().all(|n| *n == 1), "none was created twice");
    assert_eq!(refused.values().sum::<usize>(), 60);
    assert!(refused.keys().all(|n| created.contains_key(n)));

    let (proposals, commands) = stages.proposals();
    assert_eq!(commands, 300, "every command was proposed once");
    assert!(
        proposals < commands,
        "concurrent commands were batched: {proposals} proposals for {commands} commands"
    );

    // Every replica applied the same batches to the same state.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let digests: Vec<_> = nodes
            .iter()
            .map(|n| n.coordinator.service().state_digest().unwrap())
            .collect();
        if digests.windows(2).all(|w| w[0] == w[1]) {
            break;
        }
        assert!(Instant::now() < deadline, "replicas differ: {digests:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in nodes {
        n.coordinator.shutdown().await.unwrap();
    }
}
