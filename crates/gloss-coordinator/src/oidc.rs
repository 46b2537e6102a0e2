//! Single sign-on with OpenID Connect, on the coordinator's side: the provider's discovery
//! document and signing keys (fetched on first use, keys again when a token names an unknown
//! one), the browser's authorization code exchange with PKCE, and the checks every ID token
//! passes before it becomes a Gloss session: signature, issuer, audience, expiry, nonce, and a
//! role mapped from the configured claim.
//!
//! The provider is the only host this module ever calls, and only when an operator configured
//! one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use gloss_core::oidc::{self as protocol, Discovery, OidcConfig, ProviderError};
use gloss_proto::v1::{ProjectRoles, Role};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::error::ServiceError;
use crate::users::parse_role;

/// Asymmetric algorithms accepted in an ID token's header; `none` and shared-secret (HS*)
/// tokens are refused whatever the provider publishes.
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Shortest time between two fetches of the provider's keys caused by unknown key ids.
const KEYS_REFETCH: Duration = Duration::from_secs(30);

/// What the provider published, cached after the first successful fetch.
struct Provider {
    discovery: Discovery,
    keys: JwkSet,
    keys_fetched: Instant,
}

/// The configured provider, as the coordinator uses it.
pub struct Oidc {
    config: OidcConfig,
    agent: ureq::Agent,
    provider: Mutex<Option<Provider>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// The Gloss user an ID token stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// `ISSUER#SUBJECT`: the identity a user is linked to.
    pub subject: String,
    pub name: String,
    pub display_name: String,
    pub roles: Vec<i32>,
    pub project_roles: Vec<ProjectRoles>,
}

/// A browser sign-in in progress: the provider URL to send the browser to, and the secrets
/// the callback needs back (kept by the browser in a cookie only it sends back to us).
#[derive(Debug, Clone)]
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

fn provider_error(e: ProviderError) -> ServiceError {
    ServiceError::Unavailable(e.to_string())
}

fn refused(reason: impl Into<String>) -> ServiceError {
    ServiceError::Unauthenticated(reason.into())
}

