//! Browser single sign-on (OpenID Connect authorization code flow with PKCE).
//!
//! `/auth/oidc/login` sends the browser to the provider with a fresh state, nonce and S256
//! challenge, and keeps the three secrets in a short-lived cookie that only this path sees
//! (`HttpOnly`, `SameSite=Lax`, `Secure` behind HTTPS). The provider sends the browser back to
//! `/auth/oidc/callback`, which checks the state against the cookie, exchanges the code with
//! the verifier, checks the ID token (nonce included) and hands the app a Gloss session token
//! in the URL fragment, which never reaches a server. Every failure lands on the sign-in page
//! with the reason. The cookie holds no state of the coordinator's, so any coordinator behind
//! a load balancer can finish a sign-in another one started.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gloss_coordinator::{Service, ServiceError};
use gloss_core::oidc::{form_encode, CALLBACK_PATH, LOGIN_PATH};
use serde_json::{json, Value};

const COOKIE: &str = "gloss_oidc";
/// How long a started sign-in may take at the provider.
const COOKIE_SECONDS: u32 = 600;

/// Routes of the browser sign-in and the sign-in options the app asks for.
pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route(LOGIN_PATH, get(login))
        .route(CALLBACK_PATH, get(callback))
        .route("/api/session/options", get(options))
}

/// Whether the sign-in page offers single sign-on.
async fn options(State(s): State<Arc<Service>>) -> Json<Value> {
    let o = s.sign_in_options();
    Json(json!({"password": o.password, "sso": o.oidc.is_some()}))
}

/// A redirect that also sets or clears the sign-in cookie.
fn redirect(location: &str, cookie: String) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (StatusCode::FOUND, headers).into_response()
}

fn cookie(s: &Service, value: &str, max_age: u32) -> String {
    let secure = s
        .sso()
        .is_some_and(|o| o.config().redirect_url.starts_with("https://"));
    format!(
        "{COOKIE}={value}; Path=/auth/oidc; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Back to the app's sign-in page with the reason, the cookie cleared.
fn failed(s: &Service, reason: &str) -> Response {
    tracing::info!(reason, "single sign-on failed");
    redirect(
        &format!("/app/signin#sso_error={}", form_encode(reason)),
        cookie(s, "", 0),
    )
}

async fn login(State(s): State<Arc<Service>>) -> Response {
    let Some(oidc) = s.sso() else {
        return failed(&s, "single sign-on is not configured on this cluster");
    };
    match oidc.authorize().await {
        Ok(a) => {
            let value = format!("{}.{}.{}", a.state, a.nonce, a.verifier);
            redirect(&a.url, cookie(&s, &value, COOKIE_SECONDS))
        }
        Err(e) => failed(&s, &e.to_string()),
    }
}

/// The sign-in cookie's state, nonce and verifier.
fn started(headers: &HeaderMap) -> Option<(String, String, String)> {
    let prefix = format!("{COOKIE}=");
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .find_map(|c| c.strip_prefix(prefix.as_str()))?;
    let mut parts = value.split('.');
    let (state, nonce, verifier) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && !state.is_empty() && !verifier.is_empty())
        .then(|| (state.into(), nonce.into(), verifier.into()))
}

async fn callback(
    State(s): State<Arc<Service>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(oidc) = s.sso() else {
        return failed(&s, "single sign-on is not configured on this cluster");
    };
    if let Some(error) = q.get("error") {
        let detail = q.get("error_description").map_or("", String::as_str);
        return failed(
            &s,
            &format!("the identity provider refused the sign-in: {error} {detail}"),
        );
    }
    let Some((state, nonce, verifier)) = started(&headers) else {
        return failed(
            &s,
            "this sign-in was not started in this browser or took too long; start again",
        );
    };
    if q.get("state") != Some(&state) {
        return failed(&s, "the sign-in's state does not match; start again");
    }
    let Some(code) = q.get("code") else {
        return failed(&s, "the identity provider sent no authorization code");
    };
    let token = async {
        let id_token = oidc.exchange_code(code, &verifier).await?;
        s.sign_in_oidc(&id_token, Some(&nonce)).await
    }
    .await;
    match token {
        Ok(t) => redirect(
            &format!("/app/tasks#sso_token={}", form_encode(&t.token)),
            cookie(&s, "", 0),
        ),
        Err(e @ (ServiceError::Internal(_) | ServiceError::Unavailable(_))) => {
            tracing::warn!(error = %e, "single sign-on could not finish");
            failed(&s, &e.to_string())
        }
        Err(e) => failed(&s, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; gloss_oidc=st.no.ver; b=2"),
        );
        assert_eq!(started(&h), Some(("st".into(), "no".into(), "ver".into())));
        h.insert(header::COOKIE, HeaderValue::from_static("gloss_oidc=st.no"));
        assert_eq!(started(&h), None);
        h.insert(header::COOKIE, HeaderValue::from_static("other=x"));
        assert_eq!(started(&h), None);
    }
}
