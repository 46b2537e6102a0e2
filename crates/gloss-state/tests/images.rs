//! Images in the state machine: chunks stored once by content, examples refused until their
//! image is completely there and hashes to its digest, an aborted import taking only the images
//! nothing else holds, box checks on answers, and the overlap kept exactly on image tasks.

mod common;

use common::*;
use gloss_proto::v1::*;
use gloss_store::rocksdb::DB;
use sha2::{Digest, Sha256};

/// An image of `bytes` as an import describes it (the state machine checks the digest itself).
fn image_ref(bytes: &[u8], width: u32, height: u32) -> ImageRef {
    ImageRef {
        digest: Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        media_type: "image/png".into(),
        width,
        height,
        bytes: bytes.len() as u64,
        inline: true,
    }
}

fn begin(db: &DB) -> u64 {
    begin_import(db).import_id
}

/// Stages `bytes` as one image in chunks of `chunk` bytes.
fn stage_image(
    db: &DB,
    import_id: u64,
    img: &ImageRef,
    bytes: &[u8],
    chunk: usize,
) -> CommandResult {
    let count = bytes.len().div_ceil(chunk) as u32;
    let chunks = bytes
        .chunks(chunk)
        .enumerate()
        .map(|(i, data)| ImageChunk {
            image: Some(img.clone()),
            index: i as u32,
            count,
            data: data.to_vec(),
        })
        .collect();
    run(
        db,
        1,
        command::Body::StageImages(StageImages { import_id, chunks }),
    )
}

fn stage_example(db: &DB, import_id: u64, n: u128, img: &ImageRef) -> CommandResult {
    run(
        db,
        1,
        command::Body::StageExamples(StageExamples {
            import_id,
            examples: vec![StagedExample {
                input_hash: (n * 0x9e37_79b9_7f4a_7c15).to_be_bytes().to_vec(),
                record_json: format!("{{\"image\":\"sha256:{}\"}}", img.digest),
                image: Some(img.clone()),
            }],
        }),
    )
}

fn end(db: &DB, import_id: u64, commit: bool) -> CommandResult {
    let body = if commit {
        command::Body::CommitImport(CommitImport {
            import_id,
            ..CommitImport::default()
        })
    } else {
        command::Body::AbortImport(AbortImport {
            import_id,
            reason: "test".into(),
        })
    };
    run(db, 1, body)
}

fn stored(db: &DB, img: &ImageRef) -> Option<Vec<u8>> {
    let digest = gloss_state::images::digest_bytes(&img.digest).unwrap();
    gloss_state::images::image_bytes(db, &digest)
        .unwrap()
        .map(|(_, b)| b)
}

fn image_record(db: &DB, img: &ImageRef) -> Option<ImageRecord> {
    let digest = gloss_state::images::digest_bytes(&img.digest).unwrap();
    gloss_state::images::image(db, &digest).unwrap()
}

#[test]
fn an_image_is_stored_in_chunks_once_and_read_back_whole() {
    let d = db();
    create_project(&d.db);
    let bytes: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    let img = image_ref(&bytes, 4, 3);
    let first = begin(&d.db);
    assert!(err(&stage_image(&d.db, first, &img, &bytes, 1000)).is_none());
    // Before an example holds it, nothing is served: it is not verified yet.
    assert_eq!(stored(&d.db, &img), None);
    assert!(err(&stage_example(&d.db, first, 1, &img)).is_none());
    assert!(err(&end(&d.db, first, true)).is_none());
    assert_eq!(stored(&d.db, &img).as_deref(), Some(&bytes[..]));
    let rec = image_record(&d.db, &img).unwrap();
    assert!(rec.committed && rec.verified && rec.owners.is_empty());
    assert_eq!(rec.chunks, 3);
    // A second import of the same image writes nothing and may abort without touching it.
    let second = begin(&d.db);
    assert!(err(&stage_image(&d.db, second, &img, &bytes, 1000)).is_none());
    assert!(err(&end(&d.db, second, false)).is_none());
    assert_eq!(stored(&d.db, &img).as_deref(), Some(&bytes[..]));
}

