/**
 * The Connect button end to end, as a browser goes through it: the editor asks
 * /tributary/oauth/:id/start (signed in), opens the consent URL at the provider (a
 * local fake that consents at once and redirects), and the browser follows the
 * redirect to the callback (no bearer token, only the cookie start set). What a user
 * checks: the tokens end up stored, encrypted; a wrong, replayed or stale link is
 * refused with a message; no reply and no log line shows a token.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { StateStore } from "../../nodes/lib/state-store";
import { TokenVault } from "../../nodes/lib/crm/token-vault";
import {
  AuthorizationRequests,
  exchangeCode,
  oauthEndpoints,
  refreshTokens,
  zohoTokenUrl,
} from "../../nodes/lib/crm/oauth";
import type { ProviderName } from "../../nodes/lib/crm/provider";
import { FakeOAuthServer } from "../fakes/oauth";
import { startAdmin, type Admin } from "../support/oauth-admin";

const SECRET = "oauth-test-credential-secret";

describe("OAuth Connect (start → consent → callback)", () => {
  let dir: string;
  let store: StateStore;
  let fake: FakeOAuthServer;
  let admin: Admin;
  let clock = Date.now();
  const requests = new AuthorizationRequests(10 * 60_000, () => clock);
  const codes: string[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-oauth-"));
    store = await StateStore.open({ file: path.join(dir, "state.sqlite") });
    fake = await new FakeOAuthServer().start();
    admin = await startAdmin(store, SECRET, { requests });
    for (const provider of ["salesforce", "hubspot", "zoho", "pipedrive"]) {
      admin.connections.set(`${provider}1`, {
        provider,
        baseUrl: fake.url,
        clientId: fake.clientId,
        clientSecret: fake.clientSecret,
      });
    }
  });

  beforeEach(async () => {
    clock = Date.now();
    fake.deny = false;
    for (const t of await store.listTokens()) await store.deleteToken(t.connectionId);
  });

  afterEach(function () {
    // No token, authorization code or client secret in any reply or log line so far.
    const secrets = [...fake.issuedTokens(), ...codes, fake.clientSecret];
    for (const text of [...admin.replies, ...admin.logs]) {
      for (const secret of secrets) {
        assert.ok(!text.includes(secret), `"${secret}" leaked into: ${text.slice(0, 300)}`);
      }
    }
  });

  after(async () => {
    await admin.close();
    await fake.stop();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function start(connectionId: string) {
    const res = await admin.request("GET", `/tributary/oauth/${connectionId}/start`, {
      token: admin.adminToken,
    });
    assert.equal(res.status, 200, res.text);
    const body = JSON.parse(res.text) as { url: string; redirectUri: string; expiresAt: string };
    const setCookie = res.headers.get("set-cookie") ?? "";
    return { ...body, consent: new URL(body.url), setCookie, cookie: setCookie.split(";")[0] };
  }

  /** The browser at the provider: consent, then the provider's redirect back. */
  async function consent(url: string): Promise<URL> {
    const res = await fetch(url, { redirect: "manual" });
    assert.equal(res.status, 302, await res.text());
    const location = new URL(res.headers.get("location")!);
    const code = location.searchParams.get("code");
    if (code) codes.push(code);
    return location;
  }

  async function stored(connectionId: string, provider: string) {
    return new TokenVault(SECRET, store).forConnection(connectionId, provider).load();
  }

  it("start needs a signed-in editor user with write permission", async () => {
    const anonymous = await admin.request("GET", "/tributary/oauth/salesforce1/start");
    assert.equal(anonymous.status, 401);
    const viewer = await admin.request("GET", "/tributary/oauth/salesforce1/start", {
      token: admin.viewerToken,
    });
    assert.equal(viewer.status, 403);
    assert.match(viewer.text, /tributary-crm-connection\.write/);
    const unknown = await admin.request("GET", "/tributary/oauth/nope/start", {
      token: admin.adminToken,
    });
    assert.equal(unknown.status, 404);
    assert.match(unknown.text, /deploy/);
  });

  it("Salesforce: consent URL with state and an S256 PKCE challenge; the callback stores sealed tokens", async () => {
    const s = await start("salesforce1");
    assert.equal(s.consent.origin + s.consent.pathname, `${fake.url}/services/oauth2/authorize`);
    const q = s.consent.searchParams;
    assert.equal(q.get("response_type"), "code");
    assert.equal(q.get("client_id"), fake.clientId);
    assert.equal(q.get("redirect_uri"), `${admin.url}/tributary/oauth/callback`);
    assert.equal(s.redirectUri, `${admin.url}/tributary/oauth/callback`);
    assert.match(q.get("state") ?? "", /^[A-Za-z0-9_-]{43}$/);
    assert.equal(q.get("code_challenge_method"), "S256");
    assert.match(q.get("code_challenge") ?? "", /^[A-Za-z0-9_-]{43}$/);
    assert.ok(Date.parse(s.expiresAt) - clock >= 9 * 60_000, "valid for about 10 minutes");
    // The binding cookie reaches only the callback, not scripts.
    assert.match(s.setCookie, /Path=\/red\/tributary\/oauth\/callback/);
    assert.match(s.setCookie, /HttpOnly/);
    assert.match(s.setCookie, /SameSite=Lax/);

    const back = await consent(s.url);
    assert.equal(back.origin + back.pathname, `${admin.url}/tributary/oauth/callback`);
    // The browser follows the redirect: no Authorization header, only the cookie.
    const res = await admin.request("GET", back.toString(), { cookie: s.cookie });
    assert.equal(res.status, 200, res.text);
    assert.match(res.text, /Connected/);
    assert.match(res.text, /close this window/);

    // The token request proved the verifier matching the challenge (the fake checks it).
    const tokenCall = fake.requests.filter((r) => r.path === "/services/oauth2/token").pop()!;
    assert.match(tokenCall.form.get("code_verifier") ?? "", /^[A-Za-z0-9_-]{43,128}$/);
    assert.equal(tokenCall.form.get("redirect_uri"), s.redirectUri);

    const tokens = await stored("salesforce1", "salesforce");
    assert.ok(tokens);
    assert.ok(fake.access.has(tokens.accessToken));
    assert.ok(fake.refresh.has(tokens.refreshToken!));
    assert.equal(tokens.instanceUrl, fake.url);
    const row = await store.getToken("salesforce1");
    assert.ok(!row!.sealed.includes(tokens.accessToken));
    assert.ok(!row!.sealed.includes(tokens.refreshToken!));
    assert.ok(admin.logs.some((l) => /salesforce1 \(salesforce\) connected by admin/.test(l)));
  });

  it("a replayed callback is refused with 400 and exchanges nothing", async () => {
    const s = await start("salesforce1");
    const back = await consent(s.url);
    assert.equal((await admin.request("GET", back.toString(), { cookie: s.cookie })).status, 200);
    const first = await store.getToken("salesforce1");
    const tokenCalls = fake.requests.length;

    const again = await admin.request("GET", back.toString(), { cookie: s.cookie });
    assert.equal(again.status, 400);
    assert.match(again.text, /already used/);
    assert.equal(fake.requests.length, tokenCalls, "no second token request");
    assert.deepEqual(await store.getToken("salesforce1"), first);
  });

  it("an unknown or missing state is refused with 400", async () => {
    const s = await start("salesforce1");
    const back = await consent(s.url);
    const forged = new URL(back);
    forged.searchParams.set("state", "A".repeat(43));
    const bad = await admin.request("GET", forged.toString(), { cookie: s.cookie });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /unknown state/);
    forged.searchParams.delete("state");
    const none = await admin.request("GET", forged.toString(), { cookie: s.cookie });
    assert.equal(none.status, 400);
    assert.match(none.text, /no state/);
    assert.equal(await store.getToken("salesforce1"), undefined);
  });

  it("a state older than 10 minutes is refused with 400", async () => {
    const s = await start("salesforce1");
    const back = await consent(s.url);
    clock += 10 * 60_000 + 1000;
    const res = await admin.request("GET", back.toString(), { cookie: s.cookie });
    assert.equal(res.status, 400);
    assert.match(res.text, /expired/);
    assert.equal(await store.getToken("salesforce1"), undefined);
  });

  it("a callback from another browser (without the start cookie) is refused, and the right one still works", async () => {
    const s = await start("salesforce1");
    const back = await consent(s.url);
    const other = await admin.request("GET", back.toString());
    assert.equal(other.status, 400);
    assert.match(other.text, /another browser/);
    const wrong = await admin.request("GET", back.toString(), {
      cookie: `${s.cookie.split("=")[0]}=${"x".repeat(43)}`,
    });
    assert.equal(wrong.status, 400);
    assert.equal(await store.getToken("salesforce1"), undefined);
    const mine = await admin.request("GET", back.toString(), { cookie: s.cookie });
    assert.equal(mine.status, 200);
    assert.ok(await stored("salesforce1", "salesforce"));
  });

  it("a denied consent answers 400 with the provider's reason and stores nothing", async () => {
    fake.deny = true;
    const s = await start("hubspot1");
    const back = await consent(s.url);
    const res = await admin.request("GET", back.toString(), { cookie: s.cookie });
    assert.equal(res.status, 400);
    assert.match(res.text, /access_denied/);
    assert.equal(await store.getToken("hubspot1"), undefined);
  });

  it("a code the provider refuses (wrong client secret) answers 400 naming what to check", async () => {
    admin.connections.set("badsecret", {
      provider: "salesforce",
      baseUrl: fake.url,
      clientId: fake.clientId,
      clientSecret: "not-the-secret",
    });
    const s = await start("badsecret");
    const back = await consent(s.url);
    const res = await admin.request("GET", back.toString(), { cookie: s.cookie });
    assert.equal(res.status, 400);
    assert.match(res.text, /Salesforce refused/);
    assert.match(res.text, /invalid_grant/);
    assert.match(res.text, /client id and secret/);
    assert.ok(!res.text.includes("not-the-secret"));
    assert.equal(await store.getToken("badsecret"), undefined);
  });

  for (const [provider, check] of [
    [
      "hubspot",
      (q: URLSearchParams, url: URL) => {
        assert.equal(url.pathname, "/oauth/authorize");
        assert.ok(q.get("scope")?.includes("crm.objects.contacts.read"));
      },
    ],
    [
      "zoho",
      (q: URLSearchParams, url: URL) => {
        assert.equal(url.pathname, "/oauth/v2/auth");
        assert.equal(q.get("access_type"), "offline");
        assert.ok(q.get("scope")?.includes("ZohoCRM.modules"));
      },
    ],
    [
      "pipedrive",
      (_q: URLSearchParams, url: URL) => assert.equal(url.pathname, "/oauth/authorize"),
    ],
  ] as const) {
    it(`${provider}: no PKCE, the provider's own parameters, tokens stored with their expiry`, async () => {
      const s = await start(`${provider}1`);
      check(s.consent.searchParams, s.consent);
      assert.equal(s.consent.searchParams.get("code_challenge"), null);
      const back = await consent(s.url);
      const res = await admin.request("GET", back.toString(), { cookie: s.cookie });
      assert.equal(res.status, 200, res.text);
      const tokens = await stored(`${provider}1`, provider);
      assert.ok(tokens && fake.access.has(tokens.accessToken));
      assert.ok(tokens.expiresAt! > clock + 25 * 60_000, "expiry from expires_in");
      if (provider !== "hubspot") assert.equal(tokens.instanceUrl, fake.url); // api_domain
      if (provider === "pipedrive") {
        const call = fake.requests.filter((r) => r.path === "/oauth/token").pop()!;
        assert.match(call.headers.authorization ?? "", /^Basic /);
        assert.equal(call.form.get("client_secret"), null, "credentials only in the header");
      }
    });
  }
  describe("refreshTokens", () => {
    async function connected(provider: ProviderName) {
      const app = {
        provider,
        baseUrl: fake.url,
        clientId: fake.clientId,
        clientSecret: fake.clientSecret,
      };
      const redirectUri = "http://127.0.0.1:1/cb";
      const path = {
        salesforce: "/services/oauth2/authorize",
        hubspot: "/oauth/authorize",
        zoho: "/oauth/v2/auth",
        pipedrive: "/oauth/authorize",
      }[provider];
      const back = await consent(
        `${fake.url}${path}?client_id=${fake.clientId}&redirect_uri=${encodeURIComponent(redirectUri)}&state=s`,
      );
      return {
        app,
        tokens: await exchangeCode(app, { code: back.searchParams.get("code")!, redirectUri }),
      };
    }

    it("keeps the refresh token when the provider sends none (Salesforce, Zoho)", async () => {
      for (const provider of ["salesforce", "zoho"] as const) {
        const { app, tokens } = await connected(provider);
        const fresh = await refreshTokens(app, tokens);
        assert.notEqual(fresh.accessToken, tokens.accessToken);
        assert.ok(fake.access.has(fresh.accessToken));
        assert.equal(fresh.refreshToken, tokens.refreshToken);
        assert.equal(fresh.instanceUrl, fake.url);
      }
    });

    it("takes a rotated refresh token (Pipedrive) and fails clearly on a revoked one", async () => {
      const { app, tokens } = await connected("pipedrive");
      const fresh = await refreshTokens(app, tokens, { now: () => 1_000 });
      assert.notEqual(fresh.refreshToken, tokens.refreshToken);
      assert.ok(fake.refresh.has(fresh.refreshToken!));
      assert.equal(fresh.expiresAt, 1_000 + 3600 * 1000);
      await assert.rejects(
        () => refreshTokens(app, tokens), // the old one was rotated away
        (err: Error) =>
          /Pipedrive refused to refresh the access token: invalid_grant/.test(err.message) &&
          !err.message.includes(tokens.refreshToken!),
      );
    });
  });
});

