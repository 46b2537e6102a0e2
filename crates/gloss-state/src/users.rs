//! Users and bearer tokens. The proposer hashes passwords and token secrets; the state machine
//! keeps the hashes, prunes expired tokens of a user when it stores a new one, and drops every
//! token of a user who is disabled.

use gloss_proto::v1::{
    command_result, CommandResult, PutToken, PutUser, TokenInfo, TokenRecord, User, UserRecord,
};
use gloss_proto::ErrorCode;
use gloss_store::rocksdb::{IteratorMode, DB};
use gloss_store::{cf, state_cf};

use crate::overlay::Overlay;
use crate::read::decode;
use crate::tasks::Step;
use crate::{check_name, ok, rejected, StateError};

/// Longest token id (the part of a token that is stored in the clear).
const MAX_TOKEN_ID: usize = 64;

pub(crate) fn put_user(ov: &mut Overlay, now: i64, c: &PutUser) -> Step<CommandResult> {
    let mut rec = c.record.clone().unwrap_or_default();
    let mut user = rec.user.take().unwrap_or_default();
    if let Err(reason) = check_name("user", &user.name) {
        return Ok(Err(rejected(ErrorCode::InvalidArgument, reason)));
    }
    let key = user.name.as_bytes().to_vec();
    let existing: Option<UserRecord> = ov.msg(state_cf::USERS, "user", &key)?;
    match (&existing, c.create && !c.single_sign_on) {
        // A single sign-on creates the user or refreshes it.
        _ if c.single_sign_on => {}
        (Some(_), true) => {
            return Ok(Err(rejected(
                ErrorCode::AlreadyExists,
                format!("user {:?} already exists", user.name),
            )))
        }
        (None, false) => {
            return Ok(Err(rejected(
                ErrorCode::NotFound,
                format!("user {:?} not found", user.name),
            )))
        }
        _ => {}
    }
    if c.single_sign_on {
        if let Err(rejection) = sign_on(existing.as_ref(), &mut rec, &mut user) {
            return Ok(Err(rejection));
        }
    } else {
        // Only a single sign-on links a user to an identity.
        user.sso_subject = existing
            .as_ref()
            .and_then(|o| o.user.as_ref())
            .map(|u| u.sso_subject.clone())
            .unwrap_or_default();
    }
    if let Some(old) = &existing {
        user.created_at_ms = old.user.as_ref().map_or(now, |u| u.created_at_ms);
        if c.keep_password {
            rec.password_hash = old.password_hash.clone();
        }
    } else {
        user.created_at_ms = now;
    }
    user.roles.sort_unstable();
    user.roles.dedup();
    user.has_password = !rec.password_hash.is_empty();
    if user.disabled {
        for (id, _) in tokens_of(ov, &user.name)? {
            ov.delete(state_cf::TOKENS, id.as_bytes());
        }
    }
    rec.user = Some(user.clone());
    ov.put(state_cf::USERS, &key, &rec);
    Ok(Ok(ok(command_result::Result::User(user))))
}

/// A single sign-on's checks, decided here so that a user disabled a moment before cannot be
/// enabled again by a sign-in that read the user earlier: the stored user must be linked to the
/// same identity and enabled; it keeps its disabled flag, and never gains a password.
fn sign_on(
    existing: Option<&UserRecord>,
    rec: &mut UserRecord,
    user: &mut User,
) -> Result<(), CommandResult> {
    if user.sso_subject.is_empty() {
        return Err(rejected(
            ErrorCode::InvalidArgument,
            "a single sign-on needs the identity's subject",
        ));
    }
    rec.password_hash.clear();
    let Some(old) = existing.and_then(|o| o.user.as_ref()) else {
        user.disabled = false;
        return Ok(());
    };
    if old.sso_subject != user.sso_subject {
        return Err(rejected(
            ErrorCode::PermissionDenied,
            format!(
                "user {:?} exists and is not linked to this single sign-on identity; \
                 an administrator must rename or remove it first",
                user.name
            ),
        ));
    }
    if old.disabled {
        return Err(rejected(
            ErrorCode::PermissionDenied,
            format!("user {:?} is disabled", user.name),
        ));
    }
    user.disabled = false;
    Ok(())
}

