//! Five coordinators, each its own process: `kill -9` two of them, the leader among them, and the
//! remaining three (a quorum of five) elect a leader and keep acknowledging writes. Restarted from
//! their data directories, the two killed members catch up and every member serves every
//! acknowledged write, exactly once, with identical state.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use gloss_client::{Client, ClientError};
use gloss_proto::v1::{
    ClusterStatus, CreateProjectRequest, GetClusterStatusRequest, GetDatasetRequest,
    GetStateDigestRequest, ImportSummary, ListProjectsRequest, StateDigest,
};
use gloss_tests::{connect, free_port, jsonl, records, NodeProcess};

const BINARY: &str = env!("CARGO_BIN_EXE_gloss-under-test");
const PROJECT: &str = "five";
const RECORDS: u64 = 300;
/// Longest wait for one call; a call into a dying group may otherwise hang.
const CALL: Duration = Duration::from_secs(5);
/// How long a write keeps retrying across servers while an election settles.
const PATIENCE: Duration = Duration::from_secs(30);
/// How long a member may take to serve what the group acknowledged.
const CATCH_UP: Duration = Duration::from_secs(60);

/// One coordinator process and what it takes to start it again on the same data directory.
struct Member {
    id: u64,
    grpc: u16,
    http: u16,
    raft: u16,
    dir: PathBuf,
    /// Dropping a `NodeProcess` kills it, so a failing test leaves no coordinator behind.
    process: Option<NodeProcess>,
}

impl Member {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.grpc)
    }

    fn start(&mut self, initial_members: &str) {
        let extra = [
            "--node-id".to_string(),
            self.id.to_string(),
            "--initial-members".into(),
            initial_members.into(),
        ];
        let (grpc, http, raft) = (self.grpc, self.http, self.raft);
        let process = NodeProcess::start_with(BINARY, &self.dir, grpc, http, raft, &extra);
        self.process = Some(process);
    }

    async fn ready(&self) {
        let process = self.process.as_ref().expect("member is running");
        process.ready(CATCH_UP).await;
    }

    fn kill9(&mut self) {
        self.process.take().expect("member is running").kill9();
    }

    /// The end of this member's log (every start appends to it), for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// Writes the group acknowledged.
#[derive(Default)]
struct Acked {
    projects: Vec<String>,
    /// Dataset of [`PROJECT`] → examples it must hold.
    datasets: BTreeMap<String, u64>,
}

/// `call`, answered within [`CALL`] or turned into UNAVAILABLE so [`Client::retry`] moves on.
async fn bounded<T>(
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    match tokio::time::timeout(CALL, call).await {
        Ok(answer) => answer,
        Err(_) => Err(tonic::Status::unavailable(format!(
            "no answer within {CALL:?}"
        ))),
    }
}

/// Creates project `name` with idempotency key `name`, retrying across `client`'s servers.
async fn create_project(client: &Client, name: &str, acked: &mut Acked) {
    let created = client
        .retry(PATIENCE, |c| {
            let req = CreateProjectRequest {
                name: name.into(),
                description: String::new(),
                idempotency_key: name.into(),
            };
            async move { bounded(c.projects().create_project(req)).await }
        })
        .await
        .unwrap_or_else(|e| panic!("project {name} was not acknowledged within {PATIENCE:?}: {e}"));
    assert_eq!(created.into_inner().name, name);
    acked.projects.push(name.into());
}

/// Imports [`RECORDS`] distinct records into `dataset`, retrying across `client`'s servers. A
/// retry after a lost acknowledgement finds every record already there (as duplicates), so the
/// dataset ends with [`RECORDS`] examples whichever attempt committed.
async fn import_records(client: &Client, dataset: &str, acked: &mut Acked) {
    let summary: ImportSummary = client
        .retry(PATIENCE, |c| {
            let dataset = dataset.to_string();
            async move {
                let body = records(&dataset, RECORDS as usize);
                let call = gloss_tests::import(&c, jsonl(PROJECT, &dataset), body);
                match tokio::time::timeout(CALL, call).await {
                    Ok(Ok(summary)) => Ok(summary),
                    Ok(Err(ClientError::Status(status))) => Err(*status),
                    Ok(Err(other)) => Err(tonic::Status::internal(other.to_string())),
                    Err(_) => Err(tonic::Status::unavailable(format!(
                        "import not answered within {CALL:?}"
                    ))),
                }
            }
        })
        .await
        .unwrap_or_else(|e| panic!("import into {dataset} was not acknowledged: {e}"));
    assert!(summary.committed, "import into {dataset}: {summary:?}");
    assert_eq!(
        summary.imported + summary.duplicates,
        RECORDS,
        "import into {dataset}: {summary:?}"
    );
    acked.datasets.insert(dataset.into(), RECORDS);
}

