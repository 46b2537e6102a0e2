//! The built-in demo project `gloss up --demo` loads into an empty data directory: a handful of
//! short news-style sentences, and two tasks over them (sections to pick, entities to mark by
//! two annotators each) to try the import, feed, review and export paths on, and demo users
//! to sign in to the web app with.

use bytes::Bytes;
use gloss_proto::v1::{ImportFormat, ImportHeader, ImportSummary, Interface, Task};

use crate::access::Actor;
use crate::error::ServiceError;
use crate::service::Service;

/// Name of the demo project.
pub const PROJECT: &str = "demo";
/// The demo's people (name, role): two annotators, a reviewer and a project manager.
pub const USERS: &[(&str, &str)] = &[
    ("alice", "annotator"),
    ("bob", "annotator"),
    ("rita", "reviewer"),
    ("mona", "manager"),
];
/// The demo users' password. The demo is for a laptop; a real cluster issues its own.
pub const PASSWORD: &str = "gloss-demo";
/// Name of the demo dataset.
pub const DATASET: &str = "headlines";

const HEADLINES: &str = r#"{"text": "Central bank holds interest rates steady for a third month", "meta": {"section": "business"}}
{"text": "Local team wins the regional cup after a late penalty", "meta": {"section": "sport"}}
{"text": "New library opens in the old train station", "meta": {"section": "local"}}
{"text": "Researchers publish a dataset of coastal bird counts", "meta": {"section": "science"}}
{"text": "City council approves the budget for cycle lanes", "meta": {"section": "local"}}
{"text": "Chip maker reports record quarterly revenue", "meta": {"section": "business"}}
{"text": "Heatwave expected to break by the weekend", "meta": {"section": "weather"}}
{"text": "National museum returns artefacts to their country of origin", "meta": {"section": "culture"}}
{"text": "Marathon runner sets a new course record in Lisbon", "meta": {"section": "sport"}}
{"text": "Hospital trial shows shorter waiting times with evening clinics", "meta": {"section": "health"}}
{"text": "Storm closes mountain pass for two days", "meta": {"section": "weather"}}
{"text": "Start-up raises funds to build cheaper heat pumps", "meta": {"section": "business"}}
"#;

/// Loads the demo project when no project exists yet. Returns the import summary when it did.
pub async fn load(service: &Service) -> Result<Option<ImportSummary>, ServiceError> {
    if !service.list_projects().await?.is_empty() {
        return Ok(None);
    }
    let system = &Actor::SYSTEM;
    service
        .create_project(
            system,
            PROJECT,
            "Built-in demo project",
            "demo-project".into(),
        )
        .await?;
    let header = ImportHeader {
        project: PROJECT.into(),
        dataset: DATASET.into(),
        format: ImportFormat::Jsonl as i32,
        create_dataset: true,
        source_name: "built-in demo".into(),
        ..ImportHeader::default()
    };
    let data = futures::stream::iter([Ok(Bytes::from_static(HEADLINES.as_bytes()))]);
    let summary = service.import(system, header, data).await?;
    for task in demo_tasks() {
        service.create_task(system, task).await?;
    }
    for (name, role) in USERS {
        let role = crate::users::parse_role(role)?;
        match service
            .create_user(system, name, "", vec![role as i32], PASSWORD)
            .await
        {
            Ok(_) | Err(ServiceError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(summary))
}

/// The demo's tasks: one section per headline, and entities with two annotators each.
fn demo_tasks() -> Vec<Task> {
    let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
    let mut sections = Task {
        project: PROJECT.into(),
        name: "sections".into(),
        labels: labels(&[
            "business", "sport", "local", "science", "weather", "culture", "health",
        ]),
        source_dataset: DATASET.into(),
        instructions: "Pick the newspaper section this headline belongs to.".into(),
        ..Task::default()
    };
    sections.set_interface(Interface::Choice);
    let mut entities = Task {
        project: PROJECT.into(),
        name: "entities".into(),
        labels: labels(&["PERSON", "ORG", "LOC"]),
        source_dataset: DATASET.into(),
        overlap: 2,
        instructions: "Mark people, organisations and places.".into(),
        ..Task::default()
    };
    entities.set_interface(Interface::Ner);
    vec![sections, entities]
}
