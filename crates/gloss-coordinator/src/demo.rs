//! The built-in demo project `gloss up --demo` loads into an empty data directory: a handful of
//! short news-style sentences, and two tasks over them (sections to pick, entities to mark by
//! two annotators each) to try the import, feed, review and export paths on; a few staff-news
//! sentences with a relations task whose people, organisations and places are pre-set as
//! suggestions, so annotators only draw who works where and what is based where; a few images
//! of coloured squares and circles, drawn here, with a task to box the shapes and one to name
//! their colour; and demo users to sign in to the web app with. Every sentence was written and
//! every image drawn for the demo.

use bytes::Bytes;
use gloss_proto::v1::{
    ImportFormat, ImportHeader, ImportSummary, Interface, Span, Suggestion, Task,
};

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

/// Name of the demo's relations dataset and task.
pub const RELATIONS_DATASET: &str = "staff-news";
pub const RELATIONS_TASK: &str = "relations";

/// Staff-news sentences and the spans pre-set on each: (covered text, label), each text's first
/// occurrence.
const STAFF_NEWS: &[(&str, &[(&str, &str)])] = &[
    (
        "Maria Lopes joined Northwind Labs in Porto as head of research.",
        &[
            ("Maria Lopes", "PERSON"),
            ("Northwind Labs", "ORG"),
            ("Porto", "PLACE"),
        ],
    ),
    (
        "Harbour Bank opened a second office in Cork.",
        &[("Harbour Bank", "ORG"), ("Cork", "PLACE")],
    ),
    (
        "Tom Okafor leaves Greenfield Energy after nine years.",
        &[("Tom Okafor", "PERSON"), ("Greenfield Energy", "ORG")],
    ),
    (
        "Anna Berg and Luis Ortega both work for Quarry Analytics in Leeds.",
        &[
            ("Anna Berg", "PERSON"),
            ("Luis Ortega", "PERSON"),
            ("Quarry Analytics", "ORG"),
            ("Leeds", "PLACE"),
        ],
    ),
    (
        "The Lakeside Clinic in Bergen hired Priya Nair as its new director.",
        &[
            ("Lakeside Clinic", "ORG"),
            ("Bergen", "PLACE"),
            ("Priya Nair", "PERSON"),
        ],
    ),
];

/// Name of the demo's image dataset, its box task and its choice task.
pub const SHAPES_DATASET: &str = "shapes";
pub const SHAPES_TASK: &str = "shapes";
pub const COLOUR_TASK: &str = "shape-colour";
/// Size of the demo's images in pixels.
pub const SHAPES_SIZE: (u32, u32) = (240, 160);

/// A shape on a demo image: square or circle, its bounding box's top-left corner and side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub circle: bool,
    pub x: u32,
    pub y: u32,
    pub side: u32,
}

const fn sq(x: u32, y: u32, side: u32) -> Shape {
    Shape {
        circle: false,
        x,
        y,
        side,
    }
}

const fn ci(x: u32, y: u32, side: u32) -> Shape {
    Shape {
        circle: true,
        x,
        y,
        side,
    }
}

/// Each demo image: the colour of its shapes and where they are.
pub const SHAPES: &[(&str, &[Shape])] = &[
    ("RED", &[sq(20, 30, 60), ci(140, 50, 70)]),
    ("GREEN", &[ci(30, 20, 50), sq(120, 80, 50), sq(180, 20, 40)]),
    ("BLUE", &[sq(90, 40, 80)]),
    ("RED", &[ci(20, 90, 50), ci(100, 20, 60), sq(170, 90, 50)]),
    ("GREEN", &[sq(40, 40, 90), ci(160, 40, 60)]),
    ("BLUE", &[ci(80, 30, 100)]),
    ("RED", &[sq(10, 10, 40), sq(70, 60, 40), ci(150, 80, 60)]),
    ("BLUE", &[ci(20, 40, 70), sq(130, 30, 90)]),
];

/// Draws one demo image as a PNG: a pale background with its shapes filled in their colour.
pub fn shapes_png(colour: &str, shapes: &[Shape]) -> Vec<u8> {
    let rgb = match colour {
        "RED" => [200, 40, 40],
        "GREEN" => [40, 160, 60],
        _ => [40, 80, 200],
    };
    let (w, h) = SHAPES_SIZE;
    let mut img = image::RgbImage::from_pixel(w, h, image::Rgb([245, 243, 235]));
    for s in shapes {
        let r = f64::from(s.side) / 2.0;
        let (cx, cy) = (f64::from(s.x) + r, f64::from(s.y) + r);
        for y in s.y..(s.y + s.side).min(h) {
            for x in s.x..(s.x + s.side).min(w) {
                let (dx, dy) = (f64::from(x) + 0.5 - cx, f64::from(y) + 0.5 - cy);
                if !s.circle || dx * dx + dy * dy <= r * r {
                    img.put_pixel(x, y, image::Rgb(rgb));
                }
            }
        }
    }
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encoding a PNG in memory cannot fail");
    out.into_inner()
}

/// The demo images as JSONL records with the images inline.
fn shapes_jsonl() -> String {
    SHAPES
        .iter()
        .enumerate()
        .map(|(i, (colour, shapes))| {
            let png = shapes_png(colour, shapes);
            serde_json::json!({
                "image": gloss_import::image::data_uri("image/png", &png),
                "meta": {"file": format!("shapes-{}.png", i + 1)},
            })
            .to_string()
                + "\n"
        })
        .collect()
}

