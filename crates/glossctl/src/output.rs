//! Rendering results as aligned tables for people or JSON (proto3 JSON mapping) for scripts.

use anyhow::{bail, Result};
use gloss_proto::v1::{
    AgreementReport, ClusterStatus, Dataset, DatasetKind, ImportSummary, LabelAgreement,
    ListExamplesResponse, ListReviewQueueResponse, Project, Role, Task, TaskProgress, TaskState,
    TokenInfo, User,
};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::Value;

#[derive(Clone, Copy)]
pub enum Output {
    Table,
    Json,
}

fn pool() -> DescriptorPool {
    DescriptorPool::decode(gloss_proto::FILE_DESCRIPTOR_SET).expect("embedded descriptors decode")
}

/// Messages in the proto3 JSON mapping, one value each.
fn json_values<'a, M: Message + 'a>(
    full_name: &str,
    messages: impl IntoIterator<Item = &'a M>,
) -> Result<Vec<Value>> {
    let pool = pool();
    let desc = pool
        .get_message_by_name(full_name)
        .unwrap_or_else(|| panic!("{full_name} is in the descriptor set"));
    messages
        .into_iter()
        .map(|m| {
            let dynamic = DynamicMessage::decode(desc.clone(), m.encode_to_vec().as_slice())?;
            Ok(serde_json::to_value(&dynamic)?)
        })
        .collect()
}

/// A list command's result: always an array, even of one item or none, so scripts can
/// `jq '.[]'` whatever the count.
pub fn json_list<M: Message>(full_name: &str, messages: &[M]) -> Result<Value> {
    Ok(Value::Array(json_values(full_name, messages)?))
}

/// A single-result command's result (show, create, update, status...): one object.
pub fn json_one<M: Message>(full_name: &str, message: &M) -> Result<Value> {
    let mut values = json_values(full_name, [message])?;
    Ok(values.pop().expect("one message gives one value"))
}

/// Prints a list command's result as a JSON array; every list command goes through here.
pub fn print_list<M: Message>(full_name: &str, messages: &[M]) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&json_list(full_name, messages)?)?
    );
    Ok(())
}

/// Prints a single-result command's result as one JSON object.
pub fn print_one<M: Message>(full_name: &str, message: &M) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&json_one(full_name, message)?)?
    );
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
        metric(l.relation_f1),
        metric(l.box_f1),
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

    /// Prints one item: a JSON object, or the one-row table of its list command.
    fn one<M: Message>(
        self,
        full_name: &str,
        item: &M,
        table: impl FnOnce(Output, &[M]) -> Result<()>,
    ) -> Result<()> {
        match self {
            Output::Json => print_one(full_name, item),
            Output::Table => table(self, std::slice::from_ref(item)),
        }
    }

    /// One project (show, create).
    pub fn project(self, p: &Project) -> Result<()> {
        self.one("gloss.v1.Project", p, Output::projects)
    }

    /// One dataset (show, create).
    pub fn dataset(self, d: &Dataset) -> Result<()> {
        self.one("gloss.v1.Dataset", d, Output::datasets)
    }

    /// One user (create, update).
    pub fn user(self, u: &User) -> Result<()> {
        self.one("gloss.v1.User", u, Output::users)
    }

    /// One task (show, create, close).
    pub fn task(self, t: &Task) -> Result<()> {
        self.one("gloss.v1.Task", t, Output::tasks)
    }

    pub fn projects(self, projects: &[Project]) -> Result<()> {
        if let Output::Json = self {
            return print_list("gloss.v1.Project", projects);
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
            return print_list("gloss.v1.Dataset", datasets);
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
            return print_list("gloss.v1.User", users);
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
            return print_list("gloss.v1.TokenInfo", tokens);
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
            return print_list("gloss.v1.Task", tasks);
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
                    if t.relation_labels.is_empty() {
                        t.labels.join(",")
                    } else {
                        format!(
                            "{}; relations {}",
                            t.labels.join(","),
                            t.relation_labels.join(",")
                        )
                    },
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
            return print_one("gloss.v1.TaskProgress", p);
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
            return print_one("gloss.v1.AgreementReport", r);
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
                "RELATION F1",
                "BOX F1",
            ],
            rows,
        );
        Ok(())
    }

    pub fn review(self, page: &ListReviewQueueResponse) -> Result<()> {
        if let Output::Json = self {
            return print_one("gloss.v1.ListReviewQueueResponse", page);
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
            return print_one("gloss.v1.ImportSummary", s);
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
            return print_one("gloss.v1.ListExamplesResponse", page);
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
            return print_one("gloss.v1.ClusterStatus", s);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dataset(name: &str) -> Dataset {
        Dataset {
            project: "news".into(),
            name: name.into(),
            example_count: 2,
            ..Dataset::default()
        }
    }

    #[test]
    fn a_list_of_one_item_is_still_an_array() {
        let value = json_list("gloss.v1.Dataset", &[dataset("raw")]).unwrap();
        let items = value.as_array().expect("an array");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["name"], json!("raw"));
        // proto3 JSON: 64-bit integers are strings, field names camelCase.
        assert_eq!(items[0]["exampleCount"], json!("2"));
    }

    #[test]
    fn an_empty_list_is_an_empty_array() {
        let value = json_list::<Project>("gloss.v1.Project", &[]).unwrap();
        assert_eq!(value, json!([]));
        assert_eq!(serde_json::to_string_pretty(&value).unwrap(), "[]");
    }

    #[test]
    fn a_list_of_several_items_is_an_array_in_order() {
        let value = json_list("gloss.v1.Dataset", &[dataset("a"), dataset("b")]).unwrap();
        let names: Vec<&Value> = value
            .as_array()
            .expect("an array")
            .iter()
            .map(|d| &d["name"])
            .collect();
        assert_eq!(names, [&json!("a"), &json!("b")]);
    }

    #[test]
    fn a_single_result_is_one_object() {
        let value = json_one("gloss.v1.Dataset", &dataset("raw")).unwrap();
        assert!(value.is_object(), "{value}");
        assert_eq!(value["name"], json!("raw"));
    }
}
