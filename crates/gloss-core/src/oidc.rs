//! Single sign-on with OpenID Connect: the `[oidc]` settings and the few provider calls that the
//! coordinator (browser sign-in, ID token checks) and glossctl (the device code flow) share.
//!
//! Gloss only talks to the provider an operator configured; nothing here is called unless an
//! `[oidc]` section exists (or, for glossctl, the cluster names an issuer).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use crate::config::{ConfigError, Secret};

/// The path of the web app's redirect target; the provider must list `redirect_url`, which
/// ends with it.
pub const CALLBACK_PATH: &str = "/auth/oidc/callback";
/// Where the web app starts a browser sign-in.
pub const LOGIN_PATH: &str = "/auth/oidc/login";

/// Role names a claim value may map to (or `PROJECT:ROLE` for the last three).
pub const ROLE_NAMES: [&str; 4] = ["admin", "manager", "reviewer", "annotator"];

/// The `[oidc]` section of the config file; every setting but the mapping is optional there and
/// checked by [`OidcConfig::resolve`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The provider's issuer URL, exactly as its ID tokens name it.
    pub issuer: Option<String>,
    /// The web app's client id (the audience of its ID tokens).
    pub client_id: Option<String>,
    /// File holding the web client's secret; without one the web client is public (PKCE only).
    pub client_secret_file: Option<PathBuf>,
    /// The client id glossctl uses for the device code flow (default: `client_id`).
    pub cli_client_id: Option<String>,
    /// The web app's redirect URL as registered at the provider; its path is
    /// [`CALLBACK_PATH`].
    pub redirect_url: Option<String>,
    /// Scopes asked for (default: openid, profile, email).
    pub scopes: Option<Vec<String>>,
    /// The claim that names the Gloss user (default: `preferred_username`).
    pub username_claim: Option<String>,
    /// The claim shown as the user's display name (default: `name`).
    pub display_name_claim: Option<String>,
    /// The claim whose values map to roles (default: `groups`); a string or a list of strings.
    pub role_claim: Option<String>,
    /// Claim value → roles (`admin`, `manager`, `reviewer`, `annotator`, or `PROJECT:ROLE`).
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// PEM file of the CA that signed the provider's TLS certificate (default: the public
    /// web roots).
    pub ca_cert_file: Option<PathBuf>,
    /// Clock difference tolerated when checking an ID token's times (default: 60).
    pub clock_skew_seconds: Option<u64>,
    /// How old (`iat`) an ID token may be when it is exchanged for a Gloss session (default:
    /// 600), so that a token that leaked later cannot be replayed for the rest of its life.
    pub max_token_age_seconds: Option<u64>,
}

/// Validated single sign-on settings.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub cli_client_id: String,
    pub redirect_url: String,
    pub scopes: Vec<String>,
    pub username_claim: String,
    pub display_name_claim: String,
    pub role_claim: String,
    pub roles: BTreeMap<String, Vec<String>>,
    pub ca_cert_file: Option<PathBuf>,
    pub clock_skew_seconds: u64,
    pub max_token_age_seconds: u64,
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// Checks that `url` is absolute, and HTTPS unless it points at this machine.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = if let Some(r) = url.strip_prefix("https://") {
        r
    } else if let Some(r) = url.strip_prefix("http://") {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(format!(
                "{url:?} must use https (plain http is accepted for this machine only)"
            ));
        }
        r
    } else {
        return Err(format!("{url:?} is not an http(s) URL"));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

impl OidcConfig {
    /// Applies defaults and checks every setting, naming the one at fault.
    pub fn resolve(s: OidcSettings) -> Result<OidcConfig, ConfigError> {
        let issuer = s
            .issuer
            .ok_or_else(|| invalid("oidc.issuer", "is required"))?;
        check_url(&issuer).map_err(|r| invalid("oidc.issuer", r))?;
        let client_id = s
            .client_id
            .filter(|c| !c.is_empty())
            .ok_or_else(|| invalid("oidc.client_id", "is required"))?;
        let redirect_url = s
            .redirect_url
            .ok_or_else(|| invalid("oidc.redirect_url", "is required"))?;
        check_url(&redirect_url).map_err(|r| invalid("oidc.redirect_url", r))?;
        if !redirect_url.ends_with(CALLBACK_PATH) {
            return Err(invalid(
                "oidc.redirect_url",
                format!("must end with {CALLBACK_PATH}, the path the web app serves"),
            ));
        }
        let client_secret = match &s.client_secret_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    invalid(
                        "oidc.client_secret_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let secret = text.lines().next().unwrap_or("").trim().to_string();
                if secret.is_empty() {
                    return Err(invalid(
                        "oidc.client_secret_file",
                        format!("{} is empty", path.display()),
                    ));
                }
                Some(Secret::new(secret))
            }
        };
        let scopes = s
            .scopes
            .unwrap_or_else(|| ["openid", "profile", "email"].map(String::from).to_vec());
        if !scopes.iter().any(|x| x == "openid") {
            return Err(invalid("oidc.scopes", "must include openid"));
        }
        if s.roles.is_empty() {
            return Err(invalid(
                "oidc.roles",
                "map at least one claim value to a role, or nobody can sign in",
            ));
        }
        for (value, roles) in &s.roles {
            for role in roles {
                check_role(role).map_err(|r| invalid("oidc.roles", format!("{value:?}: {r}")))?;
            }
        }
        Ok(OidcConfig {
            issuer,
            cli_client_id: s.cli_client_id.unwrap_or_else(|| client_id.clone()),
            client_id,
            client_secret,
            redirect_url,
            scopes,
            username_claim: s
                .username_claim
                .unwrap_or_else(|| "preferred_username".into()),
            display_name_claim: s.display_name_claim.unwrap_or_else(|| "name".into()),
            role_claim: s.role_claim.unwrap_or_else(|| "groups".into()),
            roles: s.roles,
            ca_cert_file: s.ca_cert_file,
            clock_skew_seconds: s.clock_skew_seconds.unwrap_or(60),
            max_token_age_seconds: s.max_token_age_seconds.unwrap_or(600),
        })
    }
}

