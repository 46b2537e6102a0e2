//! A three-coordinator group in one process: it forms once from the same member list on every
//! node, any node takes writes (followers forward them to the leader) and serves linearizable
//! reads, and the group keeps working when the leader stops.

use std::time::Duration;

use gloss_core::config::Overrides;
use gloss_proto::v1::CreateProjectRequest;
use gloss_tests::{export, free_port, import, jsonl, start_group, start_node_in, Node};

async fn leader_of(node: &Node) -> u64 {
    node.coordinator
        .wait_for_leader(Duration::from_secs(20))
        .await
        .expect("a leader is elected")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_coordinator_takes_writes_and_serves_current_reads() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_group(dir.path(), 3, None, |_| Overrides::default()).await;
    let leader = leader_of(&nodes[0]).await;
    for n in &nodes {
        assert_eq!(
            leader_of(n).await,
            leader,
            "all members agree on the leader"
        );
    }
    // Write through every node (two of them followers), read back through every node.
    for (i, n) in nodes.iter().enumerate() {
        let req = CreateProjectRequest {
            name: format!("p{i}"),
            ..Default::default()
        };
        n.client
            .projects()
            .create_project(req)
            .await
            .expect("write through any node");
    }
    let follower = nodes.iter().find(|n| n.id() != leader).unwrap();
    let body: String = (0..500)
        .map(|i| format!("{{\"text\":\"cluster record {i}\"}}\n"))
        .collect();
    assert_eq!(
        import(&follower.client, jsonl("p0", "d"), body.clone())
            .await
            .unwrap()
            .imported,
        500
    );
    for n in &nodes {
        assert_eq!(n.project_names().await.len(), 3, "read on node is current");
        assert_eq!(export(&n.client, "p0", "d").await, body);
    }
    let status = nodes[0].status().await;
    assert_eq!(status.members.len(), 3);
    // The member list only carried internal addresses; each node records its public one.
    let mut status = nodes[1].status().await;
    for _ in 0..100 {
        if status.members.iter().all(|m| !m.api_address.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = nodes[1].status().await;
    }
    for n in &nodes {
        let m = status.members.iter().find(|m| m.node_id == n.id()).unwrap();
        assert_eq!(m.api_address, n.coordinator.addrs().grpc.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_write_survives_the_loss_of_a_minority_and_a_leader_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = start_group(dir.path(), 3, None, |_| Overrides::default()).await;
    let leader = leader_of(&nodes[0]).await;
    nodes[0].create_project("keep").await;
    import(
        &nodes[1].client,
        jsonl("keep", "d"),
        "{\"text\":\"before\"}\n",
    )
    .await
    .unwrap();

    let idx = nodes.iter().position(|n| n.id() == leader).unwrap();
    let old = nodes.remove(idx);
    old.coordinator.shutdown().await.unwrap();

    let started = std::time::Instant::now();
    while nodes[0]
        .coordinator
        .current_leader()
        .is_none_or(|l| l == leader)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no new leader after the old one stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    import(
        &nodes[0].client,
        jsonl("keep", "d"),
        "{\"text\":\"after\"}\n",
    )
    .await
    .expect("writes resume");
    for n in &nodes {
        let ds = n.dataset("keep", "d").await;
        assert_eq!(ds.example_count, 2);
    }
}

/// A dead coordinator is replaced by a new one with an empty disk: it joins as a learner, catches
/// up by snapshot (the log behind it was compacted) plus log, is promoted, and the old member is
/// removed; nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_member_is_replaced_by_a_new_node_that_catches_up_by_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let members: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
        .collect();
    let settings = |id: u64, port: u16, initial: Option<String>| Overrides {
        node_id: Some(id),
        raft_listen: format!("127.0.0.1:{port}").parse().ok(),
        initial_members: initial,
        join: Some(true).filter(|_| id == 4),
        snapshot_every: Some(100),
        import_batch: Some(10),
        ..Overrides::default()
    };
    let mut nodes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let node = start_node_in(
            &dir.path().join(format!("n{}", i + 1)),
            settings(i as u64 + 1, *port, Some(members.join(","))),
        )
        .await;
        nodes.push(node);
    }
    leader_of(&nodes[0]).await;
    nodes[0]
        .coordinator
        .ensure_admin(Duration::from_secs(30))
        .await
        .unwrap();
    nodes[0].create_project("p").await;
    // ~300 entries: snapshots are built and the log is compacted on every member.
    let body: String = (0..3000)
        .map(|i| format!("{{\"text\":\"replace record {i}\"}}\n"))
        .collect();
    import(&nodes[0].client, jsonl("p", "d"), body.clone())
        .await
        .unwrap();

    // Node 3 dies; node 4 starts empty and is added in its place.
    let dead = nodes.pop().unwrap();
    dead.coordinator.shutdown().await.unwrap();
    let port4 = free_port();
    let new = start_node_in(&dir.path().join("n4"), settings(4, port4, None)).await;
    let cluster = nodes[1].client.cluster();
    let add = gloss_proto::v1::AddLearnerRequest {
        node_id: 4,
        raft_address: format!("127.0.0.1:{port4}"),
        api_address: String::new(),
    };
    cluster
        .clone()
        .add_learner(add)
        .await
        .expect("learner added and caught up");
    cluster
        .clone()
        .promote_member(gloss_proto::v1::PromoteMemberRequest { node_id: 4 })
        .await
        .expect("promoted");
    let status = cluster
        .clone()
        .remove_member(gloss_proto::v1::RemoveMemberRequest { node_id: 3 })
        .await
        .expect("removed")
        .into_inner();
    let mut ids: Vec<u64> = status.members.iter().map(|m| m.node_id).collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2, 4]);
    assert!(status.members.iter().all(|m| m.voter));

    let joined = new.status().await;
    assert!(
        joined.snapshot_index > 0,
        "the new member caught up through a snapshot: {joined:?}"
    );
    // The new member serves current reads of everything, including data from before it joined.
    assert_eq!(export(&new.client, "p", "d").await, body);
    import(
        &new.client,
        jsonl("p", "e"),
        "{\"text\":\"after the swap\"}\n",
    )
    .await
    .expect("writes through the new member");
    for n in nodes.iter().chain([&new]) {
        let ds = n.dataset("p", "e").await;
        assert_eq!(ds.example_count, 1);
    }
}

/// The client moves to another coordinator when the one it talks to goes away, and a retried
/// write with an idempotency key is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_retries_on_another_coordinator_with_the_same_idempotency_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = start_group(dir.path(), 3, None, |_| Overrides::default()).await;
    leader_of(&nodes[0]).await;
    let servers: Vec<String> = nodes
        .iter()
        .map(|n| n.coordinator.addrs().grpc.to_string())
        .collect();
    let client = gloss_tests::connect(&servers).await.unwrap();
    assert_eq!(client.server(), servers[0]);
    let first = nodes.remove(0);
    first.coordinator.shutdown().await.unwrap();
    let request = CreateProjectRequest {
        name: "once".into(),
        description: String::new(),
        idempotency_key: "key-1".into(),
    };
    for _ in 0..2 {
        let reply = client
            .retry(Duration::from_secs(20), |c| {
                let request = request.clone();
                async move { c.projects().create_project(request).await }
            })
            .await
            .expect("retried on a live coordinator");
        assert_eq!(reply.into_inner().name, "once");
    }
    assert_eq!(nodes[0].project_names().await, vec!["once".to_string()]);
}
