//! `glossctl task ...`: create, inspect, close and export annotation tasks; progress, agreement,
//! the review queue and annotator groups.

use anyhow::{bail, Result};
use clap::Subcommand;
use gloss_client::Client;
use gloss_proto::v1::*;

use crate::output::{print_one, Output};
use crate::{split, write_export, ExportSource};

#[derive(Subcommand)]
pub enum TaskCmd {
    /// Create a task over a source dataset (PROJECT/TASK).
    Create {
        task: String,
        /// Source dataset in the same project.
        #[arg(long)]
        dataset: String,
        /// binary, choice, multi-choice, ner, ner-correct, spans, relations, image-boxes or
        /// image-choice.
        #[arg(long)]
        interface: String,
        /// The label scheme, comma-separated (span labels for a relations task, box labels for
        /// an image-boxes task).
        #[arg(long, value_delimiter = ',', required = true)]
        labels: Vec<String>,
        /// Relations tasks: the labels a relation may carry, comma-separated (required there).
        #[arg(long, value_delimiter = ',')]
        relation_labels: Vec<String>,
        /// Distinct annotators per example.
        #[arg(long, default_value_t = 1)]
        overlap: u32,
        /// Who may annotate: user names and group:NAME, comma-separated (default: anyone).
        #[arg(long, value_delimiter = ',')]
        pool: Vec<String>,
        /// sequential, random or uncertainty.
        #[arg(long, default_value = "sequential")]
        ordering: String,
        /// Seed of the random ordering.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Seconds a lease lasts after the annotator's last activity.
        #[arg(long, default_value_t = 30)]
        lease_ttl_secs: u64,
        /// When complete answers go to review: any (any difference) or per-label.
        #[arg(long, default_value = "any")]
        disagreement: String,
        /// Labels that count under --disagreement per-label (default: all).
        #[arg(long, value_delimiter = ',')]
        review_labels: Vec<String>,
        /// Shown to annotators above each example.
        #[arg(long, default_value = "")]
        instructions: String,
    },
    /// List a project's tasks.
    List { project: String },
    /// Show one task.
    Show { task: String },
    /// Close a task: no more examples are handed out.
    Close { task: String },
    /// Progress of the task and each annotator.
    Progress { task: String },
    /// Inter-annotator agreement, overall and per label.
    Agreement { task: String },
    /// The review queue: examples whose answers disagree.
    Review {
        task: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Export answers (or --gold records) as prodigy, conll or hf JSONL, a spaCy DocBin or a
    /// COCO JSON document (image-boxes tasks) (to -o FILE or stdout).
    Export {
        task: String,
        /// Export the gold records instead of every answer.
        #[arg(long)]
        gold: bool,
        /// prodigy, conll, hf, spacy (a binary DocBin: give -o FILE.spacy) or coco.
        #[arg(long, default_value = "prodigy")]
        format: String,
    },
    /// Import annotations made in another tool into the task (PROJECT/TASK): Prodigy answer
    /// JSONL, a Label Studio JSON export or a spaCy DocBin. Examples join the task's source
    /// dataset; each annotation becomes an answer by its annotator (gold once the task's overlap
    /// is met and the answers agree). All or nothing; importing the same file again adds nothing.
    ImportAnswers {
        task: String,
        file: std::path::PathBuf,
        /// prodigy, label-studio or spacy.
        #[arg(long)]
        from: String,
        /// Annotator of annotations whose source names none (DocBins; Prodigy lines without
        /// `_annotator_id` or `_session_id`).
        #[arg(long)]
        annotator: Option<String>,
        /// Label Studio: the `data` key holding the text.
        #[arg(long, default_value = "text")]
        text_key: String,
    },
    /// Attach a model's or teacher's suggestions from a JSONL file, one per line:
    /// {"seq": 3, "labels": ["POS"], "spans": [{"start": 0, "end": 5, "label": "ORG"}],
    /// "score": 0.42, "source": "teacher"}; relations tasks may add "relations": [{"head": 0,
    /// "child": 1, "label": "WORKS_AT"}] (indices into "spans"). The uncertainty ordering serves
    /// low scores first.
    Suggest {
        task: String,
        file: std::path::PathBuf,
    },
    /// Define a group of annotators (PROJECT/GROUP) usable in pools as group:GROUP.
    Group {
        group: String,
        /// Members, comma-separated.
        #[arg(value_delimiter = ',')]
        members: Vec<String>,
    },
}

fn parse_interface(s: &str) -> Result<Interface> {
    Ok(match s.replace('_', "-").as_str() {
        "binary" => Interface::Binary,
        "choice" => Interface::Choice,
        "multi-choice" => Interface::MultiChoice,
        "ner" => Interface::Ner,
        "ner-correct" => Interface::NerCorrect,
        "spans" => Interface::Spans,
        "relations" => Interface::Relations,
        "image-boxes" => Interface::ImageBoxes,
        "image-choice" => Interface::ImageChoice,
        other => bail!(
            "unknown interface {other:?}; use binary, choice, multi-choice, ner, ner-correct, spans, relations, image-boxes or image-choice"
        ),
    })
}

fn parse_ordering(s: &str) -> Result<Ordering> {
    Ok(match s {
        "sequential" => Ordering::Sequential,
        "random" => Ordering::Random,
        "uncertainty" => Ordering::Uncertainty,
        other => bail!("unknown ordering {other:?}; use sequential, random or uncertainty"),
    })
}

fn parse_format(s: &str) -> Result<ExportFormat> {
    Ok(match s {
        "prodigy" | "jsonl" => ExportFormat::Prodigy,
        "conll" | "iob" => ExportFormat::Conll,
        "hf" | "huggingface" => ExportFormat::Hf,
        "spacy" | "docbin" => ExportFormat::Spacy,
        "coco" => ExportFormat::Coco,
        other => bail!("unknown export format {other:?}; use prodigy, conll, hf, spacy or coco"),
    })
}

/// Whether this command writes an export (and so uses -o as a file name).
pub fn is_export(cmd: &TaskCmd) -> bool {
    matches!(cmd, TaskCmd::Export { .. })
}

pub async fn run(client: &Client, out: Output, to: Option<&str>, cmd: TaskCmd) -> Result<()> {
    let mut api = client.tasks();
    match cmd {
        TaskCmd::Create {
            task,
            dataset,
            interface,
            labels,
            relation_labels,
            overlap,
            pool,
            ordering,
            seed,
            lease_ttl_secs,
            disagreement,
            review_labels,
            instructions,
        } => {
            let (project, name) = split(&task)?;
            let disagreement = match disagreement.as_str() {
                "any" => DisagreementPolicy::Any,
                "per-label" | "per_label" => DisagreementPolicy::PerLabel,
                other => bail!("unknown disagreement policy {other:?}; use any or per-label"),
            };
            let mut t = Task {
                project,
                name,
                labels,
                relation_labels,
                source_dataset: dataset,
                overlap,
                pool,
                seed,
                lease_ttl_ms: lease_ttl_secs.saturating_mul(1000),
                review_labels,
                instructions,
                ..Task::default()
            };
            t.set_interface(parse_interface(&interface)?);
            t.set_ordering(parse_ordering(&ordering)?);
            t.set_disagreement(disagreement);
            let created = api
                .create_task(CreateTaskRequest { task: Some(t) })
                .await?
                .into_inner();
            out.task(&created)
        }
        TaskCmd::List { project } => out.tasks(
            &api.list_tasks(ListTasksRequest { project })
                .await?
                .into_inner()
                .tasks,
        ),
        TaskCmd::Show { task } => {
            let (project, task) = split(&task)?;
            out.task(
                &api.get_task(GetTaskRequest { project, task })
                    .await?
                    .into_inner(),
            )
        }
        TaskCmd::Close { task } => {
            let (project, task) = split(&task)?;
            out.task(
                &api.close_task(CloseTaskRequest { project, task })
                    .await?
                    .into_inner(),
            )
        }
        TaskCmd::Progress { task } => {
            let (project, task) = split(&task)?;
            out.progress(
                &api.get_progress(GetProgressRequest { project, task })
                    .await?
                    .into_inner(),
            )
        }
        TaskCmd::Agreement { task } => {
            let (project, task) = split(&task)?;
            out.agreement(
                &api.get_agreement(GetAgreementRequest { project, task })
                    .await?
                    .into_inner(),
            )
        }
        TaskCmd::Review { task, limit } => {
            let (project, task) = split(&task)?;
            let page = client
                .review()
                .list_review_queue(ListReviewQueueRequest {
                    project,
                    task,
                    page_size: limit,
                    after_seq: 0,
                })
                .await?
                .into_inner();
            out.review(&page)
        }
        TaskCmd::Export { task, gold, format } => {
            let (project, name) = split(&task)?;
            let request = ExportAnswersRequest {
                project,
                task: name,
                selection: if gold {
                    ExportSelection::Gold
                } else {
                    ExportSelection::Answers
                } as i32,
                format: parse_format(&format)? as i32,
            };
            write_export(client, &task, ExportSource::Task(request), to).await
        }
        TaskCmd::ImportAnswers {
            task,
            file,
            from,
            annotator,
            text_key,
        } => import_answers(client, out, &task, &file, &from, annotator, text_key).await,
        TaskCmd::Suggest { task, file } => {
            let (project, name) = split(&task)?;
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            let suggestions = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| {
                    parse_suggestion(l).map_err(|e| anyhow::anyhow!("line {}: {e}", i + 1))
                })
                .collect::<Result<Vec<_>>>()?;
            let stored = api
                .set_suggestions(SetSuggestionsRequest {
                    project,
                    task: name,
                    suggestions,
                })
                .await?
                .into_inner()
                .stored;
            out.done(&format!("stored {stored} suggestion(s) on {task}"))
        }
        TaskCmd::Group { group, members } => {
            let (project, name) = split(&group)?;
            let g = api
                .set_group(SetGroupRequest {
                    group: Some(Group {
                        project,
                        name,
                        members,
                    }),
                })
                .await?
                .into_inner();
            out.done(&format!(
                "group {}/{} has {} member(s): {}",
                g.project,
                g.name,
                g.members.len(),
                g.members.join(", ")
            ))
        }
    }
}