describe("OAuth endpoints of each provider", () => {
  const app = (provider: ProviderName, baseUrl = "") => ({
    provider,
    baseUrl,
    clientId: "id",
    clientSecret: "secret",
  });

  it("are the providers' production hosts by default, and follow sandboxes and data centres", () => {
    const sf = oauthEndpoints(app("salesforce"));
    assert.equal(sf.authorize, "https://login.salesforce.com/services/oauth2/authorize");
    assert.equal(sf.token, "https://login.salesforce.com/services/oauth2/token");
    assert.equal(sf.pkce, true);
    assert.equal(
      oauthEndpoints(app("salesforce", "https://test.salesforce.com/")).token,
      "https://test.salesforce.com/services/oauth2/token",
    );
    const hs = oauthEndpoints(app("hubspot", "https://api.hubapi.com"));
    assert.equal(hs.authorize, "https://app.hubspot.com/oauth/authorize");
    assert.equal(hs.token, "https://api.hubapi.com/oauth/v1/token");
    assert.equal(hs.revoke?.url("r t"), "https://api.hubapi.com/oauth/v1/refresh-tokens/r%20t");
    const zoho = oauthEndpoints(app("zoho"));
    assert.equal(zoho.authorize, "https://accounts.zoho.com/oauth/v2/auth");
    assert.equal(zoho.authorizeParams.access_type, "offline");
    assert.equal(
      oauthEndpoints(app("zoho", "https://www.zohoapis.eu")).token,
      "https://accounts.zoho.eu/oauth/v2/token",
    );
    assert.equal(
      oauthEndpoints(app("zoho", "https://www.zohoapis.ca")).token,
      "https://accounts.zohocloud.ca/oauth/v2/token",
    );
    const pd = oauthEndpoints(app("pipedrive", "https://mycompany.pipedrive.com"));
    assert.equal(pd.authorize, "https://oauth.pipedrive.com/oauth/authorize");
    assert.equal(pd.token, "https://oauth.pipedrive.com/oauth/token");
    assert.equal(pd.basicAuth, true);
  });

  it("exchange Zoho codes at the user's data centre, but only at a Zoho accounts host", () => {
    assert.equal(
      zohoTokenUrl(app("zoho"), "https://accounts.zoho.eu"),
      "https://accounts.zoho.eu/oauth/v2/token",
    );
    assert.equal(zohoTokenUrl(app("zoho"), "https://evil.example.com"), undefined);
    assert.equal(zohoTokenUrl(app("zoho"), "http://accounts.zoho.eu"), undefined);
    // A fake or proxy base URL serves the token endpoint itself.
    assert.equal(
      zohoTokenUrl(app("zoho", "http://127.0.0.1:9"), "https://accounts.zoho.eu"),
      undefined,
    );
  });
});
