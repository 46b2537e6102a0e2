//! Import and export through the real gRPC API of an in-process coordinator.

use gloss_client::ClientError;
use gloss_proto::v1::*;
use gloss_tests::{export, import, jsonl, start_node};

fn rejected(r: Result<ImportSummary, ClientError>) -> ImportSummary {
    match r {
        Err(ClientError::ImportRejected { summary, .. }) => *summary,
        other => panic!("expected a rejected import, got {other:?}"),
    }
}

async fn dataset(client: &gloss_client::Client, project: &str, name: &str) -> Dataset {
    client
        .datasets()
        .get_dataset(GetDatasetRequest {
            project: project.into(),
            name: name.into(),
        })
        .await
        .expect("dataset exists")
        .into_inner()
}

async fn project(client: &gloss_client::Client, name: &str) {
    client
        .projects()
        .create_project(CreateProjectRequest {
            name: name.into(),
            ..Default::default()
        })
        .await
        .expect("project created");
}

#[tokio::test]
async fn export_gives_back_exactly_what_was_imported() {
    let node = start_node().await;
    project(&node.client, "news").await;
    let body = concat!(
        r#"{"text":"First one","meta":{"source":"a"},"_input_hash":123,"_task_hash":-45,"custom":[1,{"x":null}]}"#,
        "\n",
        r#"{"label":"POS","text":"Второй — with spans","spans":[{"start":0,"end":6,"label":"ORD"}],"tokens":[{"text":"Второй","start":0,"end":6,"id":0}]}"#,
        "\n",
        "\n",
        r#"{"text":"Third","options":[{"id":1,"text":"A"}],"answer":"accept"}"#,
        "\n",
    );
    let summary = import(&node.client, jsonl("news", "raw"), body)
        .await
        .unwrap();
    assert!(summary.committed);
    assert_eq!(
        (summary.imported, summary.records_read, summary.duplicates),
        (3, 3, 0)
    );
    let expected: String = body
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(export(&node.client, "news", "raw").await, expected);
    let ds = dataset(&node.client, "news", "raw").await;
    assert_eq!(ds.example_count, 3);
    assert_eq!(ds.import_count, 1);
}

#[tokio::test]
async fn duplicates_are_skipped_and_counted() {
    let node = start_node().await;
    project(&node.client, "p").await;
    let s = import(
        &node.client,
        jsonl("p", "d"),
        "{\"text\":\"a\"}\n{\"text\":\"b\"}\n{\"text\":\"a\",\"meta\":{}}\n",
    )
    .await
    .unwrap();
    assert_eq!((s.imported, s.duplicates), (2, 1));
    let s = import(
        &node.client,
        jsonl("p", "d"),
        "{\"text\":\"b\"}\n{\"text\":\"c\"}\n",
    )
    .await
    .unwrap();
    assert_eq!((s.imported, s.duplicates), (1, 1));
    assert_eq!(dataset(&node.client, "p", "d").await.example_count, 3);
}