/// One suggestion from a JSONL line; errors name the field.
/// The optional array field `key` of `obj` (`what` it should be, for the error), each element
/// read by `item` (given its index).
fn list<T>(
    obj: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    what: &str,
    item: impl Fn(usize, &serde_json::Value) -> Result<T>,
) -> Result<Vec<T>> {
    match obj.get(key) {
        None => Ok(Vec::new()),
        Some(serde_json::Value::Array(a)) => {
            a.iter().enumerate().map(|(i, v)| item(i, v)).collect()
        }
        Some(_) => bail!("field `{key}`: expected {what}"),
    }
}

fn parse_suggestion(line: &str) -> Result<Suggestion> {
    use serde_json::Value;
    let v: Value = serde_json::from_str(line).map_err(|e| anyhow::anyhow!("not JSON: {e}"))?;
    let Some(obj) = v.as_object() else {
        bail!("expected a JSON object");
    };
    for key in obj.keys() {
        if !["seq", "labels", "spans", "relations", "score", "source"].contains(&key.as_str()) {
            bail!("unknown field `{key}`");
        }
    }
    let seq = obj
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or_else(|| anyhow::anyhow!("field `seq`: an example number is required"))?;
    let strings = |field: &str, v: &Value| -> Result<String> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("field `{field}`: expected a string"))
    };
    // `v[key]` as a u32, or an error naming `path.key` and what it should be.
    let number = |v: &Value, path: &str, key: &str, what: &str| -> Result<u32> {
        v.get(key)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| anyhow::anyhow!("field `{path}.{key}`: expected {what}"))
    };
    let label_of = |v: &Value, path: &str| -> Result<String> {
        strings(
            &format!("{path}.label"),
            v.get("label").unwrap_or(&Value::Null),
        )
    };
    let labels = list(obj, "labels", "an array of strings", |i, l| {
        strings(&format!("labels[{i}]"), l)
    })?;
    let spans = list(obj, "spans", "an array", |i, s| {
        let path = format!("spans[{i}]");
        Ok(Span {
            start: number(s, &path, "start", "an offset")?,
            end: number(s, &path, "end", "an offset")?,
            label: label_of(s, &path)?,
            ..Span::default()
        })
    })?;
    let relations = list(obj, "relations", "an array", |i, r| {
        let path = format!("relations[{i}]");
        Ok(Relation {
            head: number(r, &path, "head", "a span index")?,
            child: number(r, &path, "child", "a span index")?,
            label: label_of(r, &path)?,
        })
    })?;
    let score = match obj.get("score") {
        None => 0.0,
        Some(v) => v
            .as_f64()
            .ok_or_else(|| anyhow::anyhow!("field `score`: expected a number"))?,
    };
    let source = match obj.get("source") {
        None => String::new(),
        Some(v) => strings("source", v)?,
    };
    Ok(Suggestion {
        seq,
        labels,
        spans,
        relations,
        score,
        source,
    })
}

