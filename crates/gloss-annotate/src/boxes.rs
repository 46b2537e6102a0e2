//! Boxes on images: checking them against the task's labels and the image's size, and matching
//! two annotators' boxes one to one by intersection over union, for agreement and for the
//! disagreement rule. Pure and deterministic, like the rest of the crate: the state machine
//! calls [`check_boxes`] and [`check_box_bounds`].

use gloss_proto::v1::{Answer, BoundingBox as ImageBox, Decision, Task};

use crate::check::{decision_word, unknown_label, FieldError};

/// Intersection over union at which two boxes of the same label count as the same box.
pub const IOU_MATCH: f64 = 0.5;

/// Checks an image-boxes answer's boxes without the image: known labels, finite coordinates,
/// a positive size, a top-left corner inside the first quadrant; none when not accepted.
pub fn check_boxes(task: &Task, answer: &Answer, decision: Decision) -> Result<(), FieldError> {
    if decision != Decision::Accept && !answer.boxes.is_empty() {
        return Err(FieldError::new(
            "boxes",
            format!(
                "must be empty when the decision is {}; got {} box(es)",
                decision_word(decision),
                answer.boxes.len()
            ),
        ));
    }
    for (i, b) in answer.boxes.iter().enumerate() {
        let field = |name: &str| format!("boxes[{i}].{name}");
        for (name, v) in [
            ("x", b.x),
            ("y", b.y),
            ("width", b.width),
            ("height", b.height),
        ] {
            if !v.is_finite() {
                return Err(FieldError::new(field(name), format!("{v} is not a number")));
            }
        }
        for (name, v) in [("x", b.x), ("y", b.y)] {
            if v < 0.0 {
                return Err(FieldError::new(
                    field(name),
                    format!("{v} is left of or above the image"),
                ));
            }
        }
        for (name, v) in [("width", b.width), ("height", b.height)] {
            if v <= 0.0 {
                return Err(FieldError::new(field(name), format!("{v} is not positive")));
            }
        }
        if !task.labels.contains(&b.label) {
            return Err(FieldError::new(
                field("label"),
                unknown_label(task, &b.label),
            ));
        }
    }
    Ok(())
}

/// Checks that every box lies inside a `width` × `height` image.
pub fn check_box_bounds(boxes: &[ImageBox], width: u32, height: u32) -> Result<(), FieldError> {
    for (i, b) in boxes.iter().enumerate() {
        for (name, end, limit) in [
            ("width", b.x + b.width, width),
            ("height", b.y + b.height, height),
        ] {
            if end > f64::from(limit) {
                return Err(FieldError::new(
                    format!("boxes[{i}].{name}"),
                    format!("the box ends at {end}, past the image's {name} of {limit} pixels"),
                ));
            }
        }
    }
    Ok(())
}

/// Intersection over union of two boxes (0 when either is empty).
pub fn iou(a: &ImageBox, b: &ImageBox) -> f64 {
    let w = (a.x + a.width).min(b.x + b.width) - a.x.max(b.x);
    let h = (a.y + a.height).min(b.y + b.height) - a.y.max(b.y);
    if w <= 0.0 || h <= 0.0 {
        return 0.0;
    }
    let inter = w * h;
    let union = a.width * a.height + b.width * b.height - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// How many of `a`'s boxes match one of `b`'s, one to one: same label and an intersection over
/// union of at least [`IOU_MATCH`], the best-overlapping pairs taken first (ties by position).
pub fn matched_boxes(a: &[ImageBox], b: &[ImageBox]) -> u64 {
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            if x.label != y.label {
                continue;
            }
            let score = iou(x, y);
            if score >= IOU_MATCH {
                pairs.push((score, i, j));
            }
        }
    }
    pairs.sort_by(|p, q| q.0.total_cmp(&p.0).then((p.1, p.2).cmp(&(q.1, q.2))));
    let (mut used_a, mut used_b) = (vec![false; a.len()], vec![false; b.len()]);
    let mut matched = 0;
    for (_, i, j) in pairs {
        if !used_a[i] && !used_b[j] {
            used_a[i] = true;
            used_b[j] = true;
            matched += 1;
        }
    }
    matched
}

