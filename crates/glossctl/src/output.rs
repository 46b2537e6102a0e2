//! Rendering results as aligned tables for people or JSON (proto3 JSON mapping) for scripts.

use anyhow::{bail, Result};
use gloss_proto::v1::{
    AgreementReport, ClusterStatus, Dataset, DatasetKind, ImportSummary, LabelAgreement,
    ListExamplesResponse, ListReviewQueueResponse, Project, Role, Task, TaskProgress, TaskState,
    TokenInfo, User,
};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};

#[derive(Clone, Copy)]
pub enum Output {
    Table,
    Json,
}

fn pool() -> DescriptorPool {
    DescriptorPool::decode(gloss_proto::FILE_DESCRIPTOR_SET).expect("embedded descriptors decode")
}

/// Prints messages as proto3 JSON (one object, or an array of several).
pub fn print_json<M: Message>(full_name: &str, messages: &[M]) -> Result<()> {
    let pool = pool();
    let desc = pool
        .get_message_by_name(full_name)
        .unwrap_or_else(|| panic!("{full_name} is in the descriptor set"));
    let values = messages
        .iter()
        .map(|m| {
            let dynamic = DynamicMessage::decode(desc.clone(), m.encode_to_vec().as_slice())?;
            Ok(serde_json::to_value(&dynamic)?)
        })
        .collect::<Result<Vec<_>>>()?;
    let value = match values.len() {
        1 => values.into_iter().next().expect("one value"),
        _ => serde_json::Value::Array(values),
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

fn kind(k: i32) -> &'static str {
    match DatasetKind::try_from(k) {
        Ok(DatasetKind::Source) => "source",
        Ok(DatasetKind::Annotations) => "annotations",
        Ok(DatasetKind::Gold) => "gold",
        _ => "-",
    }
}

fn metric(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into())
}

fn agreement_row(l: &LabelAgreement) -> Vec<String> {
    vec![
        if l.label.is_empty() {
            "(overall)".into()
        } else {
            l.label.clone()
        },
        l.items.to_string(),
        metric(l.percent_agreement),
        metric(l.cohen_kappa),
        metric(l.fleiss_kappa),
        metric(l.krippendorff_alpha),
        metric(l.span_f1),
    ]
}

