//! Users, passwords and bearer tokens in the service layer. Hashing happens here, before a
//! command is proposed: the state machine must stay deterministic, and neither a password nor a
//! token secret ever enters the Raft log.
//!
//! A token reads `glt_<id>_<secret>`: the id finds the stored record, the secret (32 random
//! bytes, hex) is checked against its SHA-256. Passwords are hashed with argon2id.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use gloss_proto::v1::{
    command, command_result, IssuedToken, OidcOptions, ProjectRoles, PutToken, PutUser,
    RevokeToken, Role, SignInOptions, TokenInfo, TokenRecord, UpdateUserRequest, User, UserRecord,
};
use gloss_state::users as read;
use sha2::{Digest, Sha256};

use crate::access::Actor;
use crate::error::ServiceError;
use crate::service::{now_ms, unexpected, Service};

/// Name of the administrator created on a cluster's first start.
pub const FIRST_ADMIN: &str = "admin";
/// Prefix of every Gloss token (makes leaked tokens easy to find with a scanner).
pub const TOKEN_PREFIX: &str = "glt_";
/// Lifetime of a session token from a password sign-in.
pub const SESSION_TTL_SECONDS: u64 = 12 * 3600;
/// Shortest password accepted.
const MIN_PASSWORD: usize = 8;
/// The message for every failed sign-in: it must not tell which half was wrong.
const BAD_SIGN_IN: &str = "unknown user name or wrong password";

/// Who is calling: the signed-in user.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
}

impl Caller {
    /// Whether the caller holds `role` (admins hold every role).
    pub fn has(&self, role: Role) -> bool {
        self.user
            .roles
            .iter()
            .any(|r| *r == role as i32 || *r == Role::Admin as i32)
    }

    /// Whether the caller holds `role` in `project`: cluster-wide, or in that project.
    pub fn has_in(&self, project: &str, role: Role) -> bool {
        self.has(role)
            || self
                .user
                .project_roles
                .iter()
                .any(|p| p.project == project && p.roles.contains(&(role as i32)))
    }

    /// Whether the caller holds `role` cluster-wide or in any project.
    pub fn has_anywhere(&self, role: Role) -> bool {
        self.has(role)
            || self
                .user
                .project_roles
                .iter()
                .any(|p| p.roles.contains(&(role as i32)))
    }