/// `admin`, `manager`, `reviewer`, `annotator`, or `PROJECT:ROLE` with one of the last three.
fn check_role(role: &str) -> Result<(), String> {
    match role.split_once(':') {
        None if ROLE_NAMES.contains(&role) => Ok(()),
        Some((project, r)) if !project.is_empty() && ROLE_NAMES[1..].contains(&r) => Ok(()),
        _ => Err(format!(
            "{role:?} is not admin, manager, reviewer, annotator or PROJECT:ROLE \
             (admin is cluster-wide only)"
        )),
    }
}

/// A failed call to the provider.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or its answer read.
    #[error("identity provider at {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    /// The provider answered with an error status.
    #[error("identity provider answered {status} at {url}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    /// The answer is not what the protocol says it must be.
    #[error("identity provider's answer at {url} is invalid: {reason}")]
    Invalid { url: String, reason: String },
}

/// The parts of a provider's discovery document Gloss uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
}

/// A blocking HTTP client for the provider: a 15 s limit per call, error statuses returned as
/// answers, TLS checked against `ca_cert_file` when given (otherwise the public web roots).
pub fn agent(ca_cert_file: Option<&Path>) -> Result<ureq::Agent, String> {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(15)))
        .http_status_as_error(false)
        .max_redirects(0);
    if let Some(path) = ca_cert_file {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let cert = ureq::tls::Certificate::from_pem(&pem)
            .map_err(|e| format!("{} holds no PEM certificate: {e}", path.display()))?;
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
                .build(),
        );
    }
    Ok(config.build().into())
}