pub(crate) fn put_token(ov: &mut Overlay, now: i64, c: &PutToken) -> Step<CommandResult> {
    let rec = c.record.clone().unwrap_or_default();
    let info = rec.info.clone().unwrap_or_default();
    if info.token_id.is_empty()
        || info.token_id.len() > MAX_TOKEN_ID
        || !info.token_id.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Ok(Err(rejected(
            ErrorCode::InvalidArgument,
            format!(
                "token id {:?} must be 1-{MAX_TOKEN_ID} ASCII letters or digits",
                info.token_id
            ),
        )));
    }
    if rec.secret_sha256.len() != 32 {
        return Ok(Err(rejected(
            ErrorCode::InvalidArgument,
            "token hash must be 32 bytes of SHA-256",
        )));
    }
    match ov.msg::<UserRecord>(state_cf::USERS, "user", info.user.as_bytes())? {
        None => {
            return Ok(Err(rejected(
                ErrorCode::NotFound,
                format!("user {:?} not found", info.user),
            )))
        }
        Some(u) if u.user.as_ref().is_some_and(|u| u.disabled) => {
            return Ok(Err(rejected(
                ErrorCode::FailedPrecondition,
                format!("user {:?} is disabled", info.user),
            )))
        }
        Some(_) => {}
    }
    if ov.exists(state_cf::TOKENS, info.token_id.as_bytes())? {
        return Ok(Err(rejected(
            ErrorCode::AlreadyExists,
            format!("token id {:?} is taken", info.token_id),
        )));
    }
    for (id, t) in tokens_of(ov, &info.user)? {
        if expired(&t, now) {
            ov.delete(state_cf::TOKENS, id.as_bytes());
        }
    }
    let mut stored = rec;
    let mut info = info;
    info.created_at_ms = now;
    stored.info = Some(info.clone());
    ov.put(state_cf::TOKENS, info.token_id.as_bytes(), &stored);
    Ok(Ok(ok(command_result::Result::Token(info))))
}

pub(crate) fn revoke_token(ov: &mut Overlay, token_id: &str) -> Step<CommandResult> {
    if !ov.exists(state_cf::TOKENS, token_id.as_bytes())? {
        return Ok(Err(rejected(
            ErrorCode::NotFound,
            format!("token {token_id:?} not found"),
        )));
    }
    ov.delete(state_cf::TOKENS, token_id.as_bytes());
    Ok(Ok(ok(command_result::Result::Ok(true))))
}

/// Whether a token has passed its expiry at `now`.
pub fn expired(token: &TokenInfo, now: i64) -> bool {
    token.expires_at_ms != 0 && token.expires_at_ms <= now
}

/// Every stored token of `user`, by id (tokens are few: a full scan is cheap).
fn tokens_of(ov: &Overlay, user: &str) -> Result<Vec<(String, TokenInfo)>, StateError> {
    let mut out = Vec::new();
    for (k, v) in ov.scan(state_cf::TOKENS, b"", b"", usize::MAX)? {
        let rec: TokenRecord = decode("token", &v)?;
        let info = rec.info.unwrap_or_default();
        if info.user == user {
            out.push((String::from_utf8_lossy(&k).into_owned(), info));
        }
    }
    Ok(out)
}

/// One user.
pub fn user(db: &DB, name: &str) -> Result<Option<UserRecord>, StateError> {
    db.get_cf(cf(db, state_cf::USERS)?, name.as_bytes())?
        .map(|v| decode("user", &v))
        .transpose()
}

/// Every user, by name.
pub fn users(db: &DB) -> Result<Vec<User>, StateError> {
    db.iterator_cf(cf(db, state_cf::USERS)?, IteratorMode::Start)
        .map(|kv| {
            let (_, v) = kv?;
            let rec: UserRecord = decode("user", &v)?;
            Ok(rec.user.unwrap_or_default())
        })
        .collect()
}

/// One stored token.
pub fn token(db: &DB, token_id: &str) -> Result<Option<TokenRecord>, StateError> {
    db.get_cf(cf(db, state_cf::TOKENS)?, token_id.as_bytes())?
        .map(|v| decode("token", &v))
        .transpose()
}

/// A user's tokens that have not expired at `now`.
pub fn tokens(db: &DB, user: &str, now: i64) -> Result<Vec<TokenInfo>, StateError> {
    let ov = Overlay::new(db);
    Ok(tokens_of(&ov, user)?
        .into_iter()
        .map(|(_, t)| t)
        .filter(|t| !expired(t, now))
        .collect())
}

/// Whether an enabled administrator exists (the first one is created when none does).
pub fn any_admin(db: &DB) -> Result<bool, StateError> {
    for kv in db.iterator_cf(cf(db, state_cf::USERS)?, IteratorMode::Start) {
        let (_, v) = kv?;
        let rec: UserRecord = decode("user", &v)?;
        if rec.user.is_some_and(|u| {
            !u.disabled && u.roles.contains(&(gloss_proto::v1::Role::Admin as i32))
        }) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a task's pool admits `user` (by name, through a group, or because it is empty).
pub fn admits(db: &DB, task: &gloss_proto::v1::Task, user: &str) -> Result<bool, StateError> {
    crate::tasks::in_pool(&Overlay::new(db), task, user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_zero_means_never() {
        let t = TokenInfo {
            expires_at_ms: 0,
            ..Default::default()
        };
        assert!(!expired(&t, i64::MAX));
        let t = TokenInfo {
            expires_at_ms: 10,
            ..Default::default()
        };
        assert!(!expired(&t, 9));
        assert!(expired(&t, 10));
    }
}
