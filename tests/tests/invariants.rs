//! Raft invariants under injected network faults, on an in-process group whose coordinators share
//! one fault table (the faults sit at the network trait boundary, under the real gRPC transport).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gloss_coordinator::Link;
use gloss_core::config::Overrides;
use gloss_proto::v1::{
    AddLearnerRequest, CreateProjectRequest, PromoteMemberRequest, RemoveMemberRequest,
};
use gloss_tests::{free_port, start_group, start_node_with, Faults, Node};

/// Records, for every term, which nodes believed they were leader in it.
struct LeaderMonitor {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeMap<u64, BTreeSet<u64>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaderMonitor {
    fn watch(nodes: &[&Node]) -> LeaderMonitor {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(BTreeMap::<u64, BTreeSet<u64>>::new()));
        let views: Vec<_> = nodes
            .iter()
            .map(|n| (n.id(), n.coordinator.raft_metrics()))
            .collect();
        let (s, r) = (stop.clone(), seen.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                for (id, metrics) in &views {
                    let (term, is_leader) = {
                        let m = metrics.borrow();
                        (
                            m.current_term,
                            m.current_leader == Some(m.id) && m.state.is_leader(),
                        )
                    };
                    if is_leader {
                        r.lock().unwrap().entry(term).or_default().insert(*id);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        LeaderMonitor { stop, seen, task }
    }

    async fn assert_one_leader_per_term(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        let seen = self.seen.lock().unwrap();
        assert!(!seen.is_empty(), "the monitor saw no leader at all");
        for (term, leaders) in seen.iter() {
            assert_eq!(leaders.len(), 1, "term {term} had leaders {leaders:?}");
        }
    }
}

async fn leader(nodes: &[&Node], timeout: Duration) -> u64 {
    let started = Instant::now();
    loop {
        let leaders: Vec<u64> = nodes
            .iter()
            .filter(|n| n.coordinator.raft_view().1)
            .map(|n| n.id())
            .collect();
        if leaders.len() == 1 {
            return leaders[0];
        }
        assert!(
            started.elapsed() < timeout,
            "no single leader among {:?}",
            nodes.iter().map(|n| n.id()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create(node: &Node, name: &str) -> Result<(), tonic::Status> {
    let req = CreateProjectRequest {
        name: name.into(),
        description: String::new(),
        idempotency_key: name.into(),
    };
    node.client.projects().create_project(req).await.map(|_| ())
}

/// Waits until every node applied the same index, then returns their state digests.
async fn converged_digests(nodes: &[&Node]) -> Vec<Vec<(&'static str, u128)>> {
    let started = Instant::now();
    loop {
        let applied: BTreeSet<u64> = nodes.iter().map(|n| n.coordinator.raft_view().2).collect();
        if applied.len() == 1 {
            let digests: Vec<Vec<(&'static str, u128)>> = nodes
                .iter()
                .map(|n| n.coordinator.service().state_digest().unwrap())
                .collect();
            // A digest taken while an entry was being applied elsewhere may differ: re-check.
            let again: BTreeSet<u64> = nodes.iter().map(|n| n.coordinator.raft_view().2).collect();
            if again == applied {
                return digests;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "replicas did not converge: applied {applied:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_two_leaders_in_one_term_and_a_partitioned_minority_cannot_commit() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let nodes = start_group(dir.path(), 3, Some(faults.clone()), |_| {
        Overrides::default()
    })
    .await;
    let all: Vec<&Node> = nodes.iter().collect();
    let monitor = LeaderMonitor::watch(&all);
    let old = leader(&all, Duration::from_secs(20)).await;
    create(&nodes[0], "before").await.unwrap();

    // Cut the leader off from the others.
    let ids: Vec<u64> = (1..=3).collect();
    faults.isolate(old, &ids);
    let minority = nodes.iter().find(|n| n.id() == old).unwrap();
    let majority: Vec<&Node> = nodes.iter().filter(|n| n.id() != old).collect();
    let commit_before = minority.status().await.commit_index;
    let write = tokio::time::timeout(Duration::from_secs(2), create(minority, "minority")).await;
    assert!(
        !matches!(write, Ok(Ok(()))),
        "the isolated old leader acknowledged a write"
    );
    let after = minority.status().await;
    assert_eq!(
        after.commit_index, commit_before,
        "the isolated minority advanced its commit index"
    );

    // The majority elects a new leader and keeps committing.
    let new = leader(&majority, Duration::from_secs(20)).await;
    assert_ne!(new, old);
    create(majority[0], "majority")
        .await
        .expect("the majority commits");

    faults.heal();
    let digests = converged_digests(&all).await;
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "replicas differ after heal: {digests:x?}"
    );
    monitor.assert_one_leader_per_term().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_heal_every_state_machine_is_identical() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let nodes = start_group(dir.path(), 3, Some(faults.clone()), |_| Overrides {
        snapshot_every: Some(100),
        ..Overrides::default()
    })
    .await;
    let all: Vec<&Node> = nodes.iter().collect();
    let l = leader(&all, Duration::from_secs(20)).await;
    let follower = (1..=3).find(|id| *id != l).unwrap();
    faults.isolate(follower, &[1, 2, 3]);
    // Enough writes while it is away that it must catch up by snapshot as well as log.
    let writer = nodes.iter().find(|n| n.id() != follower).unwrap();
    for i in 0..250 {
        create(writer, &format!("p{i}")).await.unwrap();
    }
    faults.heal();
    let digests = converged_digests(&all).await;
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "replicas differ after heal: {digests:x?}"
    );
    let back = nodes.iter().find(|n| n.id() == follower).unwrap();
    assert_eq!(back.project_names().await.len(), 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_link_delays_a_follower_but_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let nodes = start_group(dir.path(), 3, Some(faults.clone()), |_| {
        Overrides::default()
    })
    .await;
    let all: Vec<&Node> = nodes.iter().collect();
    let l = leader(&all, Duration::from_secs(20)).await;
    let slow = (1..=3).find(|id| *id != l).unwrap();
    // Both directions between the leader and one follower take 150 ms: below the election
    // timeout, so the group keeps its leader and commits through the other follower.
    let delayed = Link {
        drop: false,
        delay: Duration::from_millis(150),
    };
    faults.set(l, slow, delayed);
    faults.set(slow, l, delayed);
    let writer = nodes.iter().find(|n| n.id() == l).unwrap();
    let started = Instant::now();
    for i in 0..40 {
        create(writer, &format!("slow{i}")).await.unwrap();
    }
    // A commit needs one follower: the fast one answers, so writes do not wait for the link.
    assert!(
        started.elapsed() < Duration::from_secs(40 * 150 / 1000),
        "writes waited for the slow link: {:?}",
        started.elapsed()
    );
    // The rule bites: the slow follower has not applied what the leader has.
    let back = nodes.iter().find(|n| n.id() == slow).unwrap();
    assert!(
        back.coordinator.raft_view().2 < writer.coordinator.raft_view().2,
        "the delayed follower kept up, so the delay was not applied"
    );
    faults.heal();
    let digests = converged_digests(&all).await;
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "replicas differ after the link recovered: {digests:x?}"
    );
    assert_eq!(back.project_names().await.len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_change_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_group(dir.path(), 3, None, |_| Overrides::default()).await;
    let all: Vec<&Node> = nodes.iter().collect();
    leader(&all, Duration::from_secs(20)).await;
    let port4 = free_port();
    let joining = Overrides {
        node_id: Some(4),
        raft_listen: format!("127.0.0.1:{port4}").parse().ok(),
        join: Some(true),
        ..Overrides::default()
    };
    let node4 = start_node_with(&dir.path().join("n4"), joining, None).await;

    // Writers on nodes 2 and 3 (node 1 leaves the group) and on the new node 4.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let clients = vec![nodes[1].client.clone(), nodes[2].client.clone()];
    let writers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(w, client)| {
            let (stop, acked) = (stop.clone(), acked.clone());
            tokio::spawn(async move {
                let mut k = 0;
                while !stop.load(Ordering::SeqCst) {
                    let name = format!("w{w}-{k}");
                    let req = CreateProjectRequest {
                        name: name.clone(),
                        description: String::new(),
                        idempotency_key: name.clone(),
                    };
                    if client.projects().create_project(req).await.is_ok() {
                        acked.lock().unwrap().push(name);
                        k += 1;
                    }
                }
            })
        })
        .collect();
    let admin = nodes[1].client.cluster();
    admin
        .clone()
        .add_learner(AddLearnerRequest {
            node_id: 4,
            raft_address: format!("127.0.0.1:{port4}"),
            api_address: String::new(),
        })
        .await
        .unwrap();
    admin
        .clone()
        .promote_member(PromoteMemberRequest { node_id: 4 })
        .await
        .unwrap();
    admin
        .clone()
        .remove_member(RemoveMemberRequest { node_id: 1 })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "too few writes during the change: {}",
        acked.len()
    );
    let remaining: Vec<&Node> = vec![&nodes[1], &nodes[2], &node4];
    for n in &remaining {
        let names: BTreeSet<String> = n.project_names().await.into_iter().collect();
        for name in &acked {
            assert!(
                names.contains(name),
                "acknowledged {name} missing on node {}",
                n.id()
            );
        }
    }
    let digests = converged_digests(&remaining).await;
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "replicas differ: {digests:x?}"
    );
}
