//! `glossctl login` and `logout`: a session token saved for the coordinators it was issued by,
//! obtained with single sign-on (the OpenID Connect device code flow, RFC 8628) or a local
//! user's password.
//!
//! The token is saved in `credentials.json` under `$GLOSS_CONFIG_DIR` (default
//! `$XDG_CONFIG_HOME/gloss`, else `~/.config/gloss`), readable by its owner only, keyed by the
//! `--server` list, so a token is never sent to coordinators it was not issued for. `--token`
//! and `GLOSS_TOKEN` win over it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use gloss_client::Client;
use gloss_core::oidc as protocol;
use gloss_proto::v1::*;
use serde_json::{json, Value};

use crate::output::Output;

/// The grant type of the device code flow (RFC 8628 §3.4).
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

#[derive(Args)]
pub struct LoginArgs {
    /// Sign in as this local user, with the password read from the first line of standard
    /// input. Without it, glossctl signs in with the cluster's single sign-on: it prints a
    /// code and an address to open in a browser, and waits.
    #[arg(long)]
    user: Option<String>,
    /// PEM file of the CA that signed the identity provider's TLS certificate (default: the
    /// public web roots).
    #[arg(long, env = "GLOSS_IDP_CA_CERT")]
    idp_ca_cert: Option<PathBuf>,
}

/// Where saved tokens live.
fn credentials_path() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("GLOSS_CONFIG_DIR") {
        return Ok(PathBuf::from(dir).join("credentials.json"));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(
            std::env::var_os("HOME").context("HOME is not set; set GLOSS_CONFIG_DIR")?,
        )
        .join(".config"),
    };
    Ok(base.join("gloss").join("credentials.json"))
}

fn key(servers: &[String]) -> String {
    servers.join(",")
}

