/**
 * The Connect (OAuth2) button of a crm-connection in a real browser (Debian's
 * Chromium, driven by playwright-core), against the hosted runtime: a HubSpot
 * connection with auth OAuth2 comes in through the Import dialog and is deployed; its
 * form's Connect opens the provider's consent page in a popup; the local OAuth fake
 * consents at once and redirects the popup to the runtime's callback, which shows
 * "Connected" and tells the editor (postMessage to its opener, which the test listens
 * for); the form gives feedback without a reload ("Consent page opened…", then, on
 * that message, "Connected"), and its Test connection then reports Connected with the
 * stored token. The state store holds the
 * tokens sealed (the access token is not in the stored text); loading the same
 * callback URL again is refused with 400 and a message.
 *
 * HubSpot in the test: one address (the connection's base URL) in front of two fakes,
 * as HubSpot's own hosts are in front of its services: the OAuth fake answers the
 * consent page and the code exchange (/oauth/authorize, /oauth/v1/token), the HubSpot
 * API fake everything else, and an access token the OAuth fake issued is accepted
 * by the API fake (the gateway swaps it for the API fake's token).
 *
 * Screenshots of each step go to test-artifacts/browser/oauth-*.png (not committed).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { Browser, Page, Response } from "playwright-core";
import { FakeOAuthServer } from "../fakes/oauth";
import { HubSpotFake } from "../fakes/hubspot";
import { StateStore } from "../../nodes/lib/state-store";
import { TokenVault } from "../../nodes/lib/crm/token-vault";
import {
  CHROMIUM,
  importFlow,
  invalidNodes,
  launchChromium,
  logIn,
  screenshots,
  type EditorRED,
} from "./support";
import { cli, kill, spawnUntil, tempDir, type Started } from "../e2e/support";

interface OAuthMessage {
  origin: string;
  data: { type?: string; connectionId?: string; ok?: boolean; message?: string };
}

const SECRET = "oauth-browser-credential-secret-4711";
const API_TOKEN = "pat-eu1-oauth-gateway-token";
const CONNECTION = "oauth_br_hs";

/** A tab with a HubSpot OAuth2 connection, as a user would paste it into Import. */
function oauthFlow(baseUrl: string, clientId: string, clientSecret: string): object[] {
  return [
    { id: "oauth_br_tab", type: "tab", label: "HubSpot OAuth (browser)" },
    {
      id: CONNECTION,
      type: "tributary-crm-connection",
      z: "oauth_br_tab",
      name: "HubSpot OAuth fake",
      provider: "hubspot",
      authType: "oauth2",
      baseUrl,
      maxConcurrency: 4,
      credentials: { clientId, clientSecret },
    },
    {
      id: "oauth_br_comment",
      type: "comment",
      z: "oauth_br_tab",
      name: "Connect the HubSpot connection, then Test connection",
      info: "",
      x: 220,
      y: 80,
      wires: [],
    },
  ];
}

/**
 * One base URL for the connection: the consent page and the token endpoint go to the
 * OAuth fake, the rest to the HubSpot API fake, with an access token issued by the
 * OAuth fake swapped for one the API fake accepts.
 */
