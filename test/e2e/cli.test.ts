/** `tributary run <flows.json>` as a user runs it: summary lines and exit codes. */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import Database from "better-sqlite3";
import { headlessSecret } from "../../runtime/headless";
import { runCli, tempDir } from "./support";

/** The orders flow; `summaryTo` wires the source's summary output to that node. */
function sqliteFlow(dir: string, extra: object[] = [], summaryTo?: string): string {
  const flow = [
    { id: "cli_tab", type: "tab", label: "cli" },
    {
      id: "cli_a",
      type: "tributary-db-connection",
      z: "cli_tab",
      client: "sqlite",
      filename: "${CLI_SOURCE_DB}",
    },
    {
      id: "cli_b",
      type: "tributary-db-connection",
      z: "cli_tab",
      client: "sqlite",
      filename: path.join(dir, "target.sqlite"),
    },
    {
      id: "cli_src",
      type: "tributary-db-source",
      z: "cli_tab",
      name: "orders",
      connection: "cli_a",
      table: "orders",
      keyColumns: ["id"],
      cursorColumn: "updated_at",
      mode: "incremental",
      batchSize: 40,
      wires: [["cli_up"], summaryTo ? [summaryTo] : []],
    },
    {
      id: "cli_up",
      type: "tributary-upsert",
      z: "cli_tab",
      connection: "cli_b",
      table: "orders",
      keyColumns: ["id"],
      wires: [[], []],
    },
    ...extra,
  ];
  const file = path.join(dir, "flow.json");
  fs.writeFileSync(file, JSON.stringify(flow));
  return file;
}

function functionNode(id: string, func: string, wires: string[][]): object {
  return { id, type: "function", z: "cli_tab", func, outputs: 1, wires };
}

describe("tributary run <flows.json>", function () {
  this.timeout(120_000);
  const dir = tempDir("tributary-cli-");
  const source = path.join(dir, "source.sqlite");
  const env = { TRIBUTARY_USER_DIR: path.join(dir, "user"), CLI_SOURCE_DB: source };

  before(() => {
    for (const file of [source, path.join(dir, "target.sqlite")]) {
      const db = new Database(file);
      db.exec("create table orders (id integer primary key, total text, updated_at text not null)");
      db.close();
    }
    const db = new Database(source);
    const insert = db.prepare("insert into orders values (?, ?, ?)");
    for (let id = 1; id <= 200; id += 1)
      insert.run(id, `${id}.50`, `2026-02-01T10:00:00.${String(id).padStart(6, "0")}Z`);
    db.close();
  });

  it("runs every source once, prints one line per run and exits 0", async () => {
    const result = await runCli(["run", sqliteFlow(dir)], env);
    assert.equal(result.code, 0, result.out);
    assert.match(result.out, /^orders orders succeeded read=200 written=200 failed=0 \d+\.\d+s$/m);
  });

  it("reads only the changed rows on the next run", async () => {
    const db = new Database(source);
    db.prepare(
      "update orders set total = '0.00', updated_at = '2026-03-01T00:00:00Z' where id in (7, 8, 9)",
    ).run();
    db.close();
    const result = await runCli(["run", sqliteFlow(dir)], env);
    assert.equal(result.code, 0, result.out);
    assert.match(result.out, /orders orders succeeded read=3 written=3 failed=0/);
  });

  it("--mode full reads everything", async () => {
    const result = await runCli(["run", sqliteFlow(dir), "--mode", "full"], env);
    assert.match(result.out, /orders orders succeeded read=200 /);
  });

  it("loads the core nodes a flow uses: a function node on the summary output runs", async () => {
    const file = sqliteFlow(
      dir,
      [
        functionNode(
          "cli_fn",
          'node.warn("summary read " + msg.payload.counts.read); return msg;',
          [["cli_debug"]],
        ),
        { id: "cli_debug", type: "debug", z: "cli_tab", active: true, wires: [] },
        { id: "cli_inject", type: "inject", z: "cli_tab", wires: [["cli_src"]] },
      ],
      "cli_fn",
    );
    const result = await runCli(["run", file, "--mode", "full"], env);
    assert.equal(result.code, 0, result.out);
    assert.match(result.out, /summary read 200/);
    assert.match(result.out, /orders orders succeeded read=200 /);
  });

  it("does not wait forever for a node that never calls done, and says so", async () => {
    const file = sqliteFlow(
      dir,
      [
        // Mentions node.done, so Node-RED leaves completion to the code, which never calls it.
        functionNode("cli_stuck", "if (msg.never) node.done(); return null;", [[]]),
      ],
      "cli_stuck",
    );
    const started = Date.now();
    const result = await runCli(["run", file], env);
    assert.equal(result.code, 0, result.out);
    assert.match(result.out, /stopping with 1 message\(s\) still being handled after 10 s/);
    assert.ok(Date.now() - started < 30_000, "it stops after the 10 s wait");
  });

  it("exits non-zero, naming the connection problem, when a database refuses", async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const file = path.join(dir, "bad.json");
    fs.writeFileSync(
      file,
      JSON.stringify([
        { id: "bad_tab", type: "tab", label: "bad" },
        {
          id: "bad_pg",
          type: "tributary-db-connection",
          z: "bad_tab",
          client: "pg",
          host: "127.0.0.1",
          port: String(port),
          database: "x",
        },
        {
          id: "bad_lite",
          type: "tributary-db-connection",
          z: "bad_tab",
          client: "sqlite",
          filename: path.join(dir, "target.sqlite"),
        },
        {
          id: "bad_src",
          type: "tributary-db-source",
          z: "bad_tab",
          name: "remote",
          connection: "bad_pg",
          table: "t",
          keyColumns: ["id"],
          mode: "full",
          wires: [["bad_up"], []],
        },
        {
          id: "bad_up",
          type: "tributary-upsert",
          z: "bad_tab",
          connection: "bad_lite",
          table: "orders",
          keyColumns: ["id"],
          wires: [[], []],
        },
      ]),
    );
    const result = await runCli(["run", file], env);
    assert.equal(result.code, 1, result.out);
    assert.match(
      result.out,
      new RegExp(`remote t failed read=0 .*refused the connection.*127\\.0\\.0\\.1:${port}`),
    );
  });

  it("exits non-zero when the file has no source, or is not a flow", async () => {
    const empty = path.join(dir, "empty.json");
    fs.writeFileSync(empty, JSON.stringify([{ id: "x", type: "tab" }]));
    const none = await runCli(["run", empty], env);
    assert.equal(none.code, 1);
    assert.match(none.out, /no tributary source/);
    const junk = path.join(dir, "junk.json");
    fs.writeFileSync(junk, "{ not json");
    const bad = await runCli(["run", junk], env);
    assert.equal(bad.code, 1);
    assert.match(bad.out, /cannot read the flow file/);
  });
});

describe("tributary run: the credential secret", () => {
  it("is the environment's, else the hosted runtime's in the user directory, else a per-run key", () => {
    const userDir = tempDir("tributary-secret-");
    const first = headlessSecret(userDir, {});
    assert.match(first, /^[0-9a-f]{64}$/);
    assert.notEqual(headlessSecret(userDir, {}), first, "with nothing stored, a new key per run");
    // What `tributary start` generates, so tokens it sealed open in a headless run.
    fs.writeFileSync(path.join(userDir, ".credential-secret"), "runtime-secret-1234\n");
    assert.equal(headlessSecret(userDir, {}), "runtime-secret-1234");
    assert.equal(headlessSecret(userDir, { TRIBUTARY_CREDENTIAL_SECRET: "from-env" }), "from-env");
  });
});