#[tokio::test]
async fn a_failed_import_leaves_the_dataset_exactly_as_before() {
    let node = start_node().await;
    project(&node.client, "p").await;
    import(&node.client, jsonl("p", "d"), "{\"text\":\"kept\"}\n")
        .await
        .unwrap();
    let before_export = export(&node.client, "p", "d").await;
    let before = dataset(&node.client, "p", "d").await;
    // 3,000 good records (several replicated batches) and one bad one at the end.
    let mut body: String = (0..3000)
        .map(|i| format!("{{\"text\":\"record {i}\"}}\n"))
        .collect();
    body.push_str("{\"text\": 5}\n");
    let summary = rejected(import(&node.client, jsonl("p", "d"), body).await);
    assert!(!summary.committed);
    assert_eq!(summary.invalid, 1);
    assert_eq!(summary.errors[0].line, 3001);
    assert_eq!(dataset(&node.client, "p", "d").await, before);
    assert_eq!(export(&node.client, "p", "d").await, before_export);
    let page = node
        .client
        .datasets()
        .list_examples(ListExamplesRequest {
            project: "p".into(),
            dataset: "d".into(),
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.examples.len(), 1);
}

#[tokio::test]
async fn a_failed_import_into_a_new_dataset_leaves_no_dataset_behind() {
    let node = start_node().await;
    project(&node.client, "p").await;
    let project_before = node
        .client
        .projects()
        .get_project(GetProjectRequest { name: "p".into() })
        .await
        .unwrap()
        .into_inner();
    let body = "{\"text\":\"good\"}\n{\"text\": 5}\n";
    let summary = rejected(import(&node.client, jsonl("p", "fresh"), body).await);
    assert!(!summary.committed);
    let err = node
        .client
        .datasets()
        .get_dataset(GetDatasetRequest {
            project: "p".into(),
            name: "fresh".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    let project_after = node
        .client
        .projects()
        .get_project(GetProjectRequest { name: "p".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(project_after, project_before);
    // The same name imports cleanly afterwards.
    let ok = import(&node.client, jsonl("p", "fresh"), "{\"text\":\"good\"}\n")
        .await
        .unwrap();
    assert_eq!(ok.imported, 1);
}

#[tokio::test]
async fn every_bad_input_class_is_reported_with_its_line_and_field() {
    let node = start_node().await;
    project(&node.client, "p").await;
    let big = format!("{{\"text\":\"{}\"}}", "x".repeat(2 << 20));
    let lines: Vec<Vec<u8>> = vec![
        b"{\"text\":\"fine\"}".to_vec(),          // 1
        b"{not json".to_vec(),                    // 2
        b"[1,2]".to_vec(),                        // 3
        b"{\"meta\":{}}".to_vec(),                // 4 missing text
        b"{\"text\":\"\"}".to_vec(),              // 5 empty text
        b"{\"text\":42}".to_vec(),                // 6 non-string text
        b"{\"text\":\"bad \xff utf8\"}".to_vec(), // 7 invalid UTF-8
        big.into_bytes(),                         // 8 over the size limit
        b"{\"text\":\"short\",\"spans\":[{\"start\":0,\"end\":99}]}".to_vec(), // 9 span past the end
        b"{\"text\":\"short\",\"spans\":[{\"start\":3,\"end\":3}]}".to_vec(),  // 10 start >= end
    ];
    let mut body = lines.join(&b'\n');
    body.push(b'\n');
    let s = rejected(import(&node.client, jsonl("p", "d"), body).await);
    let by_line = |line: u64| {
        s.errors
            .iter()
            .find(|e| e.line == line)
            .unwrap_or_else(|| panic!("no error for line {line}: {:?}", s.errors))
    };
    assert_eq!(s.invalid, 9);
    assert!(
        by_line(2).reason.to_lowercase().contains("json"),
        "{:?}",
        by_line(2)
    );
    assert!(by_line(3).reason.contains("object"), "{:?}", by_line(3));
    assert_eq!(by_line(4).field, "text");
    assert_eq!(by_line(5).field, "text");
    assert_eq!(by_line(6).field, "text");
    assert!(by_line(7).reason.contains("UTF-8"), "{:?}", by_line(7));
    assert!(by_line(8).reason.contains("limit"), "{:?}", by_line(8));
    assert!(by_line(9).field.starts_with("spans[0]"), "{:?}", by_line(9));
    assert!(
        by_line(10).field.starts_with("spans[0]"),
        "{:?}",
        by_line(10)
    );
    // Nothing at all became visible, not even line 1, nor the dataset the import created.
    let err = node
        .client
        .datasets()
        .get_dataset(GetDatasetRequest {
            project: "p".into(),
            name: "d".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
}

#[tokio::test]
async fn skip_invalid_imports_the_valid_records_and_reports_the_rest() {
    let node = start_node().await;
    project(&node.client, "p").await;
    let mut header = jsonl("p", "d");
    header.skip_invalid = true;
    let s = import(
        &node.client,
        header,
        "{\"text\":\"ok 1\"}\nnope\n{\"text\":\"ok 2\"}\n",
    )
    .await
    .unwrap();
    assert!(s.committed);
    assert_eq!((s.imported, s.invalid), (2, 1));
    assert_eq!(s.errors[0].line, 2);
}

#[tokio::test]
async fn csv_tsv_and_text_imports_become_records() {
    let node = start_node().await;
    project(&node.client, "p").await;
    let mut csv = jsonl("p", "csv");
    csv.format = ImportFormat::Csv as i32;
    csv.text_column = "body".into();
    let s = import(
        &node.client,
        csv,
        "id,body\n1,\"hello, world\"\n2,\"multi\nline\"\n",
    )
    .await
    .unwrap();
    assert_eq!(s.imported, 2);
    let out = export(&node.client, "p", "csv").await;
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["text"], "hello, world");
    assert_eq!(first["meta"]["id"], "1");

    let mut tsv = jsonl("p", "tsv");
    tsv.format = ImportFormat::Tsv as i32;
    assert_eq!(
        import(&node.client, tsv, "text\tlang\nhallo\tde\n")
            .await
            .unwrap()
            .imported,
        1
    );

    let mut text = jsonl("p", "txt");
    text.format = ImportFormat::Text as i32;
    assert_eq!(
        import(&node.client, text, "one\r\ntwo\n\nthree")
            .await
            .unwrap()
            .imported,
        3
    );
}

#[tokio::test]
async fn examples_page_in_import_order() {
    let node = start_node().await;
    project(&node.client, "p").await;
    let body: String = (0..25)
        .map(|i| format!("{{\"text\":\"t{i}\"}}\n"))
        .collect();
    import(&node.client, jsonl("p", "d"), body).await.unwrap();
    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let page = node
            .client
            .datasets()
            .list_examples(ListExamplesRequest {
                project: "p".into(),
                dataset: "d".into(),
                page_size: 10,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.examples.iter().map(|e| e.text.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<String> = (0..25).map(|i| format!("t{i}")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn missing_and_duplicate_names_get_clear_errors() {
    let node = start_node().await;
    let err = import(&node.client, jsonl("nope", "d"), "{\"text\":\"x\"}\n")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("project \"nope\" not found"),
        "{err}"
    );
    project(&node.client, "p").await;
    let again = node
        .client
        .projects()
        .create_project(CreateProjectRequest {
            name: "p".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::AlreadyExists);
    let missing = node
        .client
        .datasets()
        .get_dataset(GetDatasetRequest {
            project: "p".into(),
            name: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let bad = node
        .client
        .projects()
        .create_project(CreateProjectRequest {
            name: "Bad Name".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn deleting_a_project_with_datasets_needs_force() {
    let node = start_node().await;
    project(&node.client, "p").await;
    import(&node.client, jsonl("p", "d"), "{\"text\":\"x\"}\n")
        .await
        .unwrap();
    let err = node
        .client
        .projects()
        .delete_project(DeleteProjectRequest {
            name: "p".into(),
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    node.client
        .projects()
        .delete_project(DeleteProjectRequest {
            name: "p".into(),
            force: true,
        })
        .await
        .unwrap();
    assert!(node.project_names().await.is_empty());
}