/// Reads a JSON answer, turning transport failures and error statuses into [`ProviderError`].
fn json_answer(
    url: &str,
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(u16, serde_json::Value), ProviderError> {
    let unreachable = |e: ureq::Error| ProviderError::Unreachable {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let mut response = result.map_err(unreachable)?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(unreachable)?;
    match serde_json::from_str(&text) {
        Ok(v) => Ok((status, v)),
        Err(_) if !(200..300).contains(&status) => Err(ProviderError::Status {
            url: url.to_string(),
            status,
            body: text.chars().take(300).collect(),
        }),
        Err(e) => Err(ProviderError::Invalid {
            url: url.to_string(),
            reason: format!("not JSON: {e}"),
        }),
    }
}

/// GETs a JSON document; an error status is an error.
pub fn get_json(agent: &ureq::Agent, url: &str) -> Result<serde_json::Value, ProviderError> {
    let (status, body) = json_answer(url, agent.get(url).call())?;
    if !(200..300).contains(&status) {
        return Err(ProviderError::Status {
            url: url.to_string(),
            status,
            body: body.to_string().chars().take(300).collect(),
        });
    }
    Ok(body)
}

/// POSTs a form, with HTTP basic client authentication when `basic` is given; the status and
/// the JSON body are returned whatever the status (OAuth errors are JSON bodies).
pub fn post_form(
    agent: &ureq::Agent,
    url: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> Result<(u16, serde_json::Value), ProviderError> {
    let mut request = agent.post(url).header("Accept", "application/json");
    if let Some((user, password)) = basic {
        let pair = format!("{}:{}", form_encode(user), form_encode(password));
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        request = request.header("Authorization", format!("Basic {encoded}"));
    }
    json_answer(url, request.send_form(form.iter().copied()))
}

/// The discovery document of `issuer`; its `issuer` must be the configured one exactly.
pub fn discover(agent: &ureq::Agent, issuer: &str) -> Result<Discovery, ProviderError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let doc = get_json(agent, &url)?;
    let d: Discovery = serde_json::from_value(doc).map_err(|e| ProviderError::Invalid {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    if d.issuer != issuer {
        return Err(ProviderError::Invalid {
            url,
            reason: format!(
                "it names issuer {:?}, but the configured issuer is {issuer:?}",
                d.issuer
            ),
        });
    }
    Ok(d)
}

/// `error: error_description` of an OAuth error answer (RFC 6749 §5.2).
pub fn oauth_error(body: &serde_json::Value) -> String {
    let error = body
        .get("error")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("error");
    match body
        .get("error_description")
        .and_then(serde_json::Value::as_str)
    {
        Some(d) => format!("{error}: {d}"),
        None => error.to_string(),
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (RFC 6749 §2.3.1 asks for it in
/// basic client authentication too).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OidcSettings {
        OidcSettings {
            issuer: Some("https://idp.example.com/realms/acme".into()),
            client_id: Some("gloss".into()),
            redirect_url: Some("https://gloss.example.com/auth/oidc/callback".into()),
            roles: [("labelers".to_string(), vec!["annotator".to_string()])].into(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_fill_in_and_the_cli_uses_the_web_client_id() {
        let c = OidcConfig::resolve(settings()).unwrap();
        assert_eq!(c.cli_client_id, "gloss");
        assert_eq!(c.scopes, ["openid", "profile", "email"]);
        assert_eq!(c.username_claim, "preferred_username");
        assert_eq!(c.role_claim, "groups");
        assert_eq!(c.clock_skew_seconds, 60);
    }

    #[test]
    fn bad_settings_are_named() {
        type Change = Box<dyn Fn(&mut OidcSettings)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|s| s.issuer = None), "oidc.issuer"),
            (
                Box::new(|s| s.issuer = Some("http://idp.example.com".into())),
                "oidc.issuer",
            ),
            (Box::new(|s| s.client_id = None), "oidc.client_id"),
            (
                Box::new(|s| s.redirect_url = Some("https://gloss.example.com/cb".into())),
                "oidc.redirect_url",
            ),
            (Box::new(|s| s.roles.clear()), "oidc.roles"),
            (
                Box::new(|s| {
                    s.roles.insert("x".into(), vec!["acme:admin".into()]);
                }),
                "oidc.roles",
            ),
            (
                Box::new(|s| s.scopes = Some(vec!["profile".into()])),
                "oidc.scopes",
            ),
        ];
        for (change, setting) in cases {
            let mut s = settings();
            change(&mut s);
            match OidcConfig::resolve(s) {
                Err(ConfigError::Invalid { setting: got, .. }) => assert_eq!(got, setting),
                other => panic!("expected {setting} to be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn plain_http_only_for_this_machine() {
        assert!(check_url("http://127.0.0.1:9000/issuer").is_ok());
        assert!(check_url("http://localhost:9000").is_ok());
        assert!(check_url("http://idp.internal").is_err());
        assert!(check_url("https://idp.internal").is_ok());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("https:///path").is_err());
    }

    #[test]
    fn project_roles_map_but_admin_is_cluster_wide() {
        assert!(check_role("acme:reviewer").is_ok());
        assert!(check_role("admin").is_ok());
        assert!(check_role("acme:admin").is_err());
        assert!(check_role(":annotator").is_err());
        assert!(check_role("owner").is_err());
    }

    #[test]
    fn encodings_match_the_rfcs() {
        assert_eq!(form_encode("a b&c/é"), "a+b%26c%2F%C3%A9");
    }
}