/// (matches, boxes in `a`, boxes in `b`) for the boxes of `label` (all when `None`).
pub(crate) fn box_counts(a: &Answer, b: &Answer, label: Option<&str>) -> (u64, u64, u64) {
    let keep = |bs: &[ImageBox]| -> Vec<ImageBox> {
        bs.iter()
            .filter(|x| label.is_none_or(|l| x.label == l))
            .cloned()
            .collect()
    };
    let (x, y) = (keep(&a.boxes), keep(&b.boxes));
    (matched_boxes(&x, &y), x.len() as u64, y.len() as u64)
}

/// Whether two answers' boxes of `label` are the same boxes: as many, all matched.
pub(crate) fn same_boxes(a: &Answer, b: &Answer, label: &str) -> bool {
    let (m, x, y) = box_counts(a, b, Some(label));
    x == y && m == x
}

#[cfg(test)]
mod tests {
    use gloss_proto::v1::Interface;

    use super::*;
    use crate::test_support::task;

    fn bx(x: f64, y: f64, w: f64, h: f64, label: &str) -> ImageBox {
        ImageBox {
            x,
            y,
            width: w,
            height: h,
            label: label.into(),
        }
    }

    #[test]
    fn iou_of_known_overlaps() {
        let a = bx(0.0, 0.0, 10.0, 10.0, "A");
        assert_eq!(iou(&a, &a), 1.0);
        // Half of a overlaps a same-sized box: 50 / 150.
        assert!((iou(&a, &bx(5.0, 0.0, 10.0, 10.0, "A")) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(iou(&a, &bx(10.0, 0.0, 5.0, 5.0, "A")), 0.0);
        // A box inside another: 25 / 100.
        assert!((iou(&a, &bx(0.0, 0.0, 5.0, 5.0, "A")) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn matching_is_one_to_one_by_label_at_half_overlap() {
        let a = vec![
            bx(0.0, 0.0, 10.0, 10.0, "A"),
            bx(20.0, 20.0, 10.0, 10.0, "B"),
        ];
        // One close box of A (IoU 81/119 ≈ 0.68), B drawn as A, and a duplicate of the first.
        let b = vec![
            bx(1.0, 1.0, 10.0, 10.0, "A"),
            bx(20.0, 20.0, 10.0, 10.0, "A"),
            bx(1.0, 1.0, 10.0, 10.0, "A"),
        ];
        assert_eq!(matched_boxes(&a, &b), 1);
        assert_eq!(matched_boxes(&b, &a), 1);
        // Just under the threshold: 2 boxes of 10×10 shifted by 4 → IoU 60/140 ≈ 0.43.
        assert_eq!(matched_boxes(&a[..1], &[bx(4.0, 0.0, 10.0, 10.0, "A")]), 0);
    }

    #[test]
    fn checks_name_the_box_and_field() {
        let t = task(Interface::ImageBoxes, &["CAT", "DOG"]);
        let mut answer = Answer {
            decision: Decision::Accept as i32,
            boxes: vec![bx(1.0, 2.0, 3.0, 4.0, "CAT"), bx(1.0, 2.0, 0.0, 4.0, "DOG")],
            ..Answer::default()
        };
        let err = check_boxes(&t, &answer, Decision::Accept).unwrap_err();
        assert_eq!(err.field, "boxes[1].width");
        answer.boxes[1].width = 2.0;
        answer.boxes[1].label = "COW".into();
        let err = check_boxes(&t, &answer, Decision::Accept).unwrap_err();
        assert_eq!(err.field, "boxes[1].label");
        answer.boxes[1].label = "DOG".into();
        answer.boxes[1].x = f64::NAN;
        assert_eq!(
            check_boxes(&t, &answer, Decision::Accept)
                .unwrap_err()
                .field,
            "boxes[1].x"
        );
        answer.boxes[1].x = -1.0;
        assert_eq!(
            check_boxes(&t, &answer, Decision::Accept)
                .unwrap_err()
                .field,
            "boxes[1].x"
        );
        answer.boxes[1].x = 1.0;
        check_boxes(&t, &answer, Decision::Accept).unwrap();
        let err = check_boxes(&t, &answer, Decision::Reject).unwrap_err();
        assert_eq!(err.field, "boxes");
        let err = check_box_bounds(&answer.boxes, 4, 5).unwrap_err();
        assert_eq!(err.field, "boxes[0].height");
        assert!(err.reason.contains("past the image's height of 5"), "{err}");
        check_box_bounds(&answer.boxes, 4, 6).unwrap();
    }
}