/// A URL-safe random string of `bytes` random bytes.
fn random_url_safe(bytes: usize) -> Result<String, ServiceError> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf)
        .map_err(|e| ServiceError::Internal(format!("no randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The S256 PKCE challenge of `verifier` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Runs a blocking provider call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ProviderError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Internal(format!("provider call failed: {e}")))?
        .map_err(provider_error)
}

impl Oidc {
    /// Prepares the client; nothing is fetched until the first sign-in.
    pub fn new(config: OidcConfig) -> Result<Arc<Oidc>, ServiceError> {
        let agent = protocol::agent(config.ca_cert_file.as_deref())
            .map_err(|e| ServiceError::InvalidArgument(format!("oidc.ca_cert_file: {e}")))?;
        Ok(Arc::new(Oidc {
            config,
            agent,
            provider: Mutex::new(None),
        }))
    }

    /// The settings in use.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The discovery document and keys, fetched once (and the keys again when `want_kid` is
    /// not among them and the last fetch is old enough).
    async fn provider(&self, want_kid: Option<&str>) -> Result<(Discovery, JwkSet), ServiceError> {
        let mut guard = self.provider.lock().await;
        if guard.is_none() {
            let agent = self.agent.clone();
            let issuer = self.config.issuer.clone();
            let (discovery, keys) = blocking(move || {
                let d = protocol::discover(&agent, &issuer)?;
                let keys = fetch_keys(&agent, &d.jwks_uri)?;
                Ok((d, keys))
            })
            .await?;
            *guard = Some(Provider {
                discovery,
                keys,
                keys_fetched: Instant::now(),
            });
        }
        let Some(p) = guard.as_mut() else {
            return Err(ServiceError::Internal("provider cache is empty".into()));
        };
        let stale = want_kid.is_some_and(|kid| p.keys.find(kid).is_none())
            && p.keys_fetched.elapsed() >= KEYS_REFETCH;
        if stale {
            let agent = self.agent.clone();
            let uri = p.discovery.jwks_uri.clone();
            p.keys = blocking(move || fetch_keys(&agent, &uri)).await?;
            p.keys_fetched = Instant::now();
        }
        Ok((p.discovery.clone(), p.keys.clone()))
    }

    /// Starts a browser sign-in: a fresh state, nonce and PKCE verifier, and the provider's
    /// authorization URL that carries the state, nonce and S256 challenge.
    pub async fn authorize(&self) -> Result<Authorization, ServiceError> {
        let (discovery, _) = self.provider(None).await?;
        let state = random_url_safe(24)?;
        let nonce = random_url_safe(24)?;
        let verifier = random_url_safe(48)?;
        let scope = self.config.scopes.join(" ");
        let params = [
            ("response_type", "code"),
            ("client_id", self.config.client_id.as_str()),
            ("redirect_uri", self.config.redirect_url.as_str()),
            ("scope", scope.as_str()),
            ("state", state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", &pkce_challenge(&verifier)),
            ("code_challenge_method", "S256"),
        ];
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", protocol::form_encode(v)))
            .collect();
        let sep = if discovery.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok(Authorization {
            url: format!(
                "{}{sep}{}",
                discovery.authorization_endpoint,
                query.join("&")
            ),
            state,
            nonce,
            verifier,
        })
    }

    /// Exchanges an authorization code (with its PKCE verifier) for the ID token.
    pub async fn exchange_code(&self, code: &str, verifier: &str) -> Result<String, ServiceError> {
        let (discovery, _) = self.provider(None).await?;
        let agent = self.agent.clone();
        let config = self.config.clone();
        let code = code.to_string();
        let verifier = verifier.to_string();
        let (status, body) = blocking(move || {
            let mut form = vec![
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", config.redirect_url.as_str()),
                ("code_verifier", verifier.as_str()),
            ];
            let basic = config
                .client_secret
                .as_ref()
                .map(|s| (config.client_id.as_str(), s.expose()));
            if basic.is_none() {
                form.push(("client_id", config.client_id.as_str()));
            }
            protocol::post_form(&agent, &discovery.token_endpoint, &form, basic)
        })
        .await?;
        if !(200..300).contains(&status) {
            return Err(refused(format!(
                "the identity provider refused the sign-in: {}",
                protocol::oauth_error(&body)
            )));
        }
        body.get("id_token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| refused("the identity provider's answer holds no id_token"))
    }

    /// Checks an ID token (signature by a key the provider publishes, issuer, audience, expiry,
    /// and `nonce` when given) and maps it to a Gloss identity.
    pub async fn verify(
        &self,
        id_token: &str,
        nonce: Option<&str>,
    ) -> Result<Identity, ServiceError> {
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|e| refused(format!("not an ID token (a signed JWT): {e}")))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(refused(format!(
                "ID token is signed with {:?}; only public-key algorithms are accepted",
                header.alg
            )));
        }
        let (_, keys) = self.provider(header.kid.as_deref()).await?;
        let jwk = match &header.kid {
            Some(kid) => keys.find(kid),
            None if keys.keys.len() == 1 => keys.keys.first(),
            None => None,
        }
        .ok_or_else(|| {
            refused("ID token is signed with a key the identity provider does not publish")
        })?;
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| refused(format!("the provider's signing key is unusable: {e}")))?;
        let audiences = self.audiences();
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "iat"]);
        validation.leeway = self.config.clock_skew_seconds;
        validation.validate_nbf = true;
        let claims =
            jsonwebtoken::decode::<serde_json::Map<String, Value>>(id_token, &key, &validation)
                .map_err(|e| self.rejection(e))?
                .claims;
        let issued = claims.get("iat").and_then(Value::as_i64).unwrap_or(0);
        let age = now_seconds().saturating_sub(issued);
        let limit = self.config.max_token_age_seconds + self.config.clock_skew_seconds;
        if age > limit as i64 {
            return Err(refused(format!(
                "ID token was issued {age} s ago; sign in again (tokens older than {} s are \
                 not exchanged, setting oidc.max_token_age_seconds)",
                self.config.max_token_age_seconds
            )));
        }
        if let Some(azp) = claims.get("azp").and_then(Value::as_str) {
            if !audiences.contains(&azp) {
                return Err(refused(format!(
                    "ID token was issued to client {azp:?}, not to this cluster ({})",
                    audiences.join(", ")
                )));
            }
        }
        if let Some(expected) = nonce {
            if claims.get("nonce").and_then(Value::as_str) != Some(expected) {
                return Err(refused(
                    "ID token's nonce does not match this sign-in; start again",
                ));
            }
        }
        self.identity(&claims)
    }

    fn audiences(&self) -> Vec<&str> {
        let mut a = vec![self.config.client_id.as_str()];
        if self.config.cli_client_id != self.config.client_id {
            a.push(self.config.cli_client_id.as_str());
        }
        a
    }

    fn rejection(&self, e: jsonwebtoken::errors::Error) -> ServiceError {
        use jsonwebtoken::errors::ErrorKind as K;
        refused(match e.kind() {
            K::ExpiredSignature => "ID token has expired; sign in again".to_string(),
            K::ImmatureSignature => "ID token is not valid yet (check the clocks)".to_string(),
            K::InvalidAudience => format!(
                "ID token is for another client; this cluster accepts audience {}",
                self.audiences().join(" or ")
            ),
            K::InvalidIssuer => format!(
                "ID token is from another issuer; this cluster trusts {}",
                self.config.issuer
            ),
            K::InvalidSignature => "ID token's signature does not verify".to_string(),
            K::MissingRequiredClaim(c) => format!("ID token has no {c:?} claim"),
            _ => format!("ID token is not valid: {e}"),
        })
    }

    /// The user name, display name and roles the claims grant.
    fn identity(&self, claims: &serde_json::Map<String, Value>) -> Result<Identity, ServiceError> {
        let c = &self.config;
        let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
        let name = claims
            .get(&c.username_claim)
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                refused(format!(
                    "ID token has no {:?} claim to name the Gloss user (setting oidc.username_claim)",
                    c.username_claim
                ))
            })?;
        let display_name = claims
            .get(&c.display_name_claim)
            .and_then(Value::as_str)
            .unwrap_or(name);
        let values: Vec<&str> = match claims.get(&c.role_claim) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let (roles, project_roles) = map_roles(&c.roles, &values)?;
        if roles.is_empty() && project_roles.is_empty() {
            return Err(ServiceError::PermissionDenied(format!(
                "no Gloss role is mapped for user {name:?} from the {:?} claim ({}); ask an \
                 administrator to map one in oidc.roles",
                c.role_claim,
                if values.is_empty() {
                    "absent or empty".to_string()
                } else {
                    values.join(", ")
                }
            )));
        }
        Ok(Identity {
            subject: format!("{}#{sub}", c.issuer),
            name: name.to_string(),
            display_name: display_name.to_string(),
            roles,
            project_roles,
        })
    }
}

