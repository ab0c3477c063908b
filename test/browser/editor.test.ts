/**
 * The analyst's editor in a real browser (Debian's Chromium, driven by playwright-core):
 * log in, see the demo's counts, import an example from the Import dialog, test its
 * connection (success and failure), deploy, press the inject, watch the status and
 * the sidebar, resolve a conflict in the review queue. Screenshots of each step go
 * to test-artifacts/browser/ (not committed).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import type { Knex } from "knex";
import {
  MYSQL_URL,
  PG_URL,
  configFromUrl,
  mysqlKnex,
  pgKnex,
  requireServer,
} from "../support/databases";
import { createMysqlCustomers, createPgCustomers } from "../support/customers";
import { StateStore } from "../../nodes/lib/state-store";
import {
  CHROMIUM,
  importFlow,
  invalidNodes,
  launchChromium,
  logIn,
  screenshots,
  type EditorRED,
} from "./support";
import { cli, kill, root, spawnUntil, tempDir, type Started } from "../e2e/support";

describe("editor in Chromium", function () {
  this.timeout(180_000);
  let server: Started | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let userDir: string;
  let pg: Knex;
  let my: Knex;
  const shot = screenshots("", () => page);

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      if (process.env.CI === "true")
        throw new Error(`${CHROMIUM} is missing: .ci/run installs Debian's chromium`);
      this.skip();
    }
    pg = pgKnex();
    my = mysqlKnex();
    await requireServer(this, "PostgreSQL", pg);
    await requireServer(this, "MySQL/MariaDB", my);
    await createPgCustomers(pg, "br_customers", 1_500);
    await createMysqlCustomers(my, "br_customers");
    const p = configFromUrl(PG_URL);
    const m = configFromUrl(MYSQL_URL);
    userDir = path.join(tempDir("tributary-browser-"), "user");
    server = await spawnUntil(
      [cli, "start"],
      {
        PORT: "0",
        TRIBUTARY_USER_DIR: userDir,
        TRIBUTARY_ADMIN_PASSWORD: "browser-pass",
        ...{
          PG_HOST: p.host,
          PG_PORT: p.port,
          PG_DATABASE: p.database,
          PG_USER: p.user,
          PG_PASSWORD: p.password,
        },
        ...{
          MYSQL_HOST: m.host,
          MYSQL_PORT: m.port,
          MYSQL_DATABASE: m.database,
          MYSQL_USER: m.user,
          MYSQL_PASSWORD: m.password,
        },
      },
      /Tributary is running: (http:\/\/[^/\s]+)\//,
    );
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  });

  after(async () => {
    await browser?.close();
    kill(server?.child);
    await pg?.destroy();
    await my?.destroy();
  });

  it("asks for a login and opens the editor with the tributary palette", async () => {
    await logIn(page, server!.url, "browser-pass", () => shot("login"));
    for (const type of [
      "tributary-db-source",
      "tributary-upsert",
      "tributary-transform",
      "tributary-conflict-resolve",
      "tributary-audit-log",
    ]) {
      await page.waitForSelector(`.red-ui-palette-node[data-palette-type="${type}"]`, {
        state: "attached",
        timeout: 30_000,
      });
    }
    await shot("editor");
  });

  it("shows the demo flow's counts on the nodes' status", async () => {
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll(".red-ui-flow-node-status-label")].some((e) =>
          /500 read/.test(e.textContent ?? ""),
        ),
      null,
      { timeout: 30_000 },
    );
    await shot("demo-status");
    const invalid = await invalidNodes(page);
    assert.deepEqual(
      invalid,
      [],
      "the demo flow deploys without the 'not properly configured' warning",
    );
  });

  it("imports an example from the Import dialog and tests its connection: success, then a failure", async () => {
    const example = fs
      .readFileSync(
        path.join(root, "flows", "01 - PostgreSQL to MySQL incremental customers.json"),
        "utf8",
      )
      .replace(/"customers"/g, '"br_customers"');
    await importFlow(page, example, () => shot("import-dialog"));
    const pgId = await page.evaluate(() => {
      let id = "";
      (
        window as unknown as {
          RED: {
            nodes: {
              eachConfig(cb: (n: { id: string; type: string; client: string }) => void): void;
            };
          };
        }
      ).RED.nodes.eachConfig((n) => {
        if (n.type === "tributary-db-connection" && n.client === "pg") id = n.id;
      });
      return id;
    });
    assert.ok(pgId);
    await page.evaluate(
      (id) =>
        (
          window as unknown as {
            RED: { editor: { editConfig(a: string, b: string, c: string): void } };
          }
        ).RED.editor.editConfig("", "tributary-db-connection", id),
      pgId,
    );
    // Labels come from the en-US message catalog (locales/en-US/db-connection.json).
    assert.equal((await page.textContent('label[for="node-config-input-host"]'))?.trim(), "Host");
    await page.click("#node-config-test-connection");
    await page.waitForFunction(
      () =>
        /Connected in \d+ ms/.test(
          document.querySelector("#node-config-test-result")?.textContent ?? "",
        ),
      null,
      { timeout: 20_000 },
    );
    await shot("test-connection-ok");
    // The port is a typed input (text or environment variable): type into its visible field.
    await page.fill(
      "#node-config-input-port + .red-ui-typedInput-container input.red-ui-typedInput-input",
      "1",
    );
    await page.click("#node-config-test-connection");
    await page.waitForFunction(
      () =>
        /refused the connection/.test(
          document.querySelector("#node-config-test-result")?.textContent ?? "",
        ),
      null,
      { timeout: 20_000 },
    );
    await shot("test-connection-refused");
    await page.click("#node-config-dialog-cancel");
  });

  it("deploys, runs on the inject button, and shows the counts on the status and in the sidebar", async () => {
    await page.click("#red-ui-header-button-deploy");
    await page.waitForSelector(".red-ui-notification", { timeout: 20_000 });
    await shot("deployed");
    const injectId = await page.evaluate(() => {
      const RED = (window as unknown as { RED: EditorRED }).RED;
      let inject = { id: "", z: "" };
      RED.nodes.eachNode((n) => {
        if (n.type === "inject" && n.name === "every 5 minutes") inject = n;
      });
      RED.workspaces.show(inject.z); // the import opened its own tab
      return inject.id;
    });
    await page.waitForTimeout(1000); // the new flow starts after the deploy answer
    await page.click(`g[id="${injectId}"] .red-ui-flow-node-button`);
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll(".red-ui-flow-node-status-label")].some((e) =>
          /1,500 read, 1,500 written/.test(e.textContent ?? ""),
        ),
      null,
      { timeout: 30_000 },
    );
    await shot("inject-status");
    await page.evaluate(() =>
      (window as unknown as { RED: { sidebar: { show(id: string): void } } }).RED.sidebar.show(
        "tributary",
      ),
    );
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll(".tributary-run")].some((e) =>
          /br_customers\s*succeeded\s*1500 read/.test(e.textContent ?? ""),
        ),
      null,
      { timeout: 20_000 },
    );
    await shot("sidebar-runs");
  });

  it("resolves a conflict from the review queue", async () => {
    const store = await StateStore.open({ file: path.join(userDir, "tributary-state.sqlite") });
    const id = await store.addReview({
      scope: "browser",
      nodeId: "n1",
      key: [7],
      sourceRecord: { id: 7, name: "source side" },
      targetRecord: { id: 7, name: "target side" },
    });
    await page.click("button.tributary-refresh");
    await page.waitForSelector(`.tributary-review-item[data-review="${id}"]`, { timeout: 20_000 });
    await shot("review-queue");
    await page.click(
      `.tributary-review-item[data-review="${id}"] button[data-resolution="source"]`,
    );
    const resolved = async () => (await store.getReview(id))?.status === "resolved";
    for (let i = 0; i < 100 && !(await resolved()); i += 1) await page.waitForTimeout(100);
    const item = await store.getReview(id);
    await store.close();
    assert.equal(item?.status, "resolved");
    assert.equal(item?.resolution, "source");
    assert.equal(item?.resolvedBy, "admin");
    await shot("review-resolved");
  });
});