fn read_all() -> Result<BTreeMap<String, Value>> {
    let path = credentials_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON; remove it", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_all(all: &BTreeMap<String, Value>) -> Result<()> {
    let path = credentials_path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(all)?;
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The token saved for `servers`, unless it has expired.
pub fn saved_token(servers: &[String]) -> Result<Option<String>> {
    let all = read_all()?;
    let Some(entry) = all.get(&key(servers)) else {
        return Ok(None);
    };
    let expires = entry["expires_at_ms"].as_i64().unwrap_or(0);
    if expires != 0 && expires <= now_ms() {
        return Ok(None);
    }
    Ok(entry["token"].as_str().map(str::to_string))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn save(servers: &[String], issued: &IssuedToken) -> Result<PathBuf> {
    let mut all = read_all()?;
    all.insert(
        key(servers),
        json!({
            "user": issued.user,
            "token": issued.token,
            "expires_at_ms": issued.expires_at_ms,
        }),
    );
    write_all(&all)?;
    credentials_path()
}

/// Signs in and saves the session token for `servers`.
pub async fn login(
    client: &Client,
    servers: &[String],
    out: Output,
    args: LoginArgs,
) -> Result<()> {
    let issued = match &args.user {
        Some(user) => {
            let password = crate::user::read_password(true)?;
            client
                .users()
                .sign_in(SignInRequest {
                    user: user.clone(),
                    password,
                })
                .await?
                .into_inner()
        }
        None => {
            let options = client
                .users()
                .get_sign_in_options(GetSignInOptionsRequest {})
                .await?
                .into_inner();
            let Some(oidc) = options.oidc else {
                bail!(
                    "this cluster has no single sign-on; sign in as a local user with \
                     `glossctl login --user NAME` (password on standard input) or use a token"
                );
            };
            let id_token =
                tokio::task::spawn_blocking(move || device_flow(&oidc, args.idp_ca_cert))
                    .await
                    .context("the sign-in was interrupted")??;
            client
                .users()
                .sign_in_with_oidc(SignInWithOidcRequest { id_token })
                .await?
                .into_inner()
        }
    };
    let path = save(servers, &issued)?;
    let until = if issued.expires_at_ms == 0 {
        "no expiry".to_string()
    } else {
        format!(
            "for {} hours",
            (issued.expires_at_ms - now_ms() + 1_800_000) / 3_600_000
        )
    };
    out.done(&format!(
        "signed in as {} ({until}); token saved in {}",
        issued.user,
        path.display()
    ))
}

/// Revokes the saved token on the cluster (when it still answers) and forgets it.
pub async fn logout(client: &Client, servers: &[String], out: Output) -> Result<()> {
    let mut all = read_all()?;
    let Some(entry) = all.remove(&key(servers)) else {
        return out.done("not signed in to these coordinators");
    };
    let mut revoked = false;
    if let Some(token) = entry["token"].as_str() {
        let signed = client.clone().with_token(token)?;
        revoked = signed.users().sign_out(SignOutRequest {}).await.is_ok();
    }
    write_all(&all)?;
    out.done(if revoked {
        "signed out: the token is revoked and forgotten"
    } else {
        "signed out: the token is forgotten (the cluster did not confirm revoking it)"
    })
}

/// The device code flow against the cluster's provider: prints where to go and the code, then
/// polls the token endpoint until the user approves, refuses, or the code expires. Returns the
/// ID token.
fn device_flow(oidc: &OidcOptions, ca: Option<PathBuf>) -> Result<String> {
    let agent = protocol::agent(ca.as_deref()).map_err(anyhow::Error::msg)?;
    let discovery = protocol::discover(&agent, &oidc.issuer)?;
    let device_endpoint = discovery
        .device_authorization_endpoint
        .as_deref()
        .with_context(|| {
            format!(
                "the identity provider {} does not offer the device code flow; ask for it to be \
             enabled for client {}",
                oidc.issuer, oidc.cli_client_id
            )
        })?;
    let scope = oidc.scopes.join(" ");
    let (status, body) = protocol::post_form(
        &agent,
        device_endpoint,
        &[("client_id", &oidc.cli_client_id), ("scope", &scope)],
        None,
    )?;
    if !(200..300).contains(&status) {
        bail!(
            "the identity provider refused to start a sign-in: {}",
            protocol::oauth_error(&body)
        );
    }
    let field = |name: &str| {
        body[name]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("the identity provider's answer has no {name}"))
    };
    let device_code = field("device_code")?;
    let user_code = field("user_code")?;
    let uri = field("verification_uri")?;
    let mut interval = Duration::from_secs(body["interval"].as_u64().unwrap_or(5).max(1));
    let deadline = Instant::now() + Duration::from_secs(body["expires_in"].as_u64().unwrap_or(600));
    eprintln!("To sign in, open {uri} in a browser and enter the code {user_code}");
    if let Some(complete) = body["verification_uri_complete"].as_str() {
        eprintln!("(or open {complete})");
    }
    eprintln!("Waiting for the sign-in to finish…");
    loop {
        std::thread::sleep(interval);
        if Instant::now() > deadline {
            bail!("the code expired before the sign-in finished; run glossctl login again");
        }
        let (status, body) = protocol::post_form(
            &agent,
            &discovery.token_endpoint,
            &[
                ("grant_type", DEVICE_GRANT),
                ("device_code", &device_code),
                ("client_id", &oidc.cli_client_id),
            ],
            None,
        )?;
        if (200..300).contains(&status) {
            return body["id_token"].as_str().map(str::to_string).context(
                "the identity provider's answer holds no id_token (is openid among the scopes?)",
            );
        }
        match body["error"].as_str() {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += Duration::from_secs(5),
            Some("access_denied") => bail!("the sign-in was refused at the identity provider"),
            Some("expired_token") => {
                bail!("the code expired before the sign-in finished; run glossctl login again")
            }
            _ => bail!(
                "the identity provider refused the sign-in: {}",
                protocol::oauth_error(&body)
            ),
        }
    }
}
