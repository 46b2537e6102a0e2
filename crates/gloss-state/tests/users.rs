//! Users in the state machine: what a single sign-on may and may not change.

mod common;

use common::{db, err, run};
use gloss_proto::v1::*;

const SUBJECT: &str = "https://idp.example.com#u-42";

fn put(name: &str, subject: &str, roles: Vec<Role>, single_sign_on: bool) -> command::Body {
    command::Body::PutUser(PutUser {
        record: Some(UserRecord {
            user: Some(User {
                name: name.into(),
                display_name: format!("{name} (display)"),
                roles: roles.into_iter().map(|r| r as i32).collect(),
                sso_subject: subject.into(),
                ..Default::default()
            }),
            password_hash: String::new(),
        }),
        create: !single_sign_on,
        keep_password: false,
        single_sign_on,
    })
}

fn stored(db: &gloss_store::rocksdb::DB, name: &str) -> UserRecord {
    gloss_state::users::user(db, name).unwrap().unwrap()
}

/// An administrator's update: the record as read and changed, the password kept.
fn update(rec: UserRecord) -> command::Body {
    command::Body::PutUser(PutUser {
        record: Some(rec),
        create: false,
        keep_password: true,
        single_sign_on: false,
    })
}

#[test]
fn a_single_sign_on_creates_then_refreshes_the_linked_user() {
    let d = db();
    let r = run(
        &d.db,
        1_000,
        put("ann", SUBJECT, vec![Role::Annotator], true),
    );
    assert!(err(&r).is_none(), "{r:?}");
    let first = stored(&d.db, "ann").user.unwrap();
    assert_eq!(first.sso_subject, SUBJECT);
    assert_eq!(first.created_at_ms, 1_000);
    assert!(!first.has_password);

    // The provider now says ann reviews: the roles follow, the creation time stays.
    let r = run(
        &d.db,
        2_000,
        put("ann", SUBJECT, vec![Role::Reviewer], true),
    );
    assert!(err(&r).is_none(), "{r:?}");
    let again = stored(&d.db, "ann").user.unwrap();
    assert_eq!(again.roles, vec![Role::Reviewer as i32]);
    assert_eq!(again.created_at_ms, 1_000);
}

#[test]
fn a_single_sign_on_never_takes_over_a_local_user_or_another_identity() {
    let d = db();
    // A local administrator; an update by an administrator cannot link it to an identity.
    assert!(err(&run(&d.db, 1, put("root", "", vec![Role::Admin], false))).is_none());
    let r = run(&d.db, 2, put("root", SUBJECT, vec![Role::Admin], true));
    let e = err(&r).expect("refused");
    assert_eq!(e.code, "permission_denied");
    assert!(e.message.contains("not linked"), "{}", e.message);
    assert_eq!(stored(&d.db, "root").user.unwrap().sso_subject, "");

    // A user linked to one identity is not reachable from another.
    assert!(err(&run(
        &d.db,
        3,
        put("ann", SUBJECT, vec![Role::Annotator], true)
    ))
    .is_none());
    let r = run(
        &d.db,
        4,
        put(
            "ann",
            "https://idp.example.com#u-43",
            vec![Role::Admin],
            true,
        ),
    );
    assert_eq!(err(&r).expect("refused").code, "permission_denied");
    assert_eq!(
        stored(&d.db, "ann").user.unwrap().roles,
        vec![Role::Annotator as i32]
    );

    // An ordinary update keeps the link (it is not the update's to change).
    let mut rec = stored(&d.db, "ann");
    rec.user.as_mut().unwrap().sso_subject = String::new();
    let r = run(&d.db, 5, update(rec));
    assert!(err(&r).is_none());
    assert_eq!(stored(&d.db, "ann").user.unwrap().sso_subject, SUBJECT);
}

#[test]
fn a_disabled_user_stays_disabled_and_gets_no_token() {
    let d = db();
    assert!(err(&run(
        &d.db,
        1,
        put("ann", SUBJECT, vec![Role::Annotator], true)
    ))
    .is_none());
    let mut rec = stored(&d.db, "ann");
    rec.user.as_mut().unwrap().disabled = true;
    let r = run(&d.db, 2, update(rec));
    assert!(err(&r).is_none());

    // A sign-in that read ann before the change arrives after it: refused, ann stays disabled.
    let r = run(&d.db, 3, put("ann", SUBJECT, vec![Role::Annotator], true));
    let e = err(&r).expect("refused");
    assert_eq!(e.code, "permission_denied");
    assert!(e.message.contains("disabled"), "{}", e.message);
    assert!(stored(&d.db, "ann").user.unwrap().disabled);

    let token = command::Body::PutToken(PutToken {
        record: Some(TokenRecord {
            info: Some(TokenInfo {
                token_id: "abc123".into(),
                user: "ann".into(),
                ..Default::default()
            }),
            secret_sha256: vec![0; 32],
        }),
    });
    assert!(err(&run(&d.db, 4, token)).is_some());
}

#[test]
fn a_single_sign_on_without_a_subject_is_refused() {
    let d = db();
    let r = run(&d.db, 1, put("ann", "", vec![Role::Annotator], true));
    assert_eq!(err(&r).expect("refused").code, "invalid_argument");
    assert!(gloss_state::users::user(&d.db, "ann").unwrap().is_none());
}
