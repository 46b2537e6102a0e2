//! `glossctl user ...`: people and services that sign in, their roles and their tokens.

use std::io::BufRead;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use gloss_client::Client;
use gloss_proto::v1::*;

use crate::output::Output;

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a user. Roles: admin, manager, reviewer, annotator (comma-separated), cluster-wide
    /// with --roles or in one project with --project-role.
    Create {
        name: String,
        #[arg(long, value_delimiter = ',', required_unless_present = "project_role")]
        roles: Vec<String>,
        /// A role in one project only, as PROJECT:ROLE (repeat the flag for more).
        #[arg(long)]
        project_role: Vec<String>,
        #[arg(long, default_value = "")]
        display_name: String,
        /// Read a password from the first line of standard input (without one the user signs
        /// in with tokens only).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Change a user's roles, password or state.
    Update {
        name: String,
        /// Replace the roles.
        #[arg(long, value_delimiter = ',')]
        roles: Option<Vec<String>>,
        /// Replace the per-project roles with these PROJECT:ROLE pairs (repeat the flag).
        #[arg(long)]
        project_role: Vec<String>,
        /// Remove every per-project role.
        #[arg(long, conflicts_with = "project_role")]
        no_project_roles: bool,
        #[arg(long)]
        display_name: Option<String>,
        /// Read a new password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Disable the user (revokes every token) ...
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// ... or enable them again.
        #[arg(long)]
        enable: bool,
    },
    /// Issue a token for a user; it is printed once and stored only hashed.
    Token {
        name: String,
        /// Lifetime in seconds (0: no expiry).
        #[arg(long, default_value_t = 0)]
        ttl_secs: u64,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List a user's live tokens (ids only).
    Tokens { name: String },
    /// Revoke a token by id.
    Revoke { token_id: String },
}

fn parse_roles(names: &[String]) -> Result<Vec<i32>> {
    names
        .iter()
        .map(|n| {
            Ok(match n.trim() {
                "admin" => Role::Admin,
                "manager" => Role::Manager,
                "reviewer" => Role::Reviewer,
                "annotator" => Role::Annotator,
                other => bail!("unknown role {other:?}; use admin, manager, reviewer or annotator"),
            } as i32)
        })
        .collect()
}

/// `PROJECT:ROLE` pairs, grouped by project in the order given.
fn parse_project_roles(pairs: &[String]) -> Result<Vec<ProjectRoles>> {
    let mut out: Vec<ProjectRoles> = Vec::new();
    for pair in pairs {
        let (project, role) = pair
            .split_once(':')
            .with_context(|| format!("--project-role {pair:?} is not PROJECT:ROLE"))?;
        let role = parse_roles(&[role.to_string()])?[0];
        match out.iter_mut().find(|p| p.project == project) {
            Some(p) => p.roles.push(role),
            None => out.push(ProjectRoles {
                project: project.to_string(),
                roles: vec![role],
            }),
        }
    }
    Ok(out)
}

pub(crate) fn read_password(wanted: bool) -> Result<String> {
    if !wanted {
        return Ok(String::new());
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        bail!("--password-stdin: standard input held no password");
    }
    Ok(pw)
}

pub async fn run(client: &Client, out: Output, cmd: UserCmd) -> Result<()> {
    let mut api = client.users();
    match cmd {
        UserCmd::Create {
            name,
            roles,
            project_role,
            display_name,
            password_stdin,
        } => {
            let req = CreateUserRequest {
                name,
                display_name,
                roles: parse_roles(&roles)?,
                project_roles: parse_project_roles(&project_role)?,
                password: read_password(password_stdin)?,
            };
            let user = api.create_user(req).await?.into_inner();
            out.user(&user)
        }
        UserCmd::List => out.users(
            &api.list_users(ListUsersRequest {})
                .await?
                .into_inner()
                .users,
        ),
        UserCmd::Update {
            name,
            roles,
            project_role,
            no_project_roles,
            display_name,
            password_stdin,
            disable,
            enable,
        } => {
            let req = UpdateUserRequest {
                name,
                set_roles: roles.is_some(),
                roles: parse_roles(&roles.unwrap_or_default())?,
                set_project_roles: no_project_roles || !project_role.is_empty(),
                project_roles: parse_project_roles(&project_role)?,
                display_name: display_name.unwrap_or_default(),
                password: read_password(password_stdin)?,
                set_disabled: disable || enable,
                disabled: disable,
            };
            let user = api.update_user(req).await?.into_inner();
            out.user(&user)
        }
        UserCmd::Token {
            name,
            ttl_secs,
            description,
        } => {
            let t = api
                .issue_token(IssueTokenRequest {
                    user: name,
                    ttl_seconds: ttl_secs,
                    description,
                })
                .await?
                .into_inner();
            match out {
                Output::Table => {
                    println!("{}", t.token);
                    eprintln!(
                        "token {} for {:?}: shown once, keep it safe",
                        t.token_id, t.user
                    );
                    Ok(())
                }
                Output::Json => crate::output::print_one("gloss.v1.IssuedToken", &t),
            }
        }
        UserCmd::Tokens { name } => {
            let tokens = api
                .list_tokens(ListTokensRequest { user: name })
                .await?
                .into_inner()
                .tokens;
            out.tokens(&tokens)
        }
        UserCmd::Revoke { token_id } => {
            api.revoke_token(RevokeTokenRequest {
                token_id: token_id.clone(),
            })
            .await?;
            out.done(&format!("revoked token {token_id}"))
        }
    }
}
