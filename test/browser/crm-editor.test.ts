/**
 * The CRM side of the editor in a real browser (Debian's Chromium, driven by
 * playwright-core): the palette shows the CRM nodes; a flow with a HubSpot connection
 * (pointed at the HubSpot fake of this test process) comes in through the Import
 * dialog; its connection form's Test connection names the portal, and a wrong token
 * gives a clear failure that does not echo the token; the flow deploys without the
 * "not properly configured" warning; the crm-source form offers the connection's
 * objects; the inject button runs it and the status shows the records read.
 * Screenshots of each step go to test-artifacts/browser/crm-*.png (not committed).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { HubSpotFake } from "../fakes/hubspot";
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

const TOKEN = "pat-eu1-browser-token-4711";
const WRONG_TOKEN = "pat-eu1-wrong-token-0815";
const CONTACTS = 25;

/** A HubSpot contacts → audit log flow, as a user would paste it into Import. */
function crmFlow(baseUrl: string): object[] {
  return [
    { id: "crm_br_tab", type: "tab", label: "HubSpot contacts (browser)" },
    {
      id: "crm_br_hs",
      type: "tributary-crm-connection",
      z: "crm_br_tab",
      name: "HubSpot fake",
      provider: "hubspot",
      authType: "token",
      baseUrl,
      maxConcurrency: 4,
      credentials: { token: TOKEN },
    },
    {
      id: "crm_br_inject",
      type: "inject",
      z: "crm_br_tab",
      name: "read contacts",
      props: [],
      repeat: "",
      crontab: "",
      once: false,
      onceDelay: 0.1,
      topic: "",
      x: 140,
      y: 100,
      wires: [["crm_br_source"]],
    },
    {
      id: "crm_br_source",
      type: "tributary-crm-source",
      z: "crm_br_tab",
      name: "hubspot contacts",
      connection: "crm_br_hs",
      object: "contacts",
      fields: ["email", "firstname", "lastname"],
      mode: "incremental",
      batchSize: 10,
      maxInFlight: 2,
      settleTimeout: 60,
      lookback: 0,
      x: 340,
      y: 100,
      wires: [["crm_br_audit"], ["crm_br_audit"]],
    },
    {
      id: "crm_br_audit",
      type: "tributary-audit-log",
      z: "crm_br_tab",
      name: "",
      retentionDays: 30,
      recordUnchanged: false,
      x: 560,
      y: 100,
      wires: [[]],
    },
  ];
}

