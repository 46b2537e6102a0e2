//! Image interfaces over the real gRPC API and the web app's image route: images inline as data
//! URIs, from the coordinator's image store and from a folder through `glossctl`; refusals with
//! the line (and file) for corrupt, oversized and far-away images, with nothing imported; the
//! dataset exported byte for byte; boxes checked against the image, box F1 between annotators
//! against a hand count; Prodigy's image lines and a COCO file that `pycocotools` loads.

use std::path::{Path, PathBuf};

use gloss_client::{Client, ClientError};
use gloss_core::config::Overrides;
use gloss_import::image::{data_uri, noise_png, solid_png};
use gloss_proto::v1::*;
use gloss_tests::{export, import, jsonl, start_node, start_node_in, Node, ADMIN_TOKEN};
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_gloss-under-test");

fn glossctl() -> PathBuf {
    let path = Path::new(BINARY).with_file_name("glossctl");
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// A JSONL line with `png` inline.
fn inline(png: &[u8], extra: Value) -> String {
    let mut v = json!({"image": data_uri("image/png", png)});
    if let (Value::Object(map), Value::Object(more)) = (&mut v, extra) {
        map.extend(more);
    }
    v.to_string()
}

async fn examples(client: &Client, dataset: &str) -> Vec<Example> {
    client
        .datasets()
        .list_examples(ListExamplesRequest {
            project: "pics".into(),
            dataset: dataset.into(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .examples
}

fn rejected(result: Result<ImportSummary, ClientError>) -> ImportSummary {
    match result {
        Err(ClientError::ImportRejected { summary, .. }) => *summary,
        other => panic!("expected a rejected import, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_images_are_stored_once_and_exported_byte_for_byte() {
    let node = start_node().await;
    node.create_project("pics").await;
    let (red, blue) = (
        solid_png(40, 30, [200, 0, 0]),
        solid_png(20, 10, [0, 0, 200]),
    );
    let body = [
        inline(&red, json!({"meta": {"file": "red.png"}})),
        inline(&blue, json!({"text": "a blue one", "meta": {"n": 1.50}})),
        inline(&red, json!({"meta": {"file": "red.png"}})),
    ]
    .join("\n")
        + "\n";
    let summary = import(&node.client, jsonl("pics", "raw"), body.clone())
        .await
        .unwrap();
    assert_eq!(
        (summary.imported, summary.duplicates),
        (2, 1),
        "{summary:?}"
    );
    let got = examples(&node.client, "raw").await;
    let img = got[0].image.clone().unwrap();
    assert_eq!(
        (img.width, img.height, img.media_type.as_str()),
        (40, 30, "image/png")
    );
    assert!(img.inline);
    assert_eq!(img.bytes, red.len() as u64);
    assert_eq!(got[1].text, "a blue one");
    // The stored record holds the digest, not the bytes.
    assert_eq!(
        got[0].record_json,
        format!(
            r#"{{"image":"sha256:{}","meta":{{"file":"red.png"}}}}"#,
            img.digest
        )
    );
    // The export puts the data URI back: the same bytes as the first two lines imported.
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        export(&node.client, "pics", "raw").await,
        format!("{}\n{}\n", lines[0], lines[1])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_images_are_refused_by_line_and_nothing_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("images");
    std::fs::create_dir_all(store.join("cats")).unwrap();
    let small = solid_png(8, 8, [0, 200, 0]);
    let oversized = noise_png(40, 40, 3);
    assert!(
        small.len() < 4096 && oversized.len() > 4096,
        "{}",
        oversized.len()
    );
    std::fs::write(store.join("cats/a.png"), &small).unwrap();
    std::fs::write(dir.path().join("outside.png"), &small).unwrap();
    let node = start_node_in(
        &dir.path().join("data"),
        Overrides {
            image_dir: Some(store.clone()),
            // Room for the small image, not for the noisy one.
            max_image_bytes: Some(4096),
            ..Overrides::default()
        },
    )
    .await;
    node.create_project("pics").await;
    // A good import first: a path in the store.
    let summary = import(
        &node.client,
        jsonl("pics", "raw"),
        json!({"image": "cats/a.png"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(summary.imported, 1);
    let mut truncated = small.clone();
    truncated.truncate(small.len() - 12);
    let lines = [
        inline(&small, json!({"meta": {"ok": true}})),
        inline(&truncated, json!({})),
        inline(&oversized, json!({})),
        json!({"image": "https://example.com/cat.png"}).to_string(),
        json!({"image": "cats/missing.png"}).to_string(),
        json!({"image": "../outside.png"}).to_string(),
        json!({"image": 7}).to_string(),
    ];
    let summary = rejected(import(&node.client, jsonl("pics", "raw"), lines.join("\n")).await);
    let found: Vec<(u64, &str)> = summary
        .errors
        .iter()
        .map(|e| (e.line, e.field.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (2, "image"),
            (3, "image"),
            (4, "image"),
            (5, "image"),
            (6, "image"),
            (7, "image")
        ],
        "{summary:?}"
    );
    let reasons: Vec<&str> = summary.errors.iter().map(|e| e.reason.as_str()).collect();
    assert!(reasons[0].contains("corrupt or truncated"), "{reasons:?}");
    assert!(
        reasons[1].contains("over the image size limit"),
        "{reasons:?}"
    );
    assert!(reasons[2].contains("never fetched"), "{reasons:?}");
    assert!(reasons[3].contains("cats/missing.png"), "{reasons:?}");
    assert!(reasons[4].contains(".."), "{reasons:?}");
    // Nothing of the failed import is visible; the earlier example is as it was.
    let got = examples(&node.client, "raw").await;
    assert_eq!(got.len(), 1);
    assert!(!got[0].image.as_ref().unwrap().inline);
    assert_eq!(got[0].record_json, r#"{"image":"cats/a.png"}"#);
    assert_eq!(
        export(&node.client, "pics", "raw").await,
        "{\"image\":\"cats/a.png\"}\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glossctl_imports_a_folder_of_images_and_names_the_bad_file() {
    let node = start_node().await;
    node.create_project("pics").await;
    let photos = tempfile::tempdir().unwrap();
    std::fs::write(photos.path().join("b.png"), solid_png(5, 4, [1, 1, 1])).unwrap();
    std::fs::write(photos.path().join("a.png"), solid_png(6, 3, [2, 2, 2])).unwrap();
    std::fs::write(photos.path().join("notes.txt"), "not an image").unwrap();
    let server = node.coordinator.addrs().grpc.to_string();
    let run = |dataset: &str, dir: &Path| {
        std::process::Command::new(glossctl())
            .args([
                "--server",
                &server,
                "--token",
                ADMIN_TOKEN,
                "dataset",
                "import",
            ])
            .arg(format!("pics/{dataset}"))
            .arg(dir)
            .output()
            .expect("glossctl runs")
    };
    let out = run("photos", photos.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("notes.txt"), "{stderr}");
    let got = examples(&node.client, "photos").await;
    let files: Vec<(String, u32)> = got
        .iter()
        .map(|e| {
            let v: Value = serde_json::from_str(&e.record_json).unwrap();
            (
                v["meta"]["file"].as_str().unwrap().to_string(),
                e.image.as_ref().unwrap().width,
            )
        })
        .collect();
    assert_eq!(files, [("a.png".to_string(), 6), ("b.png".to_string(), 5)]);
    // A corrupt file: the error names it and its line, and nothing is imported.
    std::fs::write(photos.path().join("c.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let out = run("more", photos.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("line 3") && stderr.contains("c.png"),
        "{stderr}"
    );
    let datasets = node
        .client
        .datasets()
        .list_datasets(ListDatasetsRequest {
            project: "pics".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .datasets;
    assert!(datasets.iter().all(|d| d.name != "more"), "{datasets:?}");
}

fn boxes_task(name: &str, overlap: u32) -> Task {
    let mut t = Task {
        project: "pics".into(),
        name: name.into(),
        labels: vec!["CAT".into(), "DOG".into()],
        source_dataset: "raw".into(),
        overlap,
        ..Task::default()
    };
    t.set_interface(Interface::ImageBoxes);
    t
}

fn bx(x: f64, y: f64, w: f64, h: f64, label: &str) -> gloss_proto::v1::BoundingBox {
    gloss_proto::v1::BoundingBox {
        x,
        y,
        width: w,
        height: h,
        label: label.into(),
    }
}

fn answer(who: &str, seq: u64, boxes: Vec<gloss_proto::v1::BoundingBox>) -> Answer {
    Answer {
        answer_id: format!("{who}-{seq}"),
        project: "pics".into(),
        task: "boxes".into(),
        seq,
        annotator: who.into(),
        decision: Decision::Accept as i32,
        boxes,
        ..Answer::default()
    }
}

async fn submit(client: &Client, a: Answer) -> Result<SubmitResponse, tonic::Status> {
    let who = a.annotator.clone();
    client
        .feed()
        .next_examples(NextRequest {
            project: "pics".into(),
            task: a.task.clone(),
            annotator: who,
            session_id: String::new(),
            count: 2,
        })
        .await?;
    client
        .feed()
        .submit_answer(SubmitRequest { answer: Some(a) })
        .await
        .map(|r| r.into_inner())
}

/// Two images (100×80 and 60×40) and an image-boxes task over them, two annotators each.
async fn boxes_node() -> Node {
    let node = start_node().await;
    node.create_project("pics").await;
    let body = format!(
        "{}\n{}\n",
        inline(&solid_png(100, 80, [10, 10, 10]), json!({})),
        inline(&solid_png(60, 40, [20, 20, 20]), json!({"text": "second"}))
    );
    import(&node.client, jsonl("pics", "raw"), body)
        .await
        .unwrap();
    node.client
        .tasks()
        .create_task(CreateTaskRequest {
            task: Some(boxes_task("boxes", 2)),
        })
        .await
        .unwrap();
    node
}

async fn export_bytes(client: &Client, task: &str, format: ExportFormat) -> Vec<u8> {
    let mut out = Vec::new();
    let request = ExportAnswersRequest {
        project: "pics".into(),
        task: task.into(),
        selection: ExportSelection::Answers as i32,
        format: format as i32,
    };
    client
        .export_answers(request, &mut out, |_, _| {})
        .await
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boxes_are_checked_agreed_on_and_exported_for_prodigy_and_coco() {
    let node = boxes_node().await;
    let c = &node.client;
    // A box past the image's right edge is refused by field, and nothing is recorded.
    let err = submit(c, answer("ann", 1, vec![bx(90.0, 0.0, 20.0, 10.0, "CAT")]))
        .await
        .unwrap_err();
    assert!(err.message().contains("boxes[0].width"), "{err:?}");
    assert!(err.message().contains("100 pixels"), "{err:?}");
    let err = submit(c, answer("ann", 1, vec![bx(0.0, 0.0, 5.0, 5.0, "COW")]))
        .await
        .unwrap_err();
    assert!(err.message().contains("boxes[0].label"), "{err:?}");
    let progress = |c: &Client| {
        let c = c.clone();
        async move {
            c.tasks()
                .get_progress(GetProgressRequest {
                    project: "pics".into(),
                    task: "boxes".into(),
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    assert_eq!(progress(c).await.answers, 0);

    // Image 1: ann draws a cat and a dog; bob the same cat a little off (IoU 0.68) and the dog
    // as a cat. Image 2: both draw one dog, bob's shifted too far (IoU 1/3).
    // Hand count: pair (ann, bob) pooled over both images: 1 match, 3 boxes each → F1 = 2·1/6.
    let ann1 = vec![
        bx(0.0, 0.0, 10.0, 10.0, "CAT"),
        bx(50.0, 50.0, 20.0, 20.0, "DOG"),
    ];
    let bob1 = vec![
        bx(1.0, 1.0, 10.0, 10.0, "CAT"),
        bx(50.0, 50.0, 20.0, 20.0, "CAT"),
    ];
    submit(c, answer("ann", 1, ann1.clone())).await.unwrap();
    submit(c, answer("bob", 1, bob1)).await.unwrap();
    submit(c, answer("ann", 2, vec![bx(0.0, 0.0, 20.0, 20.0, "DOG")]))
        .await
        .unwrap();
    submit(c, answer("bob", 2, vec![bx(10.0, 0.0, 20.0, 20.0, "DOG")]))
        .await
        .unwrap();
    let report = c
        .tasks()
        .get_agreement(GetAgreementRequest {
            project: "pics".into(),
            task: "boxes".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let overall = report.overall.unwrap();
    assert!(
        (overall.box_f1.unwrap() - 1.0 / 3.0).abs() < 1e-9,
        "{overall:?}"
    );
    assert_eq!(overall.percent_agreement, Some(0.0));
    // Per label: CAT 1 match, 1 and 2 boxes → 2/3; DOG no match, 2 and 1 boxes → 0.
    let cat = report.labels.iter().find(|l| l.label == "CAT").unwrap();
    assert!((cat.box_f1.unwrap() - 2.0 / 3.0).abs() < 1e-9, "{cat:?}");
    let dog = report.labels.iter().find(|l| l.label == "DOG").unwrap();
    assert_eq!(dog.box_f1, Some(0.0));
    // Both examples disagree, so both wait for review.
    assert_eq!(progress(c).await.review_pending, 2);

    // Prodigy: the image inline again, its size, and the boxes as rectangles with corners.
    let prodigy = String::from_utf8(export_bytes(c, "boxes", ExportFormat::Prodigy).await).unwrap();
    let lines: Vec<Value> = prodigy
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let first = lines
        .iter()
        .find(|l| l["_annotator_id"] == "boxes-ann" && l["spans"].as_array().unwrap().len() == 2)
        .unwrap();
    assert!(first["image"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,"));
    assert_eq!(
        (&first["width"], &first["height"]),
        (&json!(100), &json!(80))
    );
    assert_eq!(first["_view_id"], "image_manual");
    assert_eq!(
        first["spans"][1]["points"],
        json!([[50.0, 50.0], [50.0, 70.0], [70.0, 70.0], [70.0, 50.0]])
    );

    // COCO, loaded by pycocotools: two images, six boxes, the right categories and sizes.
    let dir = tempfile::tempdir().unwrap();
    let coco = dir.path().join("boxes.json");
    std::fs::write(&coco, export_bytes(c, "boxes", ExportFormat::Coco).await).unwrap();
    let script = r#"
import json, sys
from pycocotools.coco import COCO
coco = COCO(sys.argv[1])
out = {"cats": {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())}, "images": []}
for image in coco.loadImgs(sorted(coco.getImgIds())):
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
    out["images"].append({
        "size": [image["width"], image["height"]],
        "boxes": sorted([a["bbox"] + [a["category_id"], a["annotator"]] for a in anns]),
    })
print(json.dumps(out))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&coco)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pycocotools failed (install it with `python3 -m pip install pycocotools`, as .ci/run does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // pycocotools reports its progress on stdout; the script's answer is the last line.
    let stdout = String::from_utf8(out.stdout).unwrap();
    let loaded: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(loaded["cats"], json!({"CAT": 1, "DOG": 2}));
    assert_eq!(loaded["images"][0]["size"], json!([100, 80]));
    assert_eq!(
        loaded["images"][0]["boxes"],
        json!([
            [0.0, 0.0, 10.0, 10.0, 1, "ann"],
            [1.0, 1.0, 10.0, 10.0, 1, "bob"],
            [50.0, 50.0, 20.0, 20.0, 1, "bob"],
            [50.0, 50.0, 20.0, 20.0, 2, "ann"]
        ])
    );
    assert_eq!(loaded["images"][1]["size"], json!([60, 40]));
    assert_eq!(loaded["images"][1]["boxes"].as_array().unwrap().len(), 2);

    // A COCO file of a text task, or CoNLL of an image task, is refused.
    let err = c
        .tasks()
        .export_answers(ExportAnswersRequest {
            project: "pics".into(),
            task: "boxes".into(),
            selection: ExportSelection::Answers as i32,
            format: ExportFormat::Conll as i32,
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("CoNLL"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_serves_an_example_image_to_those_with_access() {
    let node = boxes_node().await;
    let http = node.coordinator.addrs().http;
    let get = |token: Option<&'static str>| {
        let url = format!("http://{http}/api/tasks/pics/boxes/examples/2/image");
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let mut req = agent.get(&url);
            if let Some(t) = token {
                req = req.header("Authorization", format!("Bearer {t}"));
            }
            let mut r = req.call().unwrap();
            let status = r.status().as_u16();
            let kind = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (status, kind, r.body_mut().read_to_vec().unwrap())
        })
    };
    let (status, kind, bytes) = get(Some(ADMIN_TOKEN)).await.unwrap();
    assert_eq!((status, kind.as_str()), (200, "image/png"));
    assert_eq!(bytes, solid_png(60, 40, [20, 20, 20]));
    assert_eq!(get(None).await.unwrap().0, 401);
}
