//! Single sign-on against a real OpenID Connect provider (`tests/oidc/provider.mjs`, the npm
//! package `oidc-provider`) on loopback: the browser's authorization code flow with PKCE through
//! the web app, glossctl's device code flow, roles mapped from the `groups` claim, and the
//! refusals: another client's ID token, an expired one, a forged one, a disabled user, a user
//! without a mapped role, and a local user's name. Local users and tokens keep working beside it.
//!
//! Needs Node.js and `npm ci` in `tests/oidc` (`.ci/run` does it).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gloss_core::config::Overrides;
use gloss_core::oidc::{form_encode, OidcSettings};
use gloss_proto::v1::*;
use gloss_tests::{start_node_in, Node, ADMIN_TOKEN};

const BINARY: &str = env!("CARGO_BIN_EXE_gloss-under-test");
const WEB_SECRET: &str = "gloss-web-secret-for-tests";
/// How old an ID token may be when it is exchanged, in these tests.
const MAX_AGE: u64 = 3;

/// The provider, stopped when dropped.
struct Idp {
    child: Child,
    issuer: String,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn provider_dir() -> PathBuf {
    // Read at run time: cargo sets it for the test process, and a test binary built from
    // another checkout that shares the target directory would carry that checkout's path.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("oidc")
}

fn start_provider(redirect: &str) -> Idp {
    let dir = provider_dir();
    assert!(
        dir.join("node_modules/oidc-provider").exists(),
        "the test provider is not installed: run `npm ci` in {}",
        dir.display()
    );
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .args(["--redirect", redirect])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("OIDC_DEBUG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("node runs");
    let stdout = child.stdout.take().expect("provider's stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("provider prints its issuer");
    let issuer = line
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("provider did not start: {line:?}"))
        .trim()
        .to_string();
    Idp { child, issuer }
}

/// A coordinator with single sign-on through a fresh provider.
struct Sso {
    node: Node,
    http: SocketAddr,
    idp: Idp,
    _dir: tempfile::TempDir,
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

async fn start_sso() -> Sso {
    let dir = tempfile::tempdir().expect("temp dir");
    let http = free_port();
    let redirect = format!("http://{http}/auth/oidc/callback");
    let idp = start_provider(&redirect);
    let secret = dir.path().join("oidc-secret");
    std::fs::write(&secret, WEB_SECRET).unwrap();
    let roles = [
        ("gloss-admins", vec!["admin"]),
        ("labelers", vec!["annotator"]),
        ("demo-qa", vec!["demo:reviewer"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    let extra = Overrides {
        http: Some(http),
        oidc: Some(OidcSettings {
            issuer: Some(idp.issuer.clone()),
            client_id: Some("gloss-web".into()),
            client_secret_file: Some(secret),
            cli_client_id: Some("gloss-cli".into()),
            redirect_url: Some(redirect),
            scopes: Some(
                ["openid", "profile", "email", "groups"]
                    .map(String::from)
                    .to_vec(),
            ),
            roles,
            clock_skew_seconds: Some(0),
            max_token_age_seconds: Some(MAX_AGE),
            ..Default::default()
        }),
        ..Overrides::default()
    };
    let node = start_node_in(&dir.path().join("data"), extra).await;
    Sso {
        node,
        http,
        idp,
        _dir: dir,
    }
}

/// A page as a browser sees it after one request.
#[derive(Debug)]
struct Page {
    url: String,
    status: u16,
    location: Option<String>,
    body: String,
}

/// Just enough of a browser: a cookie jar for 127.0.0.1 (cookies are not kept apart by port,
/// as in browsers), forms, and redirects followed one by one.
struct Browser {
    agent: ureq::Agent,
    jar: Vec<(String, String)>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            agent: gloss_core::oidc::agent(None).unwrap(),
            jar: Vec::new(),
        }
    }

    fn request(&mut self, url: &str, form: Option<&[(&str, &str)]>) -> Page {
        let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let result = match form {
            Some(form) => self
                .agent
                .post(url)
                .header("Cookie", cookies.join("; "))
                .send_form(form.iter().copied()),
            None => self
                .agent
                .get(url)
                .header("Cookie", cookies.join("; "))
                .call(),
        };
        let mut response = result.unwrap_or_else(|e| panic!("GET/POST {url}: {e}"));
        for v in response.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap_or_default();
            let pair = v.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let gone = value.is_empty()
                || v.to_ascii_lowercase().contains("max-age=0")
                || v.contains("1970");
            self.jar.retain(|(k, _)| k != name);
            if !gone {
                self.jar.push((name.to_string(), value.to_string()));
            }
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| absolute(url, l));
        Page {
            url: url.to_string(),
            status: response.status().as_u16(),
            location,
            body: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    /// Follows redirects until a page, or a redirect whose target `stop` accepts.
    fn follow(&mut self, mut page: Page, stop: impl Fn(&str) -> bool) -> Page {
        for _ in 0..20 {
            let Some(next) = page.location.clone() else {
                return page;
            };
            if stop(&next) {
                return page;
            }
            page = self.request(&next, None);
        }
        panic!("too many redirects, last at {}", page.url);
    }

    fn open(&mut self, url: &str, stop: impl Fn(&str) -> bool) -> Page {
        let page = self.request(url, None);
        self.follow(page, stop)
    }

    /// Fills in the provider's login form on `page` as `user`.
    fn log_in(&mut self, page: &Page, user: &str, stop: impl Fn(&str) -> bool) -> Page {
        let action = attribute(&page.body, "action=\"")
            .unwrap_or_else(|| panic!("no login form at {}: {}", page.url, page.body));
        let page = self.request(&absolute(&page.url, &action), Some(&[("login", user)]));
        self.follow(page, stop)
    }
}

/// `location` resolved against `base`.
fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let origin_end = base
        .match_indices('/')
        .nth(2)
        .map_or(base.len(), |(i, _)| i);
    format!("{}{location}", &base[..origin_end])
}

/// The value after the first `prefix` (an attribute opening) up to the closing quote.
fn attribute(html: &str, prefix: &str) -> Option<String> {
    let start = html.find(prefix)? + prefix.len();
    let len = html[start..].find('"')?;
    Some(html[start..start + len].replace("&amp;", "&"))
}

/// The hidden inputs of the first form on a page.
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.split("<input")
        .skip(1)
        .filter(|tag| tag.contains("type=\"hidden\""))
        .filter_map(|tag| Some((attribute(tag, "name=\"")?, attribute(tag, "value=\"")?)))
        .collect()
}

/// A query parameter of `url`, decoded (fragment parameters too).
fn param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once(['?', '#'])?.1;
    query.split(['&', '#']).find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A browser sign-in through the web app: where the callback sent the browser.
async fn web_sign_in(sso: &Sso, user: &str) -> String {
    let start = format!("http://{}/auth/oidc/login", sso.http);
    let user = user.to_string();
    tokio::task::spawn_blocking(move || {
        let mut b = Browser::new();
        let to_app = |l: &str| l.contains("/app/");
        let login = b.open(&start, to_app);
        assert_eq!(login.status, 200, "{login:?}");
        let done = b.log_in(&login, &user, to_app);
        let landed = done
            .location
            .clone()
            .unwrap_or_else(|| panic!("the sign-in did not return to the app: {done:?}"));
        // The sign-in cookie is cleared on the way back.
        assert!(!b.jar.iter().any(|(k, _)| k == "gloss_oidc"), "{:?}", b.jar);
        landed
    })
    .await
    .unwrap()
}

/// An ID token the provider issues to `client` for `user` by the authorization code flow,
/// fetched as that client would (the tests present it to Gloss themselves).
async fn id_token_for(sso: &Sso, client: &str, secret: &str, redirect: &str, user: &str) -> String {
    let (issuer, client, secret, redirect, user) = (
        sso.idp.issuer.clone(),
        client.to_string(),
        secret.to_string(),
        redirect.to_string(),
        user.to_string(),
    );
    tokio::task::spawn_blocking(move || {
        let mut b = Browser::new();
        let at_redirect = |l: &str| l.starts_with(&redirect);
        let url = format!(
            "{issuer}/auth?response_type=code&client_id={client}&redirect_uri={}&scope={}&nonce=n1&state=s1",
            form_encode(&redirect),
            form_encode("openid profile groups"),
        );
        let login = b.open(&url, at_redirect);
        let done = b.log_in(&login, &user, at_redirect);
        let back = done.location.expect("redirected back to the client");
        let code = param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
        let agent = gloss_core::oidc::agent(None).unwrap();
        let (status, body) = gloss_core::oidc::post_form(
            &agent,
            &format!("{issuer}/token"),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect),
            ],
            Some((&client, &secret)),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        body["id_token"].as_str().unwrap().to_string()
    })
    .await
    .unwrap()
}

async fn set_id_token_ttl(sso: &Sso, seconds: u64) {
    let url = format!("{}/test/id-token-ttl?seconds={seconds}", sso.idp.issuer);
    tokio::task::spawn_blocking(move || {
        let agent = gloss_core::oidc::agent(None).unwrap();
        let r = agent.post(&url).send_empty().unwrap();
        assert_eq!(r.status().as_u16(), 200);
    })
    .await
    .unwrap();
}

async fn me(sso: &Sso, token: &str) -> serde_json::Value {
    let url = format!("http://{}/api/me", sso.http);
    let token = token.to_string();
    tokio::task::spawn_blocking(move || {
        let agent = gloss_core::oidc::agent(None).unwrap();
        let mut r = agent
            .get(&url)
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        let body = r.body_mut().read_to_string().unwrap();
        serde_json::from_str(&body).unwrap()
    })
    .await
    .unwrap()
}

async fn oidc_sign_in(sso: &Sso, id_token: &str) -> Result<IssuedToken, tonic::Status> {
    sso.node
        .client
        .users()
        .sign_in_with_oidc(SignInWithOidcRequest {
            id_token: id_token.to_string(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn users(sso: &Sso) -> Vec<User> {
    sso.node
        .client
        .users()
        .list_users(ListUsersRequest {})
        .await
        .unwrap()
        .into_inner()
        .users
}

async fn user(sso: &Sso, name: &str) -> User {
    users(sso)
        .await
        .into_iter()
        .find(|u| u.name == name)
        .unwrap_or_else(|| panic!("no user {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_through_the_provider_and_gets_the_mapped_roles() {
    let sso = start_sso().await;

    let landed = web_sign_in(&sso, "alice").await;
    assert!(landed.contains("/app/tasks#sso_token="), "{landed}");
    let token = param(&landed, "sso_token").unwrap();
    let alice = me(&sso, &token).await;
    assert_eq!(alice["name"], "alice");
    assert_eq!(alice["display_name"], "Alice Admin");
    assert_eq!(alice["roles"], serde_json::json!(["admin"]));

    // bob's groups: labelers (annotator), demo-qa (reviewer in project demo), marketing (unmapped).
    let landed = web_sign_in(&sso, "bob").await;
    let bob = me(&sso, &param(&landed, "sso_token").unwrap()).await;
    assert_eq!(
        bob["project_roles"],
        serde_json::json!([{"project": "demo", "roles": ["reviewer"]}])
    );
    assert_eq!(bob["roles"], serde_json::json!(["annotator", "reviewer"]));

    // The users exist, linked to their identities, with no password.
    let stored = user(&sso, "alice").await;
    assert_eq!(stored.sso_subject, format!("{}#alice", sso.idp.issuer));
    assert!(!stored.has_password);
    assert_eq!(stored.roles, vec![Role::Admin as i32]);

    // A second sign-in reuses the user and issues a new session.
    let again = web_sign_in(&sso, "alice").await;
    assert_ne!(param(&again, "sso_token").unwrap(), token);
    assert_eq!(
        user(&sso, "alice").await.created_at_ms,
        stored.created_at_ms
    );

    // The sign-in page is told to offer single sign-on; gRPC clients learn the device settings.
    let options = sso
        .node
        .client
        .users()
        .get_sign_in_options(GetSignInOptionsRequest {})
        .await
        .unwrap()
        .into_inner();
    let oidc = options.oidc.expect("single sign-on is offered");
    assert_eq!(oidc.issuer, sso.idp.issuer);
    assert_eq!(oidc.cli_client_id, "gloss-cli");
    assert_eq!(oidc.web_login_path, "/auth/oidc/login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmapped_users_local_names_and_broken_callbacks_are_refused_and_local_users_still_work() {
    let sso = start_sso().await;
    let error_of = |landed: &str| {
        assert!(landed.contains("/app/signin#sso_error="), "{landed}");
        param(landed, "sso_error").unwrap()
    };

    // carol's only group maps to nothing.
    let landed = web_sign_in(&sso, "carol").await;
    let e = error_of(&landed);
    assert!(
        e.contains("no Gloss role") && e.contains("marketing"),
        "{e}"
    );
    assert!(users(&sso).await.iter().all(|u| u.name != "carol"));

    // A local user named dave exists: the provider's dave cannot take the account over.
    sso.node
        .client
        .users()
        .create_user(CreateUserRequest {
            name: "dave".into(),
            roles: vec![Role::Manager as i32],
            password: "dave-local-password".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = error_of(&web_sign_in(&sso, "dave").await);
    assert!(e.contains("not linked"), "{e}");
    let local = user(&sso, "dave").await;
    assert!(local.has_password && local.sso_subject.is_empty());
    assert_eq!(local.roles, vec![Role::Manager as i32]);

    // Local users and tokens still work beside single sign-on.
    let session = sso
        .node
        .client
        .users()
        .sign_in(SignInRequest {
            user: "dave".into(),
            password: "dave-local-password".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me(&sso, &session.token).await["name"], "dave");
    assert_eq!(me(&sso, ADMIN_TOKEN).await["name"], "admin");

    // A callback that this browser did not start, or whose state is not the one it started.
    let http = sso.http;
    let (no_cookie, wrong_state) = tokio::task::spawn_blocking(move || {
        let mut b = Browser::new();
        let cb = format!("http://{http}/auth/oidc/callback?code=x&state=y");
        let no_cookie = b.request(&cb, None).location.unwrap();
        // Start a real sign-in (the cookie is set), then come back with another state.
        let _ = b.open(&format!("http://{http}/auth/oidc/login"), |l| {
            l.contains("/app/")
        });
        let wrong_state = b.request(&cb, None).location.unwrap();
        (no_cookie, wrong_state)
    })
    .await
    .unwrap();
    assert!(error_of(&no_cookie).contains("not started in this browser"));
    assert!(error_of(&wrong_state).contains("state does not match"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_tokens_for_another_client_expired_forged_or_of_a_disabled_user_are_refused() {
    let sso = start_sso().await;
    let web_redirect = format!("http://{}/auth/oidc/callback", sso.http);

    // A good token, presented over gRPC as glossctl does, is accepted.
    let good = id_token_for(&sso, "gloss-web", WEB_SECRET, &web_redirect, "erin").await;
    let session = oidc_sign_in(&sso, &good)
        .await
        .expect("a good ID token signs in");
    assert_eq!(session.user, "erin");

    // Another application's ID token: the right issuer and signature, the wrong audience.
    let other = id_token_for(
        &sso,
        "other-app",
        "other-app-secret-for-tests",
        "http://127.0.0.1:9/other/callback",
        "alice",
    )
    .await;
    let e = oidc_sign_in(&sso, &other).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert!(e.message().contains("another client"), "{}", e.message());

    // A forged token: alice's claims (from the other application's token) under the header and
    // signature of erin's.
    let good_parts: Vec<&str> = good.split('.').collect();
    let other_parts: Vec<&str> = other.split('.').collect();
    let forged = format!("{}.{}.{}", good_parts[0], other_parts[1], good_parts[2]);
    let e = oidc_sign_in(&sso, &forged).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert!(e.message().contains("signature"), "{}", e.message());

    // A token that is still valid but was issued longer ago than the cluster exchanges.
    let old = id_token_for(&sso, "gloss-web", WEB_SECRET, &web_redirect, "bob").await;
    tokio::time::sleep(Duration::from_millis(MAX_AGE * 1000 + 1500)).await;
    let e = oidc_sign_in(&sso, &old).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert!(e.message().contains("issued"), "{}", e.message());

    // An expired token (the cluster allows no clock skew in this test).
    set_id_token_ttl(&sso, 1).await;
    let short = id_token_for(&sso, "gloss-web", WEB_SECRET, &web_redirect, "bob").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let e = oidc_sign_in(&sso, &short).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert!(e.message().contains("expired"), "{}", e.message());
    set_id_token_ttl(&sso, 600).await;

    // erin is disabled by an administrator: the session stops working and a fresh, valid ID
    // token does not make a new one, nor enable erin again.
    sso.node
        .client
        .users()
        .update_user(UpdateUserRequest {
            name: "erin".into(),
            set_disabled: true,
            disabled: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(me(&sso, &session.token).await["code"], "unauthenticated");
    let fresh = id_token_for(&sso, "gloss-web", WEB_SECRET, &web_redirect, "erin").await;
    let e = oidc_sign_in(&sso, &fresh).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("disabled"), "{}", e.message());
    assert!(user(&sso, "erin").await.disabled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glossctl_logs_in_with_the_device_code_flow_and_uses_the_saved_token() {
    let sso = start_sso().await;
    let config = tempfile::tempdir().unwrap();
    let glossctl = Path::new(BINARY).with_file_name("glossctl");
    assert!(glossctl.exists(), "{} is missing", glossctl.display());
    let server = sso.node.coordinator.addrs().grpc.to_string();
    let run = |args: &[&str]| {
        Command::new(&glossctl)
            .args(["--server", &server])
            .args(args)
            .env("GLOSS_CONFIG_DIR", config.path())
            .env_remove("GLOSS_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("glossctl runs")
    };

    let mut login = run(&["login"]);
    let stderr = login.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let prompt = lines.next().unwrap().unwrap();
    // "To sign in, open URI in a browser and enter the code CODE"
    let uri = prompt
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .unwrap_or_else(|| panic!("no address in {prompt:?}"))
        .to_string();
    let code = prompt.rsplit(' ').next().unwrap().to_string();

    // The person at the browser: enters the code, confirms, signs in as bob.
    tokio::task::spawn_blocking(move || {
        let mut b = Browser::new();
        let mut page = b.open(&uri, |_| false);
        let mut code = Some(code);
        // The code page, then the confirmation page: each form's hidden fields are sent back.
        while page.body.contains("op.device") {
            let mut form = hidden_inputs(&page.body);
            if let Some(code) = code.take() {
                form.push(("user_code".into(), code));
            }
            let fields: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let action = absolute(&page.url, &attribute(&page.body, "action=\"").unwrap());
            let next = b.request(&action, Some(&fields));
            page = b.follow(next, |_| false);
        }
        let done = b.log_in(&page, "bob", |_| false);
        assert!(done.body.contains("Signed in"), "{}", done.body);
    })
    .await
    .unwrap();

    let out = tokio::task::spawn_blocking(move || login.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "glossctl login failed: {stdout}");
    assert!(stdout.contains("signed in as bob"), "{stdout}");
    let saved = std::fs::read_to_string(config.path().join("credentials.json")).unwrap();
    assert!(saved.contains("\"user\": \"bob\""), "{saved}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(config.path().join("credentials.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The saved token signs later commands; bob is an annotator, so task lists work and user
    // administration is refused.
    let out = run(&["-o", "json", "project", "list"])
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["user", "list"]).wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        stderr.contains("permission") || stderr.contains("admin"),
        "{stderr}"
    );

    // Signing out revokes the token on the cluster and forgets it.
    let token = serde_json::from_str::<serde_json::Value>(&saved).unwrap()[&server]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let out = run(&["logout"]).wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));
    assert_eq!(me(&sso, &token).await["code"], "unauthenticated");
    let out = run(&["project", "list"]).wait_with_output().unwrap();
    assert!(!out.status.success(), "without a token the cluster refuses");
}