#[test]
fn an_example_waits_for_its_whole_image_and_a_wrong_one_is_refused() {
    let d = db();
    create_project(&d.db);
    let bytes = vec![7u8; 300];
    let img = image_ref(&bytes, 2, 2);
    let import = begin(&d.db);
    // No chunk yet.
    let r = stage_example(&d.db, import, 1, &img);
    assert!(
        err(&r).unwrap().message.contains("not completely stored"),
        "{r:?}"
    );
    // One chunk of two.
    let chunk = ImageChunk {
        image: Some(img.clone()),
        index: 0,
        count: 2,
        data: bytes[..150].to_vec(),
    };
    run(
        &d.db,
        1,
        command::Body::StageImages(StageImages {
            import_id: import,
            chunks: vec![chunk],
        }),
    );
    let r = stage_example(&d.db, import, 1, &img);
    assert!(
        err(&r).unwrap().message.contains("not completely stored"),
        "{r:?}"
    );
    // Bytes that do not hash to the digest they claim.
    let honest = vec![9u8; 300];
    let mut forged = honest.clone();
    forged[299] = 8;
    let liar = image_ref(&honest, 2, 2);
    let other = begin(&d.db);
    stage_image(&d.db, other, &liar, &forged, 1000);
    let r = stage_example(&d.db, other, 2, &liar);
    assert!(
        err(&r)
            .unwrap()
            .message
            .contains("do not hash to its digest"),
        "{r:?}"
    );
    // A description that differs from the stored one.
    let wrong_size = ImageRef {
        width: 3,
        ..img.clone()
    };
    let r = stage_example(&d.db, other, 3, &wrong_size);
    assert!(err(&r).is_some(), "{r:?}");
    // Oversized and malformed chunks change nothing.
    let r = run(
        &d.db,
        1,
        command::Body::StageImages(StageImages {
            import_id: other,
            chunks: vec![ImageChunk {
                image: Some(img.clone()),
                index: 2,
                count: 2,
                data: vec![1],
            }],
        }),
    );
    assert!(err(&r).is_some(), "{r:?}");
}

#[test]
fn an_abort_takes_only_the_images_no_one_else_holds() {
    let d = db();
    create_project(&d.db);
    let (a, b) = (vec![1u8; 64], vec![2u8; 64]);
    let (img_a, img_b) = (image_ref(&a, 1, 1), image_ref(&b, 1, 1));
    let first = begin(&d.db);
    let second = begin(&d.db);
    stage_image(&d.db, first, &img_a, &a, 1000);
    stage_image(&d.db, first, &img_b, &b, 1000);
    // The second import holds b too, while the first is still open.
    stage_image(&d.db, second, &img_b, &b, 1000);
    end(&d.db, first, false);
    assert!(
        image_record(&d.db, &img_a).is_none(),
        "a was only the aborted import's"
    );
    assert_eq!(image_record(&d.db, &img_b).unwrap().owners, vec![second]);
    stage_example(&d.db, second, 1, &img_b);
    end(&d.db, second, true);
    assert_eq!(stored(&d.db, &img_b).as_deref(), Some(&b[..]));
}

/// A source dataset of `n` images of 100×50 pixels and an image task over it.
fn image_task(interface: Interface, n: u128, overlap: u32) -> Db {
    let d = db();
    create_project(&d.db);
    let import = begin(&d.db);
    for i in 1..=n {
        let bytes = vec![i as u8; 32];
        let img = image_ref(&bytes, 100, 50);
        stage_image(&d.db, import, &img, &bytes, 1000);
        assert!(err(&stage_example(&d.db, import, i, &img)).is_none());
    }
    end(&d.db, import, true);
    let mut t = task(interface, overlap, Ordering::Sequential);
    t.labels = vec!["CAT".into(), "DOG".into()];
    create(&d.db, t);
    d
}

fn boxed(who: &str, seq: u64, boxes: Vec<BoundingBox>) -> Answer {
    Answer {
        answer_id: format!("{who}-{seq}"),
        project: "p".into(),
        task: "t".into(),
        seq,
        annotator: who.into(),
        decision: Decision::Accept as i32,
        boxes,
        ..Answer::default()
    }
}

fn bx(x: f64, y: f64, w: f64, h: f64, label: &str) -> BoundingBox {
    BoundingBox {
        x,
        y,
        width: w,
        height: h,
        label: label.into(),
    }
}