/// A client of exactly one coordinator, so reads show what that node serves.
async fn only(addr: &str) -> Result<Client, String> {
    connect(&[addr.to_string()])
        .await
        .map_err(|e| e.to_string())
}

async fn status(addr: &str) -> Option<ClusterStatus> {
    let client = only(addr).await.ok()?;
    let mut cluster = client.cluster();
    let answer = bounded(cluster.get_cluster_status(GetClusterStatusRequest {})).await;
    answer.ok().map(|s| s.into_inner())
}

/// The member of `members` that reports itself leader, with its term, within [`PATIENCE`].
async fn leader(members: &[&Member], unlike: Option<u64>) -> (u64, u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        for m in members {
            if let Some(st) = status(&m.addr()).await {
                if st.role == "leader" && Some(st.node_id) != unlike {
                    return (st.node_id, st.term);
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no leader among nodes {:?} within {PATIENCE:?}",
            members.iter().map(|m| m.id).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What `addr` serves that differs from `acked`, or `None` when it serves exactly that.
async fn difference(addr: &str, acked: &Acked) -> Option<String> {
    let client = match only(addr).await {
        Ok(c) => c,
        Err(e) => return Some(format!("cannot connect: {e}")),
    };
    let listed = bounded(client.projects().list_projects(ListProjectsRequest {})).await;
    let mut served: Vec<String> = match listed {
        Ok(list) => list
            .into_inner()
            .projects
            .into_iter()
            .map(|p| p.name)
            .collect(),
        Err(s) => return Some(format!("listing projects failed: {s}")),
    };
    served.sort();
    let mut expected = acked.projects.clone();
    expected.sort();
    let mut problems = Vec::new();
    if served != expected {
        let missing: Vec<&String> = expected.iter().filter(|p| !served.contains(p)).collect();
        problems.push(format!(
            "projects {served:?} instead of {expected:?} (missing {missing:?})"
        ));
    }
    for (dataset, want) in &acked.datasets {
        let req = GetDatasetRequest {
            project: PROJECT.into(),
            name: dataset.clone(),
        };
        match bounded(client.datasets().get_dataset(req)).await {
            Ok(d) if d.get_ref().example_count == *want => {}
            Ok(d) => problems.push(format!(
                "dataset {PROJECT}/{dataset} has {} of {want} examples",
                d.get_ref().example_count
            )),
            Err(s) => problems.push(format!("dataset {PROJECT}/{dataset}: {s}")),
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// Waits until `member` serves exactly the acknowledged writes, reading through it alone.
async fn serves_everything(member: &Member, acked: &Acked) {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let Some(problem) = difference(&member.addr(), acked).await else {
            return;
        };
        if Instant::now() > deadline {
            panic!(
                "node {} ({}) does not serve every acknowledged write after {CATCH_UP:?}: \
                 {problem}\nlog tail:\n{}",
                member.id,
                member.addr(),
                member.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every member reports the same applied index, then checks their states match.
async fn identical_replicas(members: &[Member]) {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let mut digests: Vec<StateDigest> = Vec::new();
        for m in members {
            let Ok(client) = only(&m.addr()).await else {
                break;
            };
            let mut cluster = client.cluster();
            match bounded(cluster.get_state_digest(GetStateDigestRequest {})).await {
                Ok(d) => digests.push(d.into_inner()),
                Err(_) => break,
            }
        }
        let settled = digests.len() == members.len()
            && digests
                .iter()
                .all(|d| d.applied_index == digests[0].applied_index);
        if settled {
            for d in &digests[1..] {
                assert_eq!(
                    d.column_families, digests[0].column_families,
                    "node {} and node {} differ at index {}",
                    d.node_id, digests[0].node_id, d.applied_index
                );
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "members did not settle on one applied index within {CATCH_UP:?}: {:?}",
            digests
                .iter()
                .map(|d| (d.node_id, d.applied_index))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_node_group_loses_two_members_keeps_writing_and_takes_them_back() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut members: Vec<Member> = (1..=5)
        .map(|id| Member {
            id,
            grpc: free_port(),
            http: free_port(),
            raft: free_port(),
            dir: dir.path().join(format!("n{id}")),
            process: None,
        })
        .collect();
    let initial_members = members
        .iter()
        .map(|m| format!("{}=127.0.0.1:{}", m.id, m.raft))
        .collect::<Vec<_>>()
        .join(",");
    for m in members.iter_mut() {
        m.start(&initial_members);
    }
    for m in &members {
        m.ready().await;
    }
    let all: Vec<String> = members.iter().map(Member::addr).collect();
    let client = connect(&all).await.expect("client connects");
    let mut acked = Acked::default();
    create_project(&client, PROJECT, &mut acked).await;
    import_records(&client, "before", &mut acked).await;
    eprintln!(
        "five nodes: group formed and written to after {:?}",
        started.elapsed()
    );

    // Kill the leader and one follower: three of five remain, still a quorum.
    let everyone: Vec<&Member> = members.iter().collect();
    let (old_leader, old_term) = leader(&everyone, None).await;
    let follower = members.iter().find(|m| m.id != old_leader).unwrap().id;
    let killed = [old_leader, follower];
    let killed_at = Instant::now();
    for m in members.iter_mut().filter(|m| killed.contains(&m.id)) {
        m.kill9();
    }
    let survivors: Vec<&Member> = members.iter().filter(|m| !killed.contains(&m.id)).collect();

    // The three keep acknowledging writes. The first is sent at once, while the election is
    // still open: the client retries across the survivors until one of them takes it.
    let survivor_addrs: Vec<String> = survivors.iter().map(|m| m.addr()).collect();
    let client = connect(&survivor_addrs)
        .await
        .expect("client connects to a survivor");
    for k in 0..5 {
        create_project(&client, &format!("during-{k}"), &mut acked).await;
        if k == 0 {
            eprintln!(
                "five nodes: killed {killed:?}; first write acknowledged after {:?}",
                killed_at.elapsed()
            );
        }
    }
    import_records(&client, "during", &mut acked).await;
    let (new_leader, new_term) = leader(&survivors, Some(old_leader)).await;
    assert!(
        !killed.contains(&new_leader),
        "leader {new_leader} was killed"
    );
    assert!(
        new_term > old_term,
        "new leader {new_leader} in term {new_term}, the killed one led term {old_term}"
    );
    eprintln!(
        "five nodes: node {new_leader} leads term {new_term}; {} projects and {} datasets \
         acknowledged, {:?} after the kills",
        acked.projects.len(),
        acked.datasets.len(),
        killed_at.elapsed()
    );
    for m in &survivors {
        serves_everything(m, &acked).await;
    }

    // Take the two back from their data directories; both catch up and serve everything.
    let restarted_at = Instant::now();
    for m in members.iter_mut().filter(|m| killed.contains(&m.id)) {
        m.start(&initial_members);
    }
    for m in members.iter().filter(|m| killed.contains(&m.id)) {
        m.ready().await;
    }
    // A member taken back is a full member again: it takes writes (forwarding them).
    let returned = members.iter().find(|m| m.id == old_leader).unwrap();
    let through_returned = only(&returned.addr()).await.expect("connects");
    create_project(&through_returned, "after", &mut acked).await;
    for m in &members {
        serves_everything(m, &acked).await;
    }
    identical_replicas(&members).await;
    eprintln!(
        "five nodes: nodes {killed:?} caught up {:?} after restart; test took {:?}",
        restarted_at.elapsed(),
        started.elapsed()
    );
}
