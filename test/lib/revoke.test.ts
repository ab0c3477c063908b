/**
 * Revoking a CRM connection: the provider is told (each with its documented endpoint,
 * against the local fake), the stored tokens are gone, the audit says who and why,
 * and listeners hear about it, so sources can stop. Also through the admin route, with
 * Node-RED's real adminAuth.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { StateStore } from "../../nodes/lib/state-store";
import { TokenVault } from "../../nodes/lib/crm/token-vault";
import { exchangeCode, type OAuthApp } from "../../nodes/lib/crm/oauth";
import {
  connectionEvents,
  revokeConnection,
  type ConnectionRevoked,
} from "../../nodes/lib/crm/revoke";
import type { CrmTokens, ProviderName } from "../../nodes/lib/crm/provider";
import { FakeOAuthServer } from "../fakes/oauth";
import { startAdmin, type Admin } from "../support/oauth-admin";

const SECRET = "revoke-test-credential-secret";
const AUTHORIZE: Record<ProviderName, string> = {
  salesforce: "/services/oauth2/authorize",
  hubspot: "/oauth/authorize",
  zoho: "/oauth/v2/auth",
  pipedrive: "/oauth/authorize",
};

describe("revoke a CRM connection", () => {
  let dir: string;
  let store: StateStore;
  let vault: TokenVault;
  let fake: FakeOAuthServer;
  let heard: ConnectionRevoked[] = [];
  let stopListening: () => void;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-revoke-"));
    store = await StateStore.open({ file: path.join(dir, "state.sqlite") });
    vault = new TokenVault(SECRET, store);
    fake = await new FakeOAuthServer().start();
    stopListening = connectionEvents.onRevoked((e) => heard.push(e));
  });

  beforeEach(() => {
    heard = [];
  });

  after(async () => {
    stopListening();
    await fake.stop();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function app(provider: ProviderName, baseUrl = fake.url): OAuthApp {
    return { provider, baseUrl, clientId: fake.clientId, clientSecret: fake.clientSecret };
  }

  /** Real tokens from the fake (consent + code exchange), stored sealed. */
  async function connect(connectionId: string, provider: ProviderName): Promise<CrmTokens> {
    const redirectUri = "http://127.0.0.1:1/red/tributary/oauth/callback";
    const res = await fetch(
      `${fake.url}${AUTHORIZE[provider]}?client_id=${fake.clientId}&redirect_uri=${encodeURIComponent(redirectUri)}&state=s`,
      { redirect: "manual" },
    );
    const code = new URL(res.headers.get("location")!).searchParams.get("code")!;
    const tokens = await exchangeCode(app(provider), { code, redirectUri });
    await vault.forConnection(connectionId, provider).save(tokens);
    return tokens;
  }

  for (const provider of ["salesforce", "hubspot", "zoho", "pipedrive"] as const) {
    it(`${provider}: revokes the refresh token at the provider, wipes it, audits who and why, tells listeners`, async () => {
      const tokens = await connect(`${provider}-c`, provider);
      const result = await revokeConnection({
        connectionId: `${provider}-c`,
        app: app(provider),
        store,
        vault,
        by: "alice",
        reason: "laptop lost",
      });
      assert.deepEqual(result.atProvider, { status: "revoked" });
      assert.equal(result.wiped, true);
      assert.deepEqual(fake.revoked.slice(-1), [tokens.refreshToken]);
      assert.ok(!fake.refresh.has(tokens.refreshToken!), "the provider no longer accepts it");
      const call = fake.requests[fake.requests.length - 1];
      if (provider === "hubspot") assert.equal(call.method, "DELETE");
      if (provider === "zoho") assert.equal(call.query.get("token"), tokens.refreshToken);
      if (provider === "pipedrive") {
        assert.match(call.headers.authorization ?? "", /^Basic /);
        assert.equal(call.form.get("token_type_hint"), "refresh_token");
      }

      assert.equal(await store.getToken(`${provider}-c`), undefined);
      assert.equal(await vault.forConnection(`${provider}-c`, provider).load(), undefined);
      const audit = await store.listConnectionAudit(`${provider}-c`);
      assert.equal(audit.length, 1);
      assert.equal(audit[0].action, "revoked");
      assert.equal(audit[0].by, "alice");
      assert.equal(audit[0].reason, "laptop lost");
      assert.equal(heard.length, 1);
      assert.equal(heard[0].connectionId, `${provider}-c`);
      assert.equal(heard[0].provider, provider);
      assert.equal(heard[0].status, "revoked by alice: laptop lost");
    });
  }

  it("a provider that cannot be reached: tokens still wiped, the result and audit say to revoke in its UI", async () => {
    const tokens = await connect("down-c", "salesforce");
    const result = await revokeConnection({
      connectionId: "down-c",
      app: app("salesforce", "http://127.0.0.1:9"), // nothing listens on the discard port
      store,
      vault,
      by: "bob",
      reason: "offboarding",
    });
    assert.equal(result.atProvider.status, "failed");
    const message = (result.atProvider as { message: string }).message;
    assert.match(message, /did not answer/);
    assert.match(message, /connected apps/);
    assert.ok(!message.includes(tokens.refreshToken!) && !message.includes(tokens.accessToken));
    assert.equal(await store.getToken("down-c"), undefined);
    const [entry] = await store.listConnectionAudit("down-c");
    assert.equal(entry.action, "revoked-local");
    assert.match(entry.reason, /^offboarding \[not revoked at the provider/);
    assert.equal(heard.length, 1);
  });

  it("a token the provider already dropped counts as revoked there", async () => {
    const tokens = await connect("gone-c", "zoho");
    await fetch(`${fake.url}/oauth/v2/token/revoke?token=${tokens.refreshToken}`, {
      method: "POST",
    });
    const result = await revokeConnection({
      connectionId: "gone-c",
      app: app("zoho"),
      store,
      vault,
      by: "carol",
      reason: "cleanup",
    });
    assert.deepEqual(result.atProvider, { status: "already-invalid" });
    assert.equal(await store.getToken("gone-c"), undefined);
  });

  it("a connection with no stored tokens is still recorded and announced", async () => {
    const result = await revokeConnection({
      connectionId: "empty-c",
      app: app("hubspot"),
      store,
      vault,
      by: "dan",
      reason: "never used",
    });
    assert.deepEqual(result, {
      connectionId: "empty-c",
      provider: "hubspot",
      wiped: false,
      atProvider: { status: "no-token" },
    });
    assert.equal((await store.listConnectionAudit("empty-c")).length, 1);
    assert.equal(heard.length, 1);
  });

  describe("POST /tributary/oauth/:id/revoke", () => {
    let admin: Admin;

    before(async () => {
      admin = await startAdmin(store, SECRET);
      admin.connections.set("route-c", {
        provider: "salesforce",
        baseUrl: fake.url,
        clientId: fake.clientId,
        clientSecret: fake.clientSecret,
      });
    });

    after(() => admin.close());

    it("needs write permission and a reason", async () => {
      await connect("route-c", "salesforce");
      const path = "/tributary/oauth/route-c/revoke";
      assert.equal((await admin.request("POST", path, { body: { reason: "x" } })).status, 401);
      const viewer = await admin.request("POST", path, {
        token: admin.viewerToken,
        body: { reason: "x" },
      });
      assert.equal(viewer.status, 403);
      const noReason = await admin.request("POST", path, { token: admin.adminToken, body: {} });
      assert.equal(noReason.status, 400);
      assert.match(noReason.text, /reason/);
      assert.ok(await store.getToken("route-c"), "nothing revoked by refused requests");
      const unknown = await admin.request("POST", "/tributary/oauth/nope/revoke", {
        token: admin.adminToken,
        body: { reason: "x" },
      });
      assert.equal(unknown.status, 404);
    });

    it("revokes, records the signed-in user, and answers without any token", async () => {
      const tokens = await connect("route-c", "salesforce");
      const res = await admin.request("POST", "/tributary/oauth/route-c/revoke", {
        token: admin.adminToken,
        body: { reason: "rotating the connected app" },
      });
      assert.equal(res.status, 200, res.text);
      const body = JSON.parse(res.text) as { wiped: boolean; atProvider: { status: string } };
      assert.equal(body.wiped, true);
      assert.equal(body.atProvider.status, "revoked");
      assert.ok(fake.revoked.includes(tokens.refreshToken!));
      assert.equal(await store.getToken("route-c"), undefined);
      const last = (await store.listConnectionAudit("route-c")).pop()!;
      assert.equal(last.by, "admin");
      assert.equal(last.reason, "rotating the connected app");
      for (const text of [...admin.replies, ...admin.logs]) {
        assert.ok(!text.includes(tokens.accessToken) && !text.includes(tokens.refreshToken!));
      }
    });

    it("is also at /tributary/connections/:id/revoke (DESIGN.md §5)", async () => {
      await connect("route-c", "salesforce");
      const res = await admin.request("POST", "/tributary/connections/route-c/revoke", {
        token: admin.adminToken,
        body: { reason: "same route" },
      });
      assert.equal(res.status, 200, res.text);
      assert.equal(await store.getToken("route-c"), undefined);
    });
  });
});