/// `task import-answers`: streams the file with a progress bar and prints the summary.
async fn import_answers(
    client: &Client,
    out: Output,
    task: &str,
    file: &std::path::Path,
    from: &str,
    annotator: Option<String>,
    text_key: String,
) -> Result<()> {
    let (project, name) = split(task)?;
    let source = match from {
        "prodigy" => AnswerSource::Prodigy,
        "label-studio" | "labelstudio" => AnswerSource::LabelStudio,
        "spacy" | "docbin" => AnswerSource::Spacy,
        other => anyhow::bail!("unknown source {other:?}; use --from prodigy|label-studio|spacy"),
    };
    let size = std::fs::metadata(file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
        .len();
    let reader = tokio::fs::File::open(file)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let header = ImportAnswersHeader {
        project,
        task: name,
        source: source as i32,
        default_annotator: annotator.unwrap_or_default(),
        text_key,
        source_name: file.display().to_string(),
    };
    let pb = crate::bar(
        size,
        "{spinner} importing {bytes}/{total_bytes} {wide_bar} {bytes_per_sec} eta {eta}",
    );
    let progress = pb.clone();
    let result = client
        .import_answers(header, reader, move |sent| progress.set_position(sent))
        .await;
    pb.finish_and_clear();
    match result {
        Ok(s) => {
            if let Output::Json = out {
                return print_one("gloss.v1.ImportAnswersSummary", &s);
            }
            println!(
                "{} records: {} examples added, {} already there; {} answers recorded, {} already recorded",
                s.records_read, s.examples_added, s.examples_existing, s.answers_recorded, s.answers_existing
            );
            Ok(())
        }
        Err(gloss_client::ClientError::AnswersRejected { message, summary }) => {
            crate::rejected(&message, &summary.errors, summary.invalid)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestion_lines_parse_and_errors_name_the_field() {
        let s = parse_suggestion(
            r#"{"seq": 3, "spans": [{"start": 0, "end": 5, "label": "ORG"}], "score": 0.4, "source": "t"}"#,
        )
        .unwrap();
        assert_eq!((s.seq, s.spans[0].end, s.score), (3, 5, 0.4));
        let err = |l: &str| parse_suggestion(l).unwrap_err().to_string();
        assert!(err(r#"{"labels": ["A"]}"#).contains("`seq`"));
        assert!(
            err(r#"{"seq": 1, "spans": [{"start": 0, "label": "X"}]}"#).contains("spans[0].end")
        );
        assert!(err(r#"{"seq": 1, "lables": []}"#).contains("`lables`"));
        assert!(err("[1]").contains("object"));
        assert!(
            err(r#"{"seq": 1, "labels": "A"}"#).contains("`labels`: expected an array of strings")
        );
        let s = parse_suggestion(
            r#"{"seq": 2, "spans": [{"start": 0, "end": 3, "label": "P"}, {"start": 4, "end": 7, "label": "O"}], "relations": [{"head": 0, "child": 1, "label": "AT"}]}"#,
        )
        .unwrap();
        assert_eq!(
            s.relations,
            [Relation {
                head: 0,
                child: 1,
                label: "AT".into()
            }]
        );
        assert!(
            err(r#"{"seq": 1, "relations": [{"head": 0, "label": "AT"}]}"#)
                .contains("`relations[0].child`: expected a span index")
        );
        assert!(err(r#"{"seq": 1, "relations": [{"head": 0, "child": 1}]}"#)
            .contains("`relations[0].label`"));
    }
}