async function startGateway(
  oauth: FakeOAuthServer,
  hubspot: HubSpotFake,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://gateway");
    const toOAuth =
      (req.method === "GET" && url.pathname === "/oauth/authorize") ||
      (req.method === "POST" && url.pathname === "/oauth/v1/token");
    const target = new URL(toOAuth ? oauth.url : hubspot.url);
    const headers = { ...req.headers, host: target.host };
    const auth = String(req.headers.authorization ?? "");
    if (!toOAuth && auth.startsWith("Bearer ") && oauth.access.has(auth.slice(7)))
      headers.authorization = `Bearer ${API_TOKEN}`;
    const upstream = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers,
      },
      (reply) => {
        res.writeHead(reply.statusCode ?? 502, reply.headers);
        reply.pipe(res);
      },
    );
    upstream.on("error", (err) => {
      res.writeHead(502, { "Content-Type": "text/plain" });
      res.end(`gateway: ${err.message}`);
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe("OAuth Connect in Chromium", function () {
  this.timeout(180_000);
  let server: Started | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let oauth: FakeOAuthServer | undefined;
  let hubspot: HubSpotFake | undefined;
  let gateway: { url: string; close(): Promise<void> } | undefined;
  let userDir: string;
  let callbackUrl = "";
  const shot = screenshots("oauth-", () => page);
  const formResult = async () => (await page.textContent("#node-config-test-result"))?.trim() ?? "";

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      if (process.env.CI === "true")
        throw new Error(`${CHROMIUM} is missing: .ci/run installs Debian's chromium`);
      this.skip();
    }
    oauth = await new FakeOAuthServer().start();
    hubspot = new HubSpotFake({ token: API_TOKEN });
    await hubspot.start();
    gateway = await startGateway(oauth, hubspot);
    userDir = path.join(tempDir("tributary-oauth-browser-"), "user");
    server = await spawnUntil(
      [cli, "start"],
      {
        PORT: "0",
        TRIBUTARY_USER_DIR: userDir,
        TRIBUTARY_ADMIN_PASSWORD: "browser-pass",
        TRIBUTARY_CREDENTIAL_SECRET: SECRET,
      },
      /Tributary is running: (http:\/\/[^/\s]+)\//,
    );
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    page = await context.newPage();
  });

  after(async () => {
    await browser?.close();
    kill(server?.child);
    await gateway?.close();
    await hubspot?.stop();
    await oauth?.stop();
  });

  it("logs in to the editor", async () => {
    await logIn(page, server!.url, "browser-pass", () => shot("login"));
    await page.waitForSelector('.red-ui-palette-node[data-palette-type="tributary-crm-source"]', {
      state: "attached",
      timeout: 30_000,
    });
  });

  it("imports a HubSpot connection with OAuth2 and deploys it", async () => {
    await importFlow(
      page,
      JSON.stringify(oauthFlow(gateway!.url, oauth!.clientId, oauth!.clientSecret), null, 2),
      () => shot("import-dialog"),
    );
    const ids = await page.evaluate(() => {
      const found: string[] = [];
      (window as unknown as { RED: EditorRED }).RED.nodes.eachConfig((n) => {
        if (n.type === "tributary-crm-connection") found.push(n.id);
      });
      return found;
    });
    assert.ok(ids.includes(CONNECTION), `the imported connection is in the editor: ${ids}`);
    const invalid = await invalidNodes(page);
    assert.deepEqual(invalid, [], "the imported nodes are valid");
    // Connect needs a deployed connection: the runtime looks its client id and secret up.
    await page.click("#red-ui-header-button-deploy");
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll(".red-ui-notification")].some((e) =>
          /Successfully deployed|not properly configured/.test(e.textContent ?? ""),
        ),
      null,
      { timeout: 20_000 },
    );
    const notes = await page.$$eval(".red-ui-notification", (els) =>
      els.map((e) => e.textContent ?? ""),
    );
    await shot("deployed");
    // Out of the form's way: the import and deploy notifications (one waits for Close).
    for (const close of await page.$$(".red-ui-notification button")) {
      if ((await close.textContent())?.trim() === "Close") await close.click();
    }
    assert.ok(
      notes.some((t) => /Successfully deployed/.test(t)),
      `deployed: ${notes.join(" | ")}`,
    );
    await page.waitForTimeout(1000); // the new flow starts after the deploy answer
  });

  it("Connect opens the consent page in a popup; the provider's redirect lands on the callback, which shows Connected and tells the editor", async () => {
    await page.evaluate(
      (id) =>
        (window as unknown as { RED: EditorRED }).RED.editor.editConfig(
          "",
          "tributary-crm-connection",
          id,
        ),
      CONNECTION,
    );
    await page.waitForSelector("#tributary-crm-connect", { state: "visible" });
    assert.equal(await page.inputValue("#node-config-input-provider"), "hubspot");
    assert.equal(await page.inputValue("#node-config-input-authType"), "oauth2");
    assert.equal(await page.inputValue("#node-config-input-baseUrl"), gateway!.url);
    assert.ok(await page.isVisible("#node-config-input-clientId"));
    assert.ok(!(await page.isVisible("#node-config-input-token")), "no token row for OAuth2");
    await shot("connection-form");

    // Before Connect there is no token: Test connection says so, in the form.
    await page.click("#node-config-test-connection");
    await page.waitForFunction(
      () =>
        document.querySelector("#node-config-test-result")?.classList.contains("tributary-failed"),
      null,
      { timeout: 20_000 },
    );
    const before = await formResult();
    assert.match(before, /no OAuth token yet.*click Connect/, before);
    await shot("test-before-connect");

    // What the callback page tells the editor window (its opener).
    await page.evaluate(() => {
      const w = window as unknown as { __oauthMessages: unknown[] };
      w.__oauthMessages = [];
      window.addEventListener("message", (e) => {
        if (e.data && (e.data as { type?: string }).type === "tributary-oauth")
          w.__oauthMessages.push({ origin: e.origin, data: e.data });
      });
    });
    const callbacks: Response[] = [];
    page.context().on("response", (r) => {
      if (new URL(r.url()).pathname === "/tributary/oauth/callback") callbacks.push(r);
    });

    const [popup] = await Promise.all([
      page.waitForEvent("popup", { timeout: 20_000 }),
      page.click("#tributary-crm-connect"),
    ]);
    // Immediate feedback in the form, without a reload.
    await page.waitForFunction(
      () =>
        /Consent page opened/.test(
          document.querySelector("#node-config-test-result")?.textContent ?? "",
        ),
      null,
      { timeout: 20_000 },
    );
    assert.ok(
      !(await page.$eval("#node-config-test-result", (e) =>
        e.classList.contains("tributary-failed"),
      )),
      "the earlier failure is cleared",
    );

    await popup.waitForURL(/\/tributary\/oauth\/callback\?/, { timeout: 20_000 });
    await popup.waitForLoadState("load");
    callbackUrl = popup.url();
    await shot("popup-connected", popup);
    assert.equal(new URL(callbackUrl).origin, new URL(server!.url).origin);
    assert.ok(new URL(callbackUrl).searchParams.get("code"), "the provider sent a code");
    assert.ok(new URL(callbackUrl).searchParams.get("state"), "and the state");
    assert.equal((await popup.textContent("h1"))?.trim(), "Connected");
    const popupText = await popup.evaluate(() => document.body.innerText);
    assert.match(popupText, /HubSpot connection is authorized/);
    assert.match(popupText, /close this window/);
    for (const token of oauth!.issuedTokens())
      assert.ok(!popupText.includes(token), "no token on the page");
    assert.equal(callbacks.length, 1);
    assert.equal(callbacks[0].status(), 200);

    // The consent request went to the fake with the runtime's callback as redirect_uri.
    const authorize = oauth!.requests.find((r) => r.path === "/oauth/authorize");
    assert.ok(authorize, "the popup opened the provider's consent page");
    assert.equal(
      authorize.query.get("redirect_uri"),
      `${new URL(server!.url).origin}/tributary/oauth/callback`,
    );
    assert.equal(authorize.query.get("client_id"), oauth!.clientId);
    assert.ok(oauth!.requests.some((r) => r.method === "POST" && r.path === "/oauth/v1/token"));

    const messages = await page.waitForFunction(
      () => {
        const m = (window as unknown as { __oauthMessages: unknown[] }).__oauthMessages;
        return m.length ? m : undefined;
      },
      null,
      { timeout: 20_000 },
    );
    const received = (await messages.jsonValue()) as OAuthMessage[];
    assert.equal(received.length, 1);
    assert.equal(received[0].origin, new URL(server!.url).origin);
    assert.deepEqual(
      { ...received[0].data, message: undefined },
      { type: "tributary-oauth", connectionId: CONNECTION, ok: true, message: undefined },
    );
    // The form says so by itself, without Test connection or a reload.
    await page.waitForFunction(
      () =>
        /^Connected: the tokens are stored/.test(
          document.querySelector("#node-config-test-result")?.textContent ?? "",
        ),
      null,
      { timeout: 20_000 },
    );
    assert.ok(
      await page.$eval("#node-config-test-result", (e) => e.classList.contains("tributary-ok")),
    );
    await popup.close();
    await shot("form-after-connect");
  });

  it("the state store holds the tokens sealed under the connection's id", async () => {
    const store = await StateStore.open({ file: path.join(userDir, "tributary-state.sqlite") });
    try {
      const row = await store.getToken(CONNECTION);
      assert.ok(row, "a token row for the connection");
      assert.equal(row.provider, "hubspot");
      const tokens = await new TokenVault(SECRET, store)
        .forConnection(CONNECTION, "hubspot")
        .load();
      assert.ok(tokens, "the sealed tokens open with the credential secret");
      assert.ok(oauth!.access.has(tokens.accessToken), "the fake's access token was stored");
      assert.ok(oauth!.refresh.has(tokens.refreshToken!), "and its refresh token");
      for (const token of oauth!.issuedTokens())
        assert.ok(!row.sealed.includes(token), "the stored text does not contain a token");
    } finally {
      await store.close();
    }
  });

  it("Test connection in the same form then connects with the stored token", async () => {
    await page.click("#node-config-test-connection");
    await page.waitForFunction(
      () =>
        /^Connected in \d+ ms/.test(
          document.querySelector("#node-config-test-result")?.textContent ?? "",
        ),
      null,
      { timeout: 20_000 },
    );
    const ok = await formResult();
    assert.match(ok, /as analyst@example\.com to portal 62515 \(app-eu1\.hubspot\.com\)/);
    assert.ok(
      await page.$eval("#node-config-test-result", (e) => e.classList.contains("tributary-ok")),
    );
    const pageText = await page.evaluate(() => document.body.innerText);
    for (const token of oauth!.issuedTokens())
      assert.ok(!pageText.includes(token), "no token in the editor's text");
    await shot("test-connection-ok");
    assert.ok(
      hubspot!.log.some((r) => r.path === "/account-info/v3/details"),
      "the check reached the HubSpot API fake",
    );
    await page.click("#node-config-dialog-cancel");
  });

  it("the same callback URL loaded again is refused with 400 and a message", async () => {
    assert.ok(callbackUrl, "the Connect step recorded the callback URL");
    const tokenCalls = oauth!.requests.filter((r) => r.path === "/oauth/v1/token").length;
    const store = await StateStore.open({ file: path.join(userDir, "tributary-state.sqlite") });
    const first = await store.getToken(CONNECTION);
    // A new page of the same browser (the editor's cookies and all).
    const replay = await page.context().newPage();
    try {
      const res = await replay.goto(callbackUrl);
      assert.ok(res);
      assert.equal(res.status(), 400);
      assert.equal((await replay.textContent("h1"))?.trim(), "Not connected");
      const text = await replay.evaluate(() => document.body.innerText);
      assert.match(text, /already used/);
      assert.match(text, /click Connect again/);
      await shot("replay-refused", replay);
      assert.equal(
        oauth!.requests.filter((r) => r.path === "/oauth/v1/token").length,
        tokenCalls,
        "no second code exchange",
      );
      assert.deepEqual(await store.getToken(CONNECTION), first, "the stored tokens are unchanged");
    } finally {
      await replay.close();
      await store.close();
    }
  });
});