    /// Fails unless the caller holds one of `roles` in `project` (or cluster-wide).
    pub fn require_in(
        &self,
        project: &str,
        roles: &[Role],
        action: &str,
    ) -> Result<(), ServiceError> {
        if roles.iter().any(|r| self.has_in(project, *r)) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|r| role_name(*r)).collect();
        Err(ServiceError::PermissionDenied(format!(
            "{action} needs the role {} in project {project:?}; user {:?} has {}",
            names.join(" or "),
            self.user.name,
            self.describe_roles()
        )))
    }

    /// The caller's roles, cluster-wide then per project, for error messages.
    pub fn describe_roles(&self) -> String {
        let names = |roles: &[i32]| {
            roles
                .iter()
                .map(|r| Role::try_from(*r).map_or("?", role_name))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut parts = Vec::new();
        if !self.user.roles.is_empty() {
            parts.push(names(&self.user.roles));
        }
        for p in &self.user.project_roles {
            parts.push(format!("{} in {}", names(&p.roles), p.project));
        }
        if parts.is_empty() {
            "no role".into()
        } else {
            parts.join("; ")
        }
    }

    /// Fails unless the caller holds one of `roles` cluster-wide.
    pub fn require(&self, roles: &[Role], action: &str) -> Result<(), ServiceError> {
        if roles.iter().any(|r| self.has(*r)) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|r| role_name(*r)).collect();
        Err(ServiceError::PermissionDenied(format!(
            "{action} needs the role {}; user {:?} has {}",
            names.join(" or "),
            self.user.name,
            self.user
                .roles
                .iter()
                .map(|r| Role::try_from(*r).map_or("?", role_name))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// A role's lowercase name, as `glossctl` and the web app spell it.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Manager => "manager",
        Role::Reviewer => "reviewer",
        Role::Annotator => "annotator",
        Role::Unspecified => "none",
    }
}

/// Parses a role name (`admin`, `manager`, `reviewer`, `annotator`).
pub fn parse_role(name: &str) -> Result<Role, ServiceError> {
    match name.trim().to_ascii_lowercase().as_str() {
        "admin" => Ok(Role::Admin),
        "manager" => Ok(Role::Manager),
        "reviewer" => Ok(Role::Reviewer),
        "annotator" => Ok(Role::Annotator),
        other => Err(ServiceError::InvalidArgument(format!(
            "unknown role {other:?}: use admin, manager, reviewer or annotator"
        ))),
    }
}

fn check_project_roles(grants: &[ProjectRoles]) -> Result<(), ServiceError> {
    for (i, g) in grants.iter().enumerate() {
        if g.project.is_empty() {
            return Err(ServiceError::InvalidArgument(format!(
                "project_roles[{i}].project: name the project"
            )));
        }
        for (j, r) in g.roles.iter().enumerate() {
            match Role::try_from(*r) {
                Ok(Role::Admin) => {
                    return Err(ServiceError::InvalidArgument(format!(
                        "project_roles[{i}].roles[{j}]: admin is cluster-wide, not per project"
                    )))
                }
                Ok(Role::Unspecified) | Err(_) => {
                    return Err(ServiceError::InvalidArgument(format!(
                        "project_roles[{i}].roles[{j}]: {r} is not a role"
                    )))
                }
                Ok(_) => {}
            }
        }
    }
    Ok(())
}

fn check_roles(roles: &[i32]) -> Result<(), ServiceError> {
    for (i, r) in roles.iter().enumerate() {
        match Role::try_from(*r) {
            Ok(Role::Unspecified) | Err(_) => {
                return Err(ServiceError::InvalidArgument(format!(
                    "roles[{i}]: {r} is not a role"
                )))
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

async fn hash_password(password: String) -> Result<String, ServiceError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(ServiceError::InvalidArgument(format!(
            "password: at least {MIN_PASSWORD} characters"
        )));
    }
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ServiceError::Internal(format!("hashing a password: {e}")))
    })
    .await
    .map_err(|e| ServiceError::Internal(e.to_string()))?
}

async fn password_matches(hash: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

fn random_hex(bytes: usize) -> Result<String, ServiceError> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf)
        .map_err(|e| ServiceError::Internal(format!("no random source: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// Splits `glt_<id>_<secret>` into id and secret. A token an installer chose (any other string of
/// 16 or more characters, such as the Helm chart's generated admin token) is its own secret,
/// found by an id derived from its hash.
fn split_token(token: &str) -> Option<(String, &str)> {
    let token = token.trim();
    if let Some(rest) = token.strip_prefix(TOKEN_PREFIX) {
        let (id, secret) = rest.split_once('_')?;
        return (!id.is_empty() && !secret.is_empty()).then(|| (id.to_string(), secret));
    }
    if token.len() < 16 || token.contains(char::is_whitespace) {
        return None;
    }
    let id: String = sha256(token.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some((id, token))
}

impl Service {
    /// Creates a user; the password (optional) is stored hashed.
    pub async fn create_user(
        &self,
        actor: &Actor,
        name: &str,
        display_name: &str,
        roles: Vec<i32>,
        password: &str,
    ) -> Result<User, ServiceError> {
        self.create_user_with(actor, name, display_name, roles, Vec::new(), password)
            .await
    }

    /// [`Service::create_user`] with roles in single projects as well.
    pub async fn create_user_with(
        &self,
        actor: &Actor,
        name: &str,
        display_name: &str,
        roles: Vec<i32>,
        project_roles: Vec<ProjectRoles>,
        password: &str,
    ) -> Result<User, ServiceError> {
        check_roles(&roles)?;
        check_project_roles(&project_roles)?;
        let password_hash = if password.is_empty() {
            String::new()
        } else {
            hash_password(password.to_string()).await?
        };
        let record = UserRecord {
            user: Some(User {
                name: name.to_string(),
                display_name: display_name.to_string(),
                roles,
                project_roles,
                ..Default::default()
            }),
            password_hash,
        };
        self.put_user(actor, record, true, false).await
    }

    async fn put_user(
        &self,
        actor: &Actor,
        record: UserRecord,
        create: bool,
        keep_password: bool,
    ) -> Result<User, ServiceError> {
        let body = command::Body::PutUser(PutUser {
            record: Some(record),
            create,
            keep_password,
            single_sign_on: false,
        });
        match self.propose(actor, body, String::new()).await? {
            command_result::Result::User(u) => Ok(u),
            other => Err(unexpected(other)),
        }
    }

    /// Every user, by name.
    pub async fn list_users(&self) -> Result<Vec<User>, ServiceError> {
        self.read_barrier().await?;
        Ok(read::users(&self.state.db())?)
    }

    /// One user, from a linearizable read.
    pub async fn get_user(&self, name: &str) -> Result<User, ServiceError> {
        self.read_barrier().await?;
        read::user(&self.state.db(), name)?
            .and_then(|r| r.user)
            .ok_or_else(|| ServiceError::NotFound(format!("user {name:?} not found")))
    }

    /// Changes what the request sets and keeps the rest.
    pub async fn update_user(
        &self,
        actor: &Actor,
        req: UpdateUserRequest,
    ) -> Result<User, ServiceError> {
        self.read_barrier().await?;
        let mut rec = read::user(&self.state.db(), &req.name)?
            .ok_or_else(|| ServiceError::NotFound(format!("user {:?} not found", req.name)))?;
        let user = rec.user.get_or_insert_with(Default::default);
        if req.set_roles {
            check_roles(&req.roles)?;
            user.roles = req.roles;
        }
        if req.set_project_roles {
            check_project_roles(&req.project_roles)?;
            user.project_roles = req.project_roles;
        }
        if !req.display_name.is_empty() {
            user.display_name = req.display_name;
        }
        if req.set_disabled {
            user.disabled = req.disabled;
        }
        let keep = req.password.is_empty();
        if !keep {
            rec.password_hash = hash_password(req.password).await?;
        }
        self.put_user(actor, rec, false, keep).await
    }

    /// Issues a token for `user`; the secret exists only in the reply.
    pub async fn issue_token(
        &self,
        actor: &Actor,
        user: &str,
        ttl_seconds: u64,
        description: &str,
    ) -> Result<IssuedToken, ServiceError> {
        let id = random_hex(8)?;
        let secret = random_hex(32)?;
        let token = format!("{TOKEN_PREFIX}{id}_{secret}");
        self.store_token(actor, user, &token, ttl_seconds, description)
            .await
    }

    /// Stores the hash of `token` (either form [`split_token`] accepts) for `user`.
    async fn store_token(
        &self,
        actor: &Actor,
        user: &str,
        token: &str,
        ttl_seconds: u64,
        description: &str,
    ) -> Result<IssuedToken, ServiceError> {
        let (id, secret) = split_token(token).ok_or_else(|| {
            ServiceError::InvalidArgument(
                "a token needs at least 16 characters and no spaces".into(),
            )
        })?;
        let expires_at_ms = match ttl_seconds {
            0 => 0,
            s => now_ms().saturating_add((s as i64).saturating_mul(1000)),
        };
        let record = TokenRecord {
            info: Some(TokenInfo {
                token_id: id.clone(),
                user: user.to_string(),
                expires_at_ms,
                description: description.to_string(),
                ..Default::default()
            }),
            secret_sha256: sha256(secret.as_bytes()),
        };
        let body = command::Body::PutToken(PutToken {
            record: Some(record),
        });
        match self.propose(actor, body, String::new()).await? {
            command_result::Result::Token(info) => Ok(IssuedToken {
                token: token.to_string(),
                token_id: info.token_id,
                user: info.user,
                expires_at_ms: info.expires_at_ms,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// A user's live tokens.
    pub async fn list_tokens(&self, user: &str) -> Result<Vec<TokenInfo>, ServiceError> {
        self.read_barrier().await?;
        Ok(read::tokens(&self.state.db(), user, now_ms())?)
    }

    /// Revokes a token by id.
    pub async fn revoke_token(&self, actor: &Actor, token_id: &str) -> Result<(), ServiceError> {
        let body = command::Body::RevokeToken(RevokeToken {
            token_id: token_id.to_string(),
        });
        self.propose(actor, body, String::new()).await.map(|_| ())
    }

    /// Revokes the token presented (signing out).
    pub async fn sign_out(&self, actor: &Actor, token: &str) -> Result<(), ServiceError> {
        let (id, _) = split_token(token)
            .ok_or_else(|| ServiceError::Unauthenticated("not a token".into()))?;
        self.revoke_token(actor, &id).await
    }

    /// Exchanges a user name and password for a session token.
    pub async fn sign_in(&self, name: &str, password: &str) -> Result<IssuedToken, ServiceError> {
        self.read_barrier().await?;
        let rec = read::user(&self.state.db(), name)?;
        let bad = || ServiceError::Unauthenticated(BAD_SIGN_IN.to_string());
        let Some(rec) = rec else {
            // Spend the time a real check would, so timing does not reveal unknown names.
            let _ = hash_password("not-a-user-password".into()).await;
            return Err(bad());
        };
        if rec.password_hash.is_empty()
            || !password_matches(rec.password_hash.clone(), password.to_string()).await
        {
            return Err(bad());
        }
        if rec.user.as_ref().is_some_and(|u| u.disabled) {
            return Err(ServiceError::PermissionDenied(format!(
                "user {name:?} is disabled"
            )));
        }
        self.issue_token(
            &Actor::SYSTEM,
            name,
            SESSION_TTL_SECONDS,
            "password sign-in",
        )
        .await
    }

    /// How users may sign in (answered without a token).
    pub fn sign_in_options(&self) -> SignInOptions {
        SignInOptions {
            password: true,
            oidc: self.settings.oidc.as_ref().map(|o| {
                let c = o.config();
                OidcOptions {
                    issuer: c.issuer.clone(),
                    cli_client_id: c.cli_client_id.clone(),
                    scopes: c.scopes.clone(),
                    web_login_path: gloss_core::oidc::LOGIN_PATH.to_string(),
                }
            }),
        }
    }

    /// Exchanges an ID token from the configured provider (checked by [`crate::oidc::Oidc`],
    /// with `nonce` when the sign-in began here) for a session token. The first sign-in creates
    /// the user, linked to the identity; later ones refresh its roles from the claim. A user of
    /// the same name not linked to that identity, or a disabled user, is refused.
    pub async fn sign_in_oidc(
        &self,
        id_token: &str,
        nonce: Option<&str>,
    ) -> Result<IssuedToken, ServiceError> {
        let oidc = self.settings.oidc.clone().ok_or_else(|| {
            ServiceError::FailedPrecondition(
                "single sign-on is not configured on this cluster (no [oidc] settings)".into(),
            )
        })?;
        let id = oidc.verify(id_token, nonce).await?;
        let record = UserRecord {
            user: Some(User {
                name: id.name.clone(),
                display_name: id.display_name,
                roles: id.roles,
                project_roles: id.project_roles,
                sso_subject: id.subject,
                ..Default::default()
            }),
            password_hash: String::new(),
        };
        let actor = Actor::user(id.name.clone());
        let body = command::Body::PutUser(PutUser {
            record: Some(record),
            create: false,
            keep_password: false,
            single_sign_on: true,
        });
        match self.propose(&actor, body, String::new()).await? {
            command_result::Result::User(_) => {}
            other => return Err(unexpected(other)),
        }
        self.issue_token(&actor, &id.name, SESSION_TTL_SECONDS, "single sign-on")
            .await
    }

    /// The user a bearer token belongs to, or why it is not accepted.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, ServiceError> {
        let (id, secret) = split_token(token).ok_or_else(|| {
            ServiceError::Unauthenticated(format!("a token looks like {TOKEN_PREFIX}<id>_<secret>"))
        })?;
        let mut stored = read::token(&self.state.db(), &id)?;
        if stored.is_none() {
            // Issued a moment ago through another coordinator: wait until this one has it.
            self.read_barrier().await?;
            stored = read::token(&self.state.db(), &id)?;
        }
        let rejected = || ServiceError::Unauthenticated("token is unknown or revoked".into());
        let stored = stored.ok_or_else(rejected)?;
        if stored.secret_sha256 != sha256(secret.as_bytes()) {
            return Err(rejected());
        }
        let info = stored.info.unwrap_or_default();
        if gloss_state::users::expired(&info, now_ms()) {
            return Err(ServiceError::Unauthenticated(
                "token has expired; sign in again".into(),
            ));
        }
        let user = read::user(&self.state.db(), &info.user)?
            .and_then(|r| r.user)
            .ok_or_else(rejected)?;
        if user.disabled {
            return Err(ServiceError::PermissionDenied(format!(
                "user {:?} is disabled",
                user.name
            )));
        }
        Ok(Caller { user })
    }

    /// Creates the first administrator and a token for it when the cluster has no enabled
    /// administrator; `None` when one exists.
    pub async fn bootstrap_admin(&self, name: &str) -> Result<Option<IssuedToken>, ServiceError> {
        self.read_barrier().await?;
        if read::any_admin(&self.state.db())? {
            return Ok(None);
        }
        match self
            .create_user(
                &Actor::SYSTEM,
                name,
                "Administrator",
                vec![Role::Admin as i32],
                "",
            )
            .await
        {
            Ok(_) => {}
            // Another coordinator won the race: it prints its token.
            Err(ServiceError::AlreadyExists(_)) => return Ok(None),
            Err(e) => return Err(e),
        }
        match self.settings.admin_token.clone() {
            // The installer chose the token (and already knows it): nothing to show.
            Some(t) => self
                .store_token(
                    &Actor::SYSTEM,
                    name,
                    t.expose(),
                    0,
                    "first administrator (configured)",
                )
                .await
                .map(|_| None),
            None => self
                .issue_token(&Actor::SYSTEM, name, 0, "first administrator")
                .await
                .map(Some),
        }
    }

    /// Whether `task`'s pool admits `user`.
    pub fn pool_admits(
        &self,
        task: &gloss_proto::v1::Task,
        user: &str,
    ) -> Result<bool, ServiceError> {
        Ok(read::admits(&self.state.db(), task, user)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_into_id_and_secret() {
        let split = |t| split_token(t).map(|(id, s)| (id, s.to_string()));
        assert_eq!(split("glt_ab12_cafe"), Some(("ab12".into(), "cafe".into())));
        assert_eq!(
            split(" glt_ab12_cafe\n"),
            Some(("ab12".into(), "cafe".into()))
        );
        assert_eq!(split("glt__cafe"), None);
        assert_eq!(split("glt_ab12_"), None);
        assert_eq!(split("Bearer glt_ab12_cafe"), None);
        assert_eq!(
            split("ab12_cafe"),
            None,
            "too short for an installer's token"
        );
        let (id, secret) = split("installer-chosen-0123456789").unwrap();
        assert_eq!(
            (id.len(), secret.as_str()),
            (16, "installer-chosen-0123456789")
        );
    }

    #[test]
    fn admins_hold_every_role() {
        let caller = |roles: Vec<Role>| Caller {
            user: User {
                name: "u".into(),
                roles: roles.into_iter().map(|r| r as i32).collect(),
                ..Default::default()
            },
        };
        assert!(caller(vec![Role::Admin]).has(Role::Reviewer));
        assert!(caller(vec![Role::Reviewer]).has(Role::Reviewer));
        assert!(!caller(vec![Role::Annotator]).has(Role::Reviewer));
        let err = caller(vec![Role::Annotator])
            .require(&[Role::Reviewer, Role::Manager], "resolving a review")
            .unwrap_err()
            .to_string();
        assert!(err.contains("reviewer or manager"), "{err}");
        assert!(err.contains("annotator"), "{err}");
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(password_matches(h.clone(), "correct horse".into()).await);
        assert!(!password_matches(h, "correct horsf".into()).await);
        assert!(hash_password("short".into()).await.is_err());
    }
}
