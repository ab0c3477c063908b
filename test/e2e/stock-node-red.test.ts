/**
 * The pack installed into a stock Node-RED 4.1 user directory with npm, as an analyst
 * installs it: the nodes load without the hosted runtime and sync.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import Database from "better-sqlite3";
import { kill, root, spawnUntil, tempDir, waitFor, type Started } from "./support";

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("installed into a stock Node-RED", function () {
  this.timeout(180_000);
  let nodeRed: Started | undefined;
  let userDir: string;
  let url: string;

  before(async () => {
    userDir = tempDir("tributary-stock-");
    fs.writeFileSync(
      path.join(userDir, "package.json"),
      JSON.stringify({
        name: "node-red-project",
        private: true,
        allowScripts: { "better-sqlite3": true, oracledb: true },
      }),
    );
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    execFileSync(npm, ["install", "--no-audit", "--no-fund", "--offline", root], {
      cwd: userDir,
      stdio: "pipe",
    });
    fs.writeFileSync(
      path.join(userDir, "settings.js"),
      `module.exports = { credentialSecret: "stock-test", uiHost: "127.0.0.1", flowFile: "flows.json", logging: { console: { level: "info" } } };\n`,
    );
    const db = new Database(path.join(userDir, "source.sqlite"));
    db.exec("create table people (id integer primary key, name text, updated_at text)");
    const insert = db.prepare("insert into people values (?, ?, ?)");
    for (let id = 1; id <= 300; id += 1)
      insert.run(
        id,
        `person ${id}`,
        `2026-01-01T00:00:${String(id % 60).padStart(2, "0")}.${String(id).padStart(6, "0")}Z`,
      );
    db.close();
    const target = new Database(path.join(userDir, "target.sqlite"));
    target.exec("create table people (id integer primary key, name text, updated_at text)");
    target.close();
    const port = await freePort();
    const redJs = require.resolve("node-red/red.js", { paths: [root] });
    nodeRed = await spawnUntil(
      [redJs, "-u", userDir, "-p", String(port), "-s", path.join(userDir, "settings.js")],
      {},
      /Started flows/,
    );
    url = `http://127.0.0.1:${port}`;
  });

  after(() => kill(nodeRed?.child));

  it("loads the three nodes from node-red-contrib-tributary", async () => {
    const res = await fetch(`${url}/nodes`, { headers: { accept: "application/json" } });
    const sets = (await res.json()) as Array<{ module: string; types: string[]; err?: string }>;
    const ours = sets.filter((s) => s.module === "node-red-contrib-tributary");
    const types = ours.flatMap((s) => s.types);
    for (const type of ["tributary-db-connection", "tributary-db-source", "tributary-upsert"])
      assert.ok(types.includes(type), type);
    for (const set of ours) assert.equal(set.err, undefined);
  });

  it("syncs SQLite → SQLite from a deployed flow", async () => {
    const flow = [
      { id: "st_tab", type: "tab", label: "stock" },
      {
        id: "st_src_db",
        type: "tributary-db-connection",
        z: "st_tab",
        client: "sqlite",
        filename: "source.sqlite",
      },
      {
        id: "st_dst_db",
        type: "tributary-db-connection",
        z: "st_tab",
        client: "sqlite",
        filename: "target.sqlite",
      },
      { id: "st_inject", type: "inject", z: "st_tab", props: [], once: false, wires: [["st_src"]] },
      {
        id: "st_src",
        type: "tributary-db-source",
        z: "st_tab",
        connection: "st_src_db",
        table: "people",
        keyColumns: ["id"],
        cursorColumn: "updated_at",
        mode: "incremental",
        batchSize: 50,
        wires: [["st_up"], []],
      },
      {
        id: "st_up",
        type: "tributary-upsert",
        z: "st_tab",
        connection: "st_dst_db",
        table: "people",
        keyColumns: ["id"],
        mode: "upsert",
        wires: [[], []],
      },
    ];
    const deploy = await fetch(`${url}/flows`, {
      method: "POST",
      headers: { "content-type": "application/json", "Node-RED-Deployment-Type": "full" },
      body: JSON.stringify(flow),
    });
    assert.ok([200, 204].includes(deploy.status));
    await waitFor(
      "the inject to start",
      async () => (await fetch(`${url}/inject/st_inject`, { method: "POST" })).status === 200,
    );
    const rows = await waitFor("300 rows in the target", async () => {
      const db = new Database(path.join(userDir, "target.sqlite"), { readonly: true });
      try {
        const n = (db.prepare("select count(*) as n from people").get() as { n: number }).n;
        return n === 300 ? n : undefined;
      } finally {
        db.close();
      }
    });
    assert.equal(rows, 300);
    // The state store lives in the Node-RED user directory.
    assert.ok(fs.existsSync(path.join(userDir, "tributary-state.sqlite")));
  });
});