describe("CRM editor in Chromium", function () {
  this.timeout(180_000);
  let server: Started | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let hubspot: HubSpotFake | undefined;
  const shot = screenshots("crm-", () => page);
  const testResult = async () => (await page.textContent("#node-config-test-result"))?.trim() ?? "";

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      if (process.env.CI === "true")
        throw new Error(`${CHROMIUM} is missing: .ci/run installs Debian's chromium`);
      this.skip();
    }
    hubspot = new HubSpotFake({ token: TOKEN });
    await hubspot.start();
    hubspot.seed(
      "contacts",
      Array.from({ length: CONTACTS }, (_, i) => ({
        email: `browser${i}@example.com`,
        firstname: `Browser${i}`,
        lastname: "Example",
      })),
      (i) => new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
    );
    server = await spawnUntil(
      [cli, "start"],
      {
        PORT: "0",
        TRIBUTARY_USER_DIR: path.join(tempDir("tributary-crm-browser-"), "user"),
        TRIBUTARY_ADMIN_PASSWORD: "browser-pass",
      },
      /Tributary is running: (http:\/\/[^/\s]+)\//,
    );
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  });

  after(async () => {
    await browser?.close();
    kill(server?.child);
    await hubspot?.stop();
  });

  it("logs in and shows the users of tributary-crm-connection in the palette", async () => {
    await logIn(page, server!.url, "browser-pass", () => shot("login"));
    for (const type of ["tributary-crm-source", "tributary-upsert"]) {
      await page.waitForSelector(`.red-ui-palette-node[data-palette-type="${type}"]`, {
        state: "attached",
        timeout: 30_000,
      });
    }
    await shot("palette");
  });

  it("imports a HubSpot flow from the Import dialog and tests its connection: success, then a wrong token", async () => {
    await importFlow(page, JSON.stringify(crmFlow(hubspot!.url), null, 2), () =>
      shot("import-dialog"),
    );
    const connectionId = await page.evaluate(() => {
      let id = "";
      (window as unknown as { RED: EditorRED }).RED.nodes.eachConfig((n) => {
        if (n.type === "tributary-crm-connection" && n.name === "HubSpot fake") id = n.id;
      });
      return id;
    });
    assert.ok(connectionId, "the imported crm-connection is in the editor");
    await page.evaluate(
      (id) =>
        (window as unknown as { RED: EditorRED }).RED.editor.editConfig(
          "",
          "tributary-crm-connection",
          id,
        ),
      connectionId,
    );
    await page.waitForSelector("#node-config-test-connection", { state: "visible" });
    assert.equal(await page.inputValue("#node-config-input-provider"), "hubspot");
    assert.equal(await page.inputValue("#node-config-input-authType"), "token");
    assert.equal(await page.inputValue("#node-config-input-baseUrl"), hubspot!.url);

    await page.click("#node-config-test-connection");
    await page.waitForFunction(
      () =>
        /^Connected in \d+ ms/.test(
          document.querySelector("#node-config-test-result")?.textContent ?? "",
        ),
      null,
      { timeout: 20_000 },
    );
    const ok = await testResult();
    assert.match(ok, /as private app to portal 62515 \(app-eu1\.hubspot\.com\)/);
    assert.match(ok, /daily API calls [\d,]+ of 250,000 left/);
    assert.ok(
      await page.$eval("#node-config-test-result", (e) => e.classList.contains("tributary-ok")),
    );
    await shot("test-connection-ok");

    await page.fill("#node-config-input-token", WRONG_TOKEN);
    await page.click("#node-config-test-connection");
    await page.waitForFunction(
      () =>
        /authentication failed/.test(
          document.querySelector("#node-config-test-result")?.textContent ?? "",
        ),
      null,
      { timeout: 20_000 },
    );
    const failed = await testResult();
    assert.match(failed, /HTTP 401, authentication failed: check the token/);
    assert.ok(!failed.includes(WRONG_TOKEN), `the token is not shown: ${failed}`);
    assert.ok(!failed.includes(TOKEN), `no token is shown: ${failed}`);
    assert.ok(
      await page.$eval("#node-config-test-result", (e) => e.classList.contains("tributary-failed")),
    );
    const pageText = await page.evaluate(() => document.body.innerText);
    assert.ok(!pageText.includes(WRONG_TOKEN), "the wrong token appears nowhere in the page text");
    await shot("test-connection-wrong-token");
    // Cancel keeps the imported (right) token.
    await page.click("#node-config-dialog-cancel");
  });

  it("deploys without the 'not properly configured' warning; the crm-source form offers the connection's objects", async () => {
    const invalid = await invalidNodes(page);
    assert.deepEqual(invalid, [], "the imported nodes are valid");
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
    assert.ok(
      !notes.some((t) => /not properly configured/.test(t)),
      `no 'not properly configured' dialog: ${notes.join(" | ")}`,
    );
    assert.ok(notes.some((t) => /Successfully deployed/.test(t)));

    await page.evaluate(() => {
      const RED = (
        window as unknown as { RED: EditorRED & { nodes: { node(id: string): unknown } } }
      ).RED;
      RED.workspaces.show("crm_br_tab");
      RED.editor.edit(RED.nodes.node("crm_br_source"));
    });
    await page.waitForSelector("#node-input-object", { state: "visible" });
    assert.equal(await page.inputValue("#node-input-object"), "contacts");
    assert.equal(
      await page.getAttribute("#node-input-object", "list"),
      "tributary-crm-source-objects",
    );
    await page.waitForSelector('#tributary-crm-source-objects option[value="contacts"]', {
      state: "attached",
      timeout: 20_000,
    });
    const objects = await page.$$eval("#tributary-crm-source-objects option", (os) =>
      os.map((o) => (o as HTMLOptionElement).value),
    );
    for (const name of ["contacts", "companies", "deals"])
      assert.ok(objects.includes(name), `the object picker offers ${name}: ${objects.join(", ")}`);
    // The chosen object's fields are offered too, with the id and last-modified field named.
    await page.waitForSelector('#tributary-crm-source-fields option[value="email"]', {
      state: "attached",
      timeout: 20_000,
    });
    await page.waitForFunction(
      () =>
        /lastmodifieddate/.test(
          document.querySelector("#tributary-crm-source-hint")?.textContent ?? "",
        ),
      null,
      { timeout: 20_000 },
    );
    await page.focus("#node-input-object");
    await shot("crm-source-object-picker");
    await page.click("#node-dialog-cancel");
  });

  it("runs on the inject button and shows the contacts read on the crm-source's status", async () => {
    await page.evaluate(() =>
      (window as unknown as { RED: EditorRED }).RED.workspaces.show("crm_br_tab"),
    );
    await page.waitForTimeout(1000); // the new flow starts after the deploy answer
    await page.click('g[id="crm_br_inject"] .red-ui-flow-node-button');
    await page.waitForFunction(
      (n) =>
        new RegExp(`^${n} read, `).test(
          document
            .querySelector('g[id="crm_br_source"] .red-ui-flow-node-status-label')
            ?.textContent?.trim() ?? "",
        ),
      CONTACTS,
      { timeout: 30_000 },
    );
    const status = await page.textContent('g[id="crm_br_source"] .red-ui-flow-node-status-label');
    await shot("inject-status");
    // The audit log records the batches (settling them) but writes no target rows.
    assert.match(status ?? "", new RegExp(`^${CONTACTS} read, 0 written, [\\d.]+ s$`));
    const searches = hubspot!.log.filter(
      (r) => r.method === "POST" && r.path === "/crm/v3/objects/contacts/search",
    );
    assert.ok(searches.length > 0, "the run read the contacts through HubSpot's search");
  });
});
