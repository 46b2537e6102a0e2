//! Rendering results as aligned tables for people or JSON (proto3 JSON mapping) for scripts.

use anyhow::{bail, Result};
use gloss_proto::v1::{
    ClusterStatus, Dataset, DatasetKind, ImportSummary, ListExamplesResponse, Project,
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

fn json<M: Message>(full_name: &str, messages: &[M]) -> Result<()> {
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
            return json("gloss.v1.Project", projects);
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
            return json("gloss.v1.Dataset", datasets);
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

    pub fn import(self, s: &ImportSummary) -> Result<()> {
        if let Output::Json = self {
            return json("gloss.v1.ImportSummary", std::slice::from_ref(s));
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
            return json("gloss.v1.ListExamplesResponse", std::slice::from_ref(page));
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
            return json("gloss.v1.ClusterStatus", std::slice::from_ref(s));
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