fn opt(v: Option<u64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

impl Output {
    pub fn parse(s: Option<&str>) -> Result<Output> {
        match s.unwrap_or("table") {
            "table" => Ok(Output::Table),
            "json" => Ok(Output::Json),
            other => bail!("unknown output format {other:?}; use -o table or -o json"),
        }
    }

    pub fn done(self, message: &str) -> Result<()> {
        match self {
            Output::Table => println!("{message}"),
            Output::Json => println!("{}", serde_json::json!({ "ok": true, "message": message })),
        }
        Ok(())
    }

    pub fn projects(self, projects: &[Project]) -> Result<()> {
        if let Output::Json = self {
            return print_json("gloss.v1.Project", projects);
        }
        let rows = projects
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.dataset_count.to_string(),
                    p.description.clone(),
                ]
            })
            .collect();
        table(&["NAME", "DATASETS", "DESCRIPTION"], rows);
        Ok(())
    }

    pub fn datasets(self, datasets: &[Dataset]) -> Result<()> {
        if let Output::Json = self {
            return print_json("gloss.v1.Dataset", datasets);
        }
        let rows = datasets
            .iter()
            .map(|d| {
                vec![
                    format!("{}/{}", d.project, d.name),
                    kind(d.kind).into(),
                    d.example_count.to_string(),
                    d.total_bytes.to_string(),
                    d.import_count.to_string(),
                ]
            })
            .collect();
        table(&["DATASET", "KIND", "EXAMPLES", "BYTES", "IMPORTS"], rows);
        Ok(())
    }

    pub fn users(self, users: &[User]) -> Result<()> {
        if let Output::Json = self {
            return print_json("gloss.v1.User", users);
        }
        let rows = users
            .iter()
            .map(|u| {
                let names = |roles: &[i32]| {
                    roles
                        .iter()
                        .map(|r| {
                            Role::try_from(*r)
                                .map(|r| r.as_str_name().trim_start_matches("ROLE_").to_lowercase())
                                .unwrap_or_else(|_| r.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let in_projects: Vec<String> = u
                    .project_roles
                    .iter()
                    .map(|p| format!("{}:{}", p.project, names(&p.roles)))
                    .collect();
                vec![
                    u.name.clone(),
                    u.display_name.clone(),
                    names(&u.roles),
                    in_projects.join(" "),
                    if u.has_password { "yes" } else { "no" }.into(),
                    if u.disabled { "disabled" } else { "active" }.into(),
                ]
            })
            .collect();
        table(
            &["USER", "NAME", "ROLES", "IN PROJECTS", "PASSWORD", "STATE"],
            rows,
        );
        Ok(())
    }

    pub fn tokens(self, tokens: &[TokenInfo]) -> Result<()> {
        if let Output::Json = self {
            return print_json("gloss.v1.TokenInfo", tokens);
        }
        let when = |ms: i64| {
            if ms == 0 {
                "never".to_string()
            } else {
                format!("{ms}")
            }
        };
        let rows = tokens
            .iter()
            .map(|t| {
                vec![
                    t.token_id.clone(),
                    t.user.clone(),
                    when(t.expires_at_ms),
                    t.description.clone(),
                ]
            })
            .collect();
        table(&["TOKEN ID", "USER", "EXPIRES (MS)", "DESCRIPTION"], rows);
        Ok(())
    }

    pub fn tasks(self, tasks: &[Task]) -> Result<()> {
        if let Output::Json = self {
            return print_json("gloss.v1.Task", tasks);
        }
        let rows = tasks
            .iter()
            .map(|t| {
                vec![
                    format!("{}/{}", t.project, t.name),
                    t.interface()
                        .as_str_name()
                        .trim_start_matches("INTERFACE_")
                        .to_lowercase(),
                    t.source_dataset.clone(),
                    t.overlap.to_string(),
                    t.labels.join(","),
                    if t.state() == TaskState::Closed {
                        "closed"
                    } else {
                        "open"
                    }
                    .into(),
                ]
            })
            .collect();
        table(
            &["TASK", "INTERFACE", "SOURCE", "OVERLAP", "LABELS", "STATE"],
            rows,
        );
        Ok(())
    }

    pub fn progress(self, p: &TaskProgress) -> Result<()> {
        if let Output::Json = self {
            return print_json("gloss.v1.TaskProgress", std::slice::from_ref(p));
        }
        println!(
            "{}/{}: {} of {} examples done, {} in progress, {} remaining; {} answers ({:.1}/h); review {} pending; gold {}",
            p.project, p.task, p.done, p.total, p.in_progress, p.remaining, p.answers,
            p.answers_per_hour, p.review_pending, p.gold
        );
        let rows = p
            .annotators
            .iter()
            .map(|a| {
                vec![
                    a.annotator.clone(),
                    a.answers.to_string(),
                    a.in_progress.to_string(),
                    format!("{:.1}", a.answers_per_hour),
                ]
            })
            .collect();
        table(&["ANNOTATOR", "ANSWERS", "IN PROGRESS", "ANSWERS/H"], rows);
        Ok(())
    }

    pub fn agreement(self, r: &AgreementReport) -> Result<()> {
        if let Output::Json = self {
            return print_json("gloss.v1.AgreementReport", std::slice::from_ref(r));
        }
        println!("{}/{}: {} annotators", r.project, r.task, r.annotators);
        let mut rows = Vec::new();
        rows.extend(r.overall.iter().map(agreement_row));
        rows.extend(r.labels.iter().map(agreement_row));
        table(
            &[
                "LABEL",
                "ITEMS",
                "AGREEMENT",
                "COHEN",
                "FLEISS",
                "ALPHA",
                "SPAN F1",
            ],
            rows,
        );
        Ok(())
    }

    pub fn review(self, page: &ListReviewQueueResponse) -> Result<()> {
        if let Output::Json = self {
            return print_json(
                "gloss.v1.ListReviewQueueResponse",
                std::slice::from_ref(page),
            );
        }
        println!("{} example(s) waiting for review", page.pending);
        let rows = page
            .items
            .iter()
            .map(|i| {
                let mut text: String = i.text.chars().take(50).collect();
                if i.text.chars().count() > 50 {
                    text.push('…');
                }
                vec![
                    i.seq.to_string(),
                    i.answers
                        .iter()
                        .map(|a| a.annotator.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    i.disputed_labels.join(","),
                    text,
                ]
            })
            .collect();
        table(&["SEQ", "ANNOTATORS", "DISPUTED", "TEXT"], rows);
        Ok(())
    }

    pub fn import(self, s: &ImportSummary) -> Result<()> {
        if let Output::Json = self {
            return print_json("gloss.v1.ImportSummary", std::slice::from_ref(s));
        }
        println!(
            "import {}: {} imported, {} duplicates skipped, {} invalid skipped ({} records, {} bytes read)",
            s.import_id, s.imported, s.duplicates, s.invalid, s.records_read, s.bytes_read
        );
        for e in &s.errors {
            println!("  skipped {e}");
        }
        Ok(())
    }

    pub fn examples(self, page: &ListExamplesResponse) -> Result<()> {
        if let Output::Json = self {
            return print_json("gloss.v1.ListExamplesResponse", std::slice::from_ref(page));
        }
        let rows = page
            .examples
            .iter()
            .map(|e| {
                let mut text: String = e.text.chars().take(80).collect();
                if e.text.chars().count() > 80 {
                    text.push('…');
                }
                vec![
                    e.seq.to_string(),
                    e.input_hash[..12].to_string(),
                    text.replace('\n', " "),
                ]
            })
            .collect();
        table(&["SEQ", "HASH", "TEXT"], rows);
        if !page.next_page_token.is_empty() {
            println!("next page: --page-token {}", page.next_page_token);
        }
        Ok(())
    }

    pub fn cluster(self, s: &ClusterStatus) -> Result<()> {
        if let Output::Json = self {
            return print_json("gloss.v1.ClusterStatus", std::slice::from_ref(s));
        }
        println!(
            "node {} ({}) term {} leader {} | log {} commit {} applied {} snapshot {} purged {} | gloss {} data {}",
            s.node_id,
            s.role,
            s.term,
            opt(s.leader_id),
            s.last_log_index,
            s.commit_index,
            s.applied_index,
            s.snapshot_index,
            s.purged_index,
            s.version,
            s.data_dir
        );
        let rows = s
            .members
            .iter()
            .map(|m| {
                vec![
                    m.node_id.to_string(),
                    m.role.clone(),
                    if m.voter { "voter" } else { "learner" }.into(),
                    m.raft_address.clone(),
                    m.api_address.clone(),
                    opt(m.matched_index),
                    opt(m.lag),
                ]
            })
            .collect();
        table(
            &["ID", "ROLE", "VOTE", "RAFT", "API", "MATCHED", "LAG"],
            rows,
        );
        Ok(())
    }
}