/// The staff-news sentences as JSONL.
fn staff_news_jsonl() -> String {
    STAFF_NEWS
        .iter()
        .map(|(text, _)| serde_json::json!({ "text": text }).to_string() + "\n")
        .collect()
}

/// The pre-set spans of sentence `seq` (1-based, import order), in code points.
fn staff_news_spans(seq: u64) -> Vec<Span> {
    let Some((text, spans)) = usize::try_from(seq)
        .ok()
        .and_then(|s| s.checked_sub(1))
        .and_then(|i| STAFF_NEWS.get(i))
    else {
        return Vec::new();
    };
    spans
        .iter()
        .filter_map(|(covered, label)| {
            let byte = text.find(covered)?;
            let start = text[..byte].chars().count() as u32;
            Some(Span {
                start,
                end: start + covered.chars().count() as u32,
                label: (*label).into(),
                ..Span::default()
            })
        })
        .collect()
}

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
    let header = header_for_demo();
    let data = futures::stream::iter([Ok(Bytes::from_static(HEADLINES.as_bytes()))]);
    let summary = service.import(system, header, data).await?;
    let staff = ImportHeader {
        dataset: RELATIONS_DATASET.into(),
        ..header_for_demo()
    };
    let data = futures::stream::iter([Ok(Bytes::from(staff_news_jsonl()))]);
    service.import(system, staff, data).await?;
    let shapes = ImportHeader {
        dataset: SHAPES_DATASET.into(),
        ..header_for_demo()
    };
    let data = futures::stream::iter([Ok(Bytes::from(shapes_jsonl()))]);
    service.import(system, shapes, data).await?;
    for task in demo_tasks() {
        service.create_task(system, task).await?;
    }
    let suggestions = (1..=STAFF_NEWS.len() as u64)
        .map(|seq| Suggestion {
            seq,
            spans: staff_news_spans(seq),
            score: 1.0,
            source: "demo".into(),
            ..Suggestion::default()
        })
        .collect();
    service
        .set_suggestions(system, PROJECT, RELATIONS_TASK, suggestions)
        .await?;
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

/// The header of the demo's imports (the headlines; others change the dataset).
fn header_for_demo() -> ImportHeader {
    ImportHeader {
        project: PROJECT.into(),
        dataset: DATASET.into(),
        format: ImportFormat::Jsonl as i32,
        create_dataset: true,
        source_name: "built-in demo".into(),
        ..ImportHeader::default()
    }
}

/// The demo's tasks: one section per headline, entities with two annotators each, and relations
/// between the staff-news sentences' pre-set spans.
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
    let mut relations = Task {
        project: PROJECT.into(),
        name: RELATIONS_TASK.into(),
        labels: labels(&["PERSON", "ORG", "PLACE"]),
        relation_labels: labels(&["WORKS_AT", "BASED_IN"]),
        source_dataset: RELATIONS_DATASET.into(),
        instructions: "Draw who works at which organisation, and where each organisation is \
                       based. Press r for relation mode."
            .into(),
        ..Task::default()
    };
    relations.set_interface(Interface::Relations);
    let mut boxes = Task {
        project: PROJECT.into(),
        name: SHAPES_TASK.into(),
        labels: labels(&["SQUARE", "CIRCLE"]),
        source_dataset: SHAPES_DATASET.into(),
        overlap: 2,
        instructions: "Draw a box around every shape: drag with the mouse, 1 or 2 picks the \
                       label, z undoes, + and - zoom."
            .into(),
        ..Task::default()
    };
    boxes.set_interface(Interface::ImageBoxes);
    let mut colour = Task {
        project: PROJECT.into(),
        name: COLOUR_TASK.into(),
        labels: labels(&["RED", "GREEN", "BLUE"]),
        source_dataset: SHAPES_DATASET.into(),
        instructions: "Pick the colour of the shapes.".into(),
        ..Task::default()
    };
    colour.set_interface(Interface::ImageChoice);
    vec![sections, entities, relations, boxes, colour]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_images_are_valid_pngs_with_their_shapes_inside() {
        let (w, h) = SHAPES_SIZE;
        for (colour, shapes) in SHAPES {
            let png = shapes_png(colour, shapes);
            let img = gloss_import::image::inspect(&png, 1 << 20).unwrap();
            assert_eq!((img.info.width, img.info.height), (w, h));
            for s in *shapes {
                assert!(
                    s.x + s.side <= w && s.y + s.side <= h,
                    "{s:?} leaves the image"
                );
            }
        }
    }

    #[test]
    fn pre_set_spans_cover_their_text() {
        for (i, (text, spans)) in STAFF_NEWS.iter().enumerate() {
            let found = staff_news_spans(i as u64 + 1);
            assert_eq!(found.len(), spans.len(), "{text}");
            for (span, (covered, label)) in found.iter().zip(spans.iter()) {
                let got: String = text
                    .chars()
                    .skip(span.start as usize)
                    .take((span.end - span.start) as usize)
                    .collect();
                assert_eq!((got.as_str(), span.label.as_str()), (*covered, *label));
            }
        }
        assert!(staff_news_spans(0).is_empty());
        assert!(staff_news_spans(99).is_empty());
    }
}
