//! A three-coordinator group in one process: it forms once from the same member list on every
//! node, any node takes writes (followers forward them to the leader) and serves linearizable
//! reads, and the group keeps working when the leader stops.

use std::time::Duration;

use gloss_core::config::Overrides;
use gloss_proto::v1::{
    CreateProjectRequest, GetClusterStatusRequest, GetDatasetRequest, ListProjectsRequest,
};
use gloss_tests::{export, free_port, import, jsonl, start_node_in, Node};

async fn start_group(dir: &std::path::Path, n: u64) -> Vec<Node> {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let members: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
        .collect();
    let mut nodes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let settings = Overrides {
            node_id: Some(i as u64 + 1),
            raft_listen: format!("127.0.0.1:{port}").parse().ok(),
            initial_members: Some(members.join(",")),
            ..Overrides::default()
        };
        nodes.push(start_node_in(&dir.join(format!("n{}", i + 1)), settings).await);
    }
    nodes
}

async fn leader_of(node: &Node) -> u64 {
    node.coordinator
        .wait_for_leader(Duration::from_secs(20))
        .await
        .expect("a leader is elected")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_coordinator_takes_writes_and_serves_current_reads() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_group(dir.path(), 3).await;
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
    let follower = nodes
        .iter()
        .find(|n| n.coordinator.service().node_id() != leader)
        .unwrap();
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
        let list = n
            .client
            .projects()
            .list_projects(ListProjectsRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(list.projects.len(), 3, "read on node is current");
        assert_eq!(export(&n.client, "p0", "d").await, body);
    }
    let status = nodes[0]
        .client
        .cluster()
        .get_cluster_status(GetClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.members.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_losing_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = start_group(dir.path(), 3).await;
    let leader = leader_of(&nodes[0]).await;
    let req = CreateProjectRequest {
        name: "keep".into(),
        ..Default::default()
    };
    nodes[0]
        .client
        .projects()
        .create_project(req)
        .await
        .unwrap();
    import(
        &nodes[1].client,
        jsonl("keep", "d"),
        "{\"text\":\"before\"}\n",
    )
    .await
    .unwrap();

    let idx = nodes
        .iter()
        .position(|n| n.coordinator.service().node_id() == leader)
        .unwrap();
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
        let ds = n
            .client
            .datasets()
            .get_dataset(GetDatasetRequest {
                project: "keep".into(),
                name: "d".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ds.example_count, 2);
    }
}
