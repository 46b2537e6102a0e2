// A real OpenID Connect provider (the `oidc-provider` package) for Gloss's single sign-on tests,
// listening on loopback. It signs real ID tokens with its own keys and serves discovery, JWKS,
// authorization code with PKCE and the device code flow; only the login page is ours, as it is
// in every deployment of this package: it asks for a user name (the accounts below) and no
// password.
//
//   node provider.mjs --redirect http://127.0.0.1:PORT/auth/oidc/callback
//
// Prints `ready ISSUER` once it listens. Test controls (loopback only, for the tests' sake):
//   POST /test/id-token-ttl?seconds=N   ID tokens issued from now on live N seconds.

import http from "node:http";
import Provider from "oidc-provider";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith("--") ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const redirect = args.redirect;
if (!redirect) {
  console.error("usage: node provider.mjs --redirect URL [--port N]");
  process.exit(2);
}

// People at the provider: their groups are what Gloss maps to roles.
const ACCOUNTS = {
  alice: { name: "Alice Admin", email: "alice@example.test", groups: ["gloss-admins"] },
  bob: { name: "Bob Labeler", email: "bob@example.test", groups: ["labelers", "demo-qa", "marketing"] },
  carol: { name: "Carol Marketing", email: "carol@example.test", groups: ["marketing"] },
  dave: { name: "Dave Twin", email: "dave@example.test", groups: ["labelers"] },
  erin: { name: "Erin Leaver", email: "erin@example.test", groups: ["labelers"] },
};

let idTokenTtl = 600;

const page = (title, body) => `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head>
<body><h1>${title}</h1>${body}</body></html>`;

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(args.port || 0), "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "gloss-web",
      client_secret: "gloss-web-secret-for-tests",
      redirect_uris: [redirect],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
    {
      client_id: "gloss-cli",
      client_name: "glossctl",
      token_endpoint_auth_method: "none",
      grant_types: ["urn:ietf:params:oauth:grant-type:device_code"],
      response_types: [],
      redirect_uris: [],
    },
    {
      // Another application of the same company: its ID tokens are not for Gloss.
      client_id: "other-app",
      client_secret: "other-app-secret-for-tests",
      redirect_uris: ["http://127.0.0.1:9/other/callback"],
      grant_types: ["authorization_code"],
      response_types: ["code"],
    },
  ],
  async findAccount(_ctx, id) {
    const a = ACCOUNTS[id];
    if (!a) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, ...a };
      },
    };
  },
  claims: {
    openid: ["sub"],
    profile: ["name", "preferred_username"],
    email: ["email"],
    groups: ["groups"],
  },
  scopes: ["openid", "profile", "email", "groups"],
  // Scope claims go into the ID token itself (Gloss reads them there, not from userinfo).
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: false },
    deviceFlow: {
      enabled: true,
      async userCodeInputSource(ctx, form, _out, err) {
        const msg = err ? `<p class="error">${err.userCode ? "The code you entered is incorrect." : `Something went wrong: ${err.name} ${err.error_description || err.message}`}</p>` : "";
        ctx.body = page("Enter the code shown by your device", `${msg}${form}<button type="submit" form="op.deviceInputForm">Continue</button>`);
      },
      async userCodeConfirmSource(ctx, form, client, _info, userCode) {
        ctx.body = page(`Sign in to ${client.clientName || client.clientId}?`, `<p>Code <code>${userCode}</code></p>${form}<button type="submit" form="op.deviceConfirmForm">Continue</button>`);
      },
      async successSource(ctx) {
        ctx.body = page("Signed in", "<p>You can close this page.</p>");
      },
    },
  },
  // First-party clients: no consent screen, every requested scope and claim granted.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope("openid profile email groups");
    grant.addOIDCClaims(["sub", "name", "preferred_username", "email", "groups"]);
    await grant.save();
    return grant;
  },
  interactions: {
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  ttl: {
    IdToken: () => idTokenTtl,
    AccessToken: 600,
    AuthorizationCode: 120,
    DeviceCode: 300,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  cookies: { keys: ["gloss-oidc-test-cookie-key"] },
  renderError(ctx, out) {
    ctx.type = "html";
    ctx.body = page("Sign-in error", `<pre id="error">${Object.entries(out).map(([k, v]) => `${k}: ${v}`).join("\n")}</pre>`);
  },
});
// Plain http on loopback: the provider is told it is not behind a TLS-terminating proxy.
provider.proxy = false;
const handle = provider.callback();

const readForm = (req) =>
  new Promise((resolve, reject) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => resolve(new URLSearchParams(body)));
    req.on("error", reject);
  });

server.on("request", async (req, res) => {
  const url = new URL(req.url, issuer);
  if (process.env.OIDC_DEBUG) console.error(req.method, req.url, JSON.stringify(req.headers));
  try {
    const login = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
    if (login && req.method === "GET") {
      const details = await provider.interactionDetails(req, res);
      res.setHeader("Content-Type", "text/html; charset=utf-8");
      res.end(
        page(
          "Sign in to the company directory",
          `<p>${details.params.client_id} asks you to sign in.</p>
<form method="post" action="/interaction/${details.uid}/login">
<label>User name <input name="login" id="login" autofocus></label>
<button type="submit" id="submit">Sign in</button></form>`,
        ),
      );
      return;
    }
    if (login && login[2] && req.method === "POST") {
      const form = await readForm(req);
      const accountId = form.get("login");
      if (!ACCOUNTS[accountId]) {
        res.setHeader("Content-Type", "text/html; charset=utf-8");
        res.end(page("Sign in to the company directory", `<p class="error">No account ${accountId}.</p>`));
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
      return;
    }
    if (url.pathname === "/test/id-token-ttl" && req.method === "POST") {
      idTokenTtl = Number(url.searchParams.get("seconds"));
      res.end("ok");
      return;
    }
    handle(req, res);
  } catch (e) {
    res.statusCode = 500;
    res.end(String(e));
  }
});

console.log(`ready ${issuer}`);
process.on("SIGTERM", () => process.exit(0));