fn send(db: &DB, a: Answer) -> CommandResult {
    run(
        db,
        10,
        command::Body::SubmitAnswer(SubmitAnswer {
            answer: Some(a),
            revise: false,
        }),
    )
}

fn lease(db: &DB, who: &str, count: u32) -> Vec<u64> {
    let r = run(
        db,
        10,
        command::Body::NextExamples(NextExamples {
            project: "p".into(),
            task: "t".into(),
            annotator: who.into(),
            count,
            ..NextExamples::default()
        }),
    );
    match r.result {
        Some(command_result::Result::Lease(l)) => l.seqs,
        other => panic!("{other:?}"),
    }
}

#[test]
fn boxes_outside_the_image_or_with_bad_labels_are_refused_by_field() {
    let d = image_task(Interface::ImageBoxes, 1, 1);
    let seq = lease(&d.db, "ann", 1)[0];
    for (boxes, field) in [
        (vec![bx(90.0, 0.0, 20.0, 10.0, "CAT")], "boxes[0].width"),
        (vec![bx(0.0, 45.0, 20.0, 10.0, "CAT")], "boxes[0].height"),
        (vec![bx(0.0, 0.0, 20.0, 10.0, "COW")], "boxes[0].label"),
        (vec![bx(-1.0, 0.0, 20.0, 10.0, "CAT")], "boxes[0].x"),
    ] {
        let r = send(&d.db, boxed("ann", seq, boxes));
        let e = err(&r).unwrap_or_else(|| panic!("accepted: {r:?}"));
        assert!(e.message.contains(field), "{field}: {}", e.message);
    }
    // Boxes on a choice answer, and a rejection with boxes.
    let mut rejected = boxed("ann", seq, vec![bx(0.0, 0.0, 1.0, 1.0, "CAT")]);
    rejected.decision = Decision::Reject as i32;
    assert!(err(&send(&d.db, rejected)).is_some());
    let ok = send(
        &d.db,
        boxed("ann", seq, vec![bx(80.0, 40.0, 20.0, 10.0, "DOG")]),
    );
    assert!(err(&ok).is_none(), "{ok:?}");
}

#[test]
fn an_image_choice_task_takes_one_label_and_no_boxes() {
    let d = image_task(Interface::ImageChoice, 1, 1);
    let seq = lease(&d.db, "ann", 1)[0];
    let with_box = boxed("ann", seq, vec![bx(0.0, 0.0, 1.0, 1.0, "CAT")]);
    assert!(err(&send(&d.db, with_box)).is_some());
    let mut two = boxed("ann", seq, Vec::new());
    two.choices = vec!["CAT".into(), "DOG".into()];
    assert!(err(&send(&d.db, two)).is_some());
    let mut one = boxed("ann", seq, Vec::new());
    one.choices = vec!["DOG".into()];
    let r = send(&d.db, one);
    assert!(err(&r).is_none(), "{r:?}");
}

#[test]
fn image_tasks_never_take_more_answers_than_the_overlap() {
    let d = image_task(Interface::ImageBoxes, 3, 2);
    let mut answered = std::collections::BTreeMap::<u64, usize>::new();
    for who in ["a", "b", "c", "d"] {
        for seq in lease(&d.db, who, 3) {
            let r = send(&d.db, boxed(who, seq, vec![bx(1.0, 1.0, 5.0, 5.0, "CAT")]));
            if err(&r).is_none() {
                *answered.entry(seq).or_default() += 1;
            }
        }
        // A late answer to an example already at the overlap is refused.
        let r = send(&d.db, boxed(who, 1, vec![bx(1.0, 1.0, 5.0, 5.0, "CAT")]));
        if answered.get(&1) == Some(&2) && who >= "c" {
            assert!(err(&r).is_some(), "{who}: {r:?}");
        }
    }
    assert_eq!(answered.values().copied().collect::<Vec<_>>(), [2, 2, 2]);
    // The two agreeing answers (boxes overlapping well) made each example gold.
    check_invariants(&d.db, 3, 2);
    let rec = record(&d.db);
    assert_eq!((rec.done, rec.answers, rec.gold), (3, 6, 3));
}