/// Cluster-wide and per-project roles granted by the claim `values` under `map`.
fn map_roles(
    map: &BTreeMap<String, Vec<String>>,
    values: &[&str],
) -> Result<(Vec<i32>, Vec<ProjectRoles>), ServiceError> {
    let mut roles: Vec<i32> = Vec::new();
    let mut projects: Vec<ProjectRoles> = Vec::new();
    for granted in values.iter().filter_map(|v| map.get(*v)).flatten() {
        match granted.split_once(':') {
            None => roles.push(parse_role(granted)? as i32),
            Some((project, role)) => {
                let role = parse_role(role)? as i32;
                match projects.iter_mut().find(|p| p.project == project) {
                    Some(p) if !p.roles.contains(&role) => p.roles.push(role),
                    Some(_) => {}
                    None => projects.push(ProjectRoles {
                        project: project.to_string(),
                        roles: vec![role],
                    }),
                }
            }
        }
    }
    roles.sort_unstable();
    roles.dedup();
    if roles.contains(&(Role::Admin as i32)) {
        roles.retain(|r| *r == Role::Admin as i32);
    }
    Ok((roles, projects))
}

fn fetch_keys(agent: &ureq::Agent, uri: &str) -> Result<JwkSet, ProviderError> {
    let doc = protocol::get_json(agent, uri)?;
    serde_json::from_value(doc).map_err(|e| ProviderError::Invalid {
        url: uri.to_string(),
        reason: format!("not a JWK set: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_the_unpadded_base64url_sha256_of_the_verifier() {
        // Computed independently (Python's hashlib and base64); the provider in
        // tests/tests/oidc.rs checks real challenges end to end.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mJ92K1Uo0sPFxhCaY8qGqEHfCJAhxs"),
            "ByILmmQeYoWIwwop39_bC2yDan2KrlUuXpZYkR4MxiU"
        );
    }

    #[test]
    fn claim_values_map_to_cluster_and_project_roles() {
        let map: BTreeMap<String, Vec<String>> = [
            ("leads", vec!["manager"]),
            ("labelers", vec!["annotator", "acme:reviewer"]),
            ("acme-qa", vec!["acme:reviewer", "acme:annotator"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        let (roles, projects) = map_roles(&map, &["labelers", "acme-qa", "unmapped"]).unwrap();
        assert_eq!(roles, vec![Role::Annotator as i32]);
        assert_eq!(
            projects,
            vec![ProjectRoles {
                project: "acme".into(),
                roles: vec![Role::Reviewer as i32, Role::Annotator as i32],
            }]
        );
        let (roles, projects) = map_roles(&map, &["nothing"]).unwrap();
        assert!(roles.is_empty() && projects.is_empty());
    }
}
