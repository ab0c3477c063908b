/**
 * tributary-db-source in a loaded flow, as an analyst uses it: settings checked at
 * deploy, an input message starts a sync into tributary-upsert (SQLite → SQLite),
 * the run summary leaves on output 2, a second trigger during a run is skipped, and
 * bad input (refused connection, wrong password, unknown table or column) is named
 * on the node's status and in the log while the rest of the flow keeps syncing.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { allNodes, helper, useTempUserDir, type HelperNode } from "../support/red";
import { MYSQL_URL, configFromUrl, mysqlKnex, requireServer } from "../support/databases";
import { closeStateStores } from "../../nodes/lib/state-store";
import { runRegistry } from "../../nodes/lib/run-registry";
import type { BatchMessage, RunSummary, SyncRecord } from "../../nodes/lib/types";

// ---- helpers for node-red-node-test-helper's spies (shared by every node of a flow) ----

interface Status {
  fill?: string;
  shape?: string;
  text?: string;
}
interface SpyCall {
  thisValue: unknown;
  args: unknown[];
}
type Msg = Record<string, unknown>;

/** Calls of a Node method made by this node (the helper spies on the prototype). */
function callsOf(node: HelperNode, method: "status" | "error" | "warn"): unknown[][] {
  const spy = node[method] as unknown as { getCalls(): SpyCall[] };
  return spy
    .getCalls()
    .filter((c) => c.thisValue === node)
    .map((c) => c.args);
}

function statuses(node: HelperNode): Status[] {
  return callsOf(node, "status").map((args) => (args[0] ?? {}) as Status);
}

function lastStatus(node: HelperNode): Status {
  return statuses(node).at(-1) ?? {};
}

function logged(node: HelperNode, method: "error" | "warn"): string[] {
  return callsOf(node, method).map(([m]) => (m instanceof Error ? m.message : String(m)));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(what: string, predicate: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function waitForStatus(node: HelperNode, pattern: RegExp, ms = 10_000): Promise<Status> {
  await waitFor(
    `status ${pattern} on ${node.id}; saw ${JSON.stringify(statuses(node))}`,
    () => pattern.test(lastStatus(node).text ?? ""),
    ms,
  );
  return lastStatus(node);
}

function collect(node: HelperNode): Msg[] {
  const list: Msg[] = [];
  node.on("input", (msg: Msg) => list.push(msg));
  return list;
}

/** Sends an input message to a source and resolves with the summary from output 2. */
async function trigger(source: HelperNode, summaries: Msg[], msg: Msg = {}): Promise<RunSummary> {
  const before = summaries.length;
  source.receive(msg);
  await waitFor(`a run summary from ${source.id}`, () => summaries.length > before);
  return summaries[before].payload as RunSummary;
}

// ---- SQLite fixtures ----

const TABLE = "srcnode_customers";

function customer(
  id: number,
  updatedAt = `2026-03-01T10:00:${String(id % 60).padStart(2, "0")}.000001Z`,
): SyncRecord {
  return {
    id,
    name: `Customer ${id}`,
    city: ["Berlin", "Lisbon", "Osaka"][id % 3],
    updated_at: updatedAt,
  };
}

function createTable(file: string, table: string, rows: SyncRecord[]): void {
  const db = new Database(file);
  try {
    db.exec(`drop table if exists ${table}`);
    db.exec(
      `create table ${table} (id integer primary key, name text, city text, updated_at text)`,
    );
    const insert = db.prepare(
      `insert into ${table} (id, name, city, updated_at) values (@id, @name, @city, @updated_at)`,
    );
    for (const row of rows) insert.run(row);
  } finally {
    db.close();
  }
}

function rowsOf(file: string, table: string): SyncRecord[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(`select * from ${table} order by id`).all() as SyncRecord[];
  } finally {
    db.close();
  }
}

function execSql(file: string, sql: string): void {
  const db = new Database(file);
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

describe("tributary-db-source node", function () {
  this.timeout(30_000);
  let dir: string;
  let srcFile: string;
  let dstFile: string;

  before(() => {
    useTempUserDir();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-srcnode-"));
    srcFile = path.join(dir, "source.sqlite");
    dstFile = path.join(dir, "target.sqlite");
  });

  after(async () => {
    await closeStateStores();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe("settings checked at deploy", () => {
    afterEach(async () => {
      await helper.unload();
    });

    const conn = {
      id: "srcnode-conn-a",
      type: "tributary-db-connection",
      client: "sqlite",
      filename: "",
    };
    const base = {
      type: "tributary-db-source",
      connection: "srcnode-conn-a",
      table: TABLE,
      keyColumns: ["id"],
      cursorColumn: "updated_at",
      mode: "incremental",
      wires: [[], []],
    };
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ["no table", { table: "" }, /^table is empty/],
      ["no key columns", { keyColumns: [] }, /^key columns is empty/],
      ["key columns as blank text", { keyColumns: " , " }, /^key columns is empty/],
      ["incremental without a cursor column", { cursorColumn: "" }, /^cursor column is empty/],
      ["an unknown mode", { mode: "sometimes" }, /^mode "sometimes" is not valid/],
      ["a batch size that is not a number", { batchSize: "lots" }, /^batch size "lots"/],
      ["zero batches in flight", { maxInFlight: 0 }, /^batches in flight "0"/],
      ["no connection", { connection: "" }, /^connection is not set/],
    ];

    before(() => {
      conn.filename = srcFile;
      createTable(srcFile, TABLE, [customer(1)]);
    });

    it("shows a red ring naming the field, and logs it, for each wrong setting", async () => {
      const nodes = cases.map(([, overrides], i) => ({
        ...base,
        id: `srcnode-bad-${i}`,
        ...overrides,
      }));
      await helper.load(allNodes, [conn, ...nodes]);
      for (const [i, [what, , pattern]] of cases.entries()) {
        const node = helper.getNode(`srcnode-bad-${i}`);
        const status = lastStatus(node);
        assert.equal(status.fill, "red", `${what}: status ${JSON.stringify(status)}`);
        assert.equal(status.shape, "ring", what);
        assert.match(status.text ?? "", pattern, what);
        assert.ok(
          logged(node, "error").some((m) => pattern.test(m)),
          `${what}: the log has ${JSON.stringify(logged(node, "error"))}`,
        );
      }
    });

    it("full mode needs no cursor column", async () => {
      await helper.load(allNodes, [
        conn,
        { ...base, id: "srcnode-full", mode: "full", cursorColumn: "" },
      ]);
      const node = helper.getNode("srcnode-full");
      assert.notEqual(lastStatus(node).fill, "red", JSON.stringify(statuses(node)));
      assert.deepEqual(logged(node, "error"), []);
    });

    it("a wrong setting fails a trigger with a summary naming the field", async () => {
      await helper.load(allNodes, [
        conn,
        { ...base, id: "srcnode-nokeys", keyColumns: [], wires: [[], ["srcnode-nokeys-summary"]] },
        { id: "srcnode-nokeys-summary", type: "helper" },
      ]);
      const summaries = collect(helper.getNode("srcnode-nokeys-summary"));
      const summary = await trigger(helper.getNode("srcnode-nokeys"), summaries);
      assert.equal(summary.status, "failed");
      assert.match(summary.error ?? "", /key columns is empty/);
    });
  });

  describe("sync through an input message (SQLite → SQLite)", () => {
    afterEach(async () => {
      await helper.unload();
    });

    let source: HelperNode;
    let sink: HelperNode;
    let summaries: Msg[];
    let written: Msg[];
    let failed: Msg[];

    before(async () => {
      createTable(
        srcFile,
        TABLE,
        Array.from({ length: 25 }, (_, i) => customer(i + 1)),
      );
      createTable(dstFile, TABLE, []);
    });

    beforeEach(async () => {
      await helper.load(allNodes, [
        {
          id: "srcnode-conn-src",
          type: "tributary-db-connection",
          client: "sqlite",
          filename: srcFile,
        },
        {
          id: "srcnode-conn-dst",
          type: "tributary-db-connection",
          client: "sqlite",
          filename: dstFile,
        },
        {
          id: "srcnode-source",
          type: "tributary-db-source",
          name: "customers",
          connection: "srcnode-conn-src",
          table: TABLE,
          keyColumns: ["id"],
          cursorColumn: "updated_at",
          mode: "incremental",
          batchSize: 10,
          wires: [["srcnode-sink"], ["srcnode-summary"]],
        },
        {
          id: "srcnode-sink",
          type: "tributary-upsert",
          connection: "srcnode-conn-dst",
          table: TABLE,
          keyColumns: ["id"],
          mode: "upsert",
          wires: [["srcnode-written"], ["srcnode-failed"]],
        },
        { id: "srcnode-summary", type: "helper" },
        { id: "srcnode-written", type: "helper" },
        { id: "srcnode-failed", type: "helper" },
      ]);
      source = helper.getNode("srcnode-source");
      sink = helper.getNode("srcnode-sink");
      summaries = collect(helper.getNode("srcnode-summary"));
      written = collect(helper.getNode("srcnode-written"));
      failed = collect(helper.getNode("srcnode-failed"));
    });

    it("copies every row and sends the run summary on output 2", async () => {
      const summary = await trigger(source, summaries, { payload: "go" });
      assert.equal(summary.status, "succeeded", summary.error);
      assert.equal(summary.sourceId, "srcnode-source");
      assert.equal(summary.entity, TABLE);
      assert.equal(summary.mode, "incremental");
      assert.equal(summary.counts.read, 25);
      assert.equal(summary.counts.batches, 3);
      assert.equal(summary.counts.insert, 25);
      assert.equal(summary.counts.failed, 0);
      assert.equal(summaries[0].topic, "tributary/run");
      assert.deepEqual(rowsOf(dstFile, TABLE), rowsOf(srcFile, TABLE));
      assert.equal(failed.length, 0);

      // Output 1 of the upsert: each batch with its outcomes.
      assert.deepEqual(
        written.map((m) => (m as unknown as BatchMessage).sync.batch),
        [1, 2, 3],
      );
      const outcomes = written.flatMap((m) => (m as unknown as BatchMessage).sync.outcomes ?? []);
      assert.equal(outcomes.length, 25);
      assert.ok(outcomes.every((o) => o.action === "insert"));

      assert.match(
        (await waitForStatus(sink, /^25 inserted/)).text ?? "",
        /^25 inserted, 0 updated/,
      );
      const done = lastStatus(source);
      assert.equal(done.fill, "green");
      assert.match(done.text ?? "", /^25 read, 25 written/);
    });

    it("moves only changed and new rows on the next input", async () => {
      execSql(
        srcFile,
        `update ${TABLE} set city = 'Austin', updated_at = '2026-03-02T09:00:00.000001Z' where id in (3, 7, 11);
         insert into ${TABLE} values (26, 'Customer 26', 'Paris', '2026-03-02T09:00:01.5Z'),
                                     (27, 'Customer 27', 'Paris', '2026-03-02T09:00:02.25Z');`,
      );
      const summary = await trigger(source, summaries);
      assert.equal(summary.status, "succeeded", summary.error);
      assert.equal(summary.counts.read, 5);
      assert.equal(summary.counts.update, 3);
      assert.equal(summary.counts.insert, 2);
      assert.deepEqual(rowsOf(dstFile, TABLE), rowsOf(srcFile, TABLE));
      await waitForStatus(sink, /^2 inserted, 3 updated/);

      const again = await trigger(source, summaries);
      assert.equal(again.counts.read, 0, "a run with nothing new read rows");
    });

    it("msg.mode 'full' re-reads every row; unchanged rows are reported as such", async () => {
      const summary = await trigger(source, summaries, { mode: "full" });
      assert.equal(summary.status, "succeeded", summary.error);
      assert.equal(summary.mode, "full");
      assert.equal(summary.counts.read, 27);
      assert.equal(summary.counts.unchanged, 27);
      assert.equal(summary.counts.insert + summary.counts.update, 0);
    });
  });

  describe("one run at a time", () => {
    afterEach(async () => {
      await helper.unload();
    });

    let source: HelperNode;
    let summaries: Msg[];
    let held: BatchMessage[];
    let release: boolean;

    function settle(msg: BatchMessage): void {
      const outcomes = msg.payload.map((r) => ({ key: [r.id], action: "insert" as const }));
      runRegistry.settle(msg.sync.runId, msg.sync.batch, outcomes);
    }

    beforeEach(async () => {
      createTable(
        srcFile,
        TABLE,
        Array.from({ length: 5 }, (_, i) => customer(i + 1)),
      );
      held = [];
      release = false;
      await helper.load(allNodes, [
        {
          id: "srcnode-conn-slow",
          type: "tributary-db-connection",
          client: "sqlite",
          filename: srcFile,
        },
        {
          id: "srcnode-slow",
          type: "tributary-db-source",
          connection: "srcnode-conn-slow",
          table: TABLE,
          keyColumns: ["id"],
          mode: "full",
          batchSize: 1,
          maxInFlight: 1,
          settleTimeout: 1,
          wires: [["srcnode-hold"], ["srcnode-slow-summary"]],
        },
        // Stands in for a slow sink: keeps batches until the test lets them settle.
        { id: "srcnode-hold", type: "helper" },
        { id: "srcnode-slow-summary", type: "helper" },
      ]);
      source = helper.getNode("srcnode-slow");
      summaries = collect(helper.getNode("srcnode-slow-summary"));
      helper.getNode("srcnode-hold").on("input", (msg: BatchMessage) => {
        held.push(msg);
        if (release) settle(msg);
      });
    });

    it("a trigger while a run is under way gives a 'skipped' summary and a warning", async () => {
      const skippedBefore = runRegistry.skipped;
      source.receive({});
      await waitFor("the first batch at the sink", () => held.length === 1);

      const skipped = await trigger(source, summaries);
      assert.equal(skipped.status, "skipped");
      assert.match(skipped.error ?? "", /already under way/);
      assert.equal(skipped.counts.read, 0);
      assert.equal(runRegistry.skipped, skippedBefore + 1);
      assert.ok(
        logged(source, "warn").some((m) => /already under way/.test(m)),
        `warnings: ${JSON.stringify(logged(source, "warn"))}`,
      );
      assert.equal(lastStatus(source).fill, "yellow");
      assert.match(lastStatus(source).text ?? "", /skipped/);
      assert.equal(held.length, 1, "the skipped trigger emitted a batch");

      release = true;
      for (const msg of held) settle(msg);
      await waitFor("the first run's summary", () => summaries.length === 2);
      const first = summaries[1].payload as RunSummary;
      assert.equal(first.status, "succeeded", first.error);
      assert.equal(first.counts.read, 5);
      assert.equal(first.counts.batches, 5);
      assert.equal(held.length, 5);
      assert.match(lastStatus(source).text ?? "", /^5 read/);
    });

    it("a batch that never reaches a sink fails the run after the settle timeout, naming tributary-upsert", async () => {
      const started = Date.now();
      const summary = await trigger(source, summaries);
      assert.equal(summary.status, "failed");
      assert.match(summary.error ?? "", /batch 1 was not settled within 1 s/);
      assert.match(summary.error ?? "", /tributary-upsert/);
      assert.ok(Date.now() - started < 5000, "the run hung past its settle timeout");
      assert.equal(held.length, 1, "more batches left than maxInFlight allows");
      const status = lastStatus(source);
      assert.equal(status.fill, "red");
      assert.match(status.text ?? "", /not settled/);
      assert.ok(logged(source, "error").some((m) => /tributary-upsert/.test(m)));
    });
  });

  describe("bad input, with a healthy pair in the same flow", () => {
    const env = { pass: "" };
    let summaries: Record<string, Msg[]>;

    const sourceNode = (
      id: string,
      connection: string,
      table: string,
      extra: Record<string, unknown> = {},
    ) => ({
      id,
      type: "tributary-db-source",
      connection,
      table,
      keyColumns: ["id"],
      cursorColumn: "updated_at",
      mode: "incremental",
      batchSize: 100,
      wires: [["srcnode-bad-sink"], [`${id}-summary`]],
      ...extra,
    });

    before(async () => {
      createTable(
        srcFile,
        TABLE,
        Array.from({ length: 12 }, (_, i) => customer(i + 1)),
      );
      createTable(dstFile, TABLE, []);
      const my = configFromUrl(MYSQL_URL);
      env.pass = my.password === "wrong" ? "wrong-too" : "wrong";
      const ids = ["refused", "auth", "notable", "nokey", "nocursor", "healthy"].map(
        (s) => `srcnode-${s}`,
      );
      await helper.load(
        allNodes,
        [
          {
            id: "srcnode-conn-closed",
            type: "tributary-db-connection",
            client: "pg",
            host: "127.0.0.1",
            port: "1",
            database: "test",
          },
          {
            id: "srcnode-conn-badpw",
            type: "tributary-db-connection",
            client: "mysql",
            host: my.host,
            port: my.port,
            database: my.database,
          },
          {
            id: "srcnode-conn-lite",
            type: "tributary-db-connection",
            client: "sqlite",
            filename: srcFile,
          },
          {
            id: "srcnode-conn-out",
            type: "tributary-db-connection",
            client: "sqlite",
            filename: dstFile,
          },
          sourceNode("srcnode-refused", "srcnode-conn-closed", "customers"),
          sourceNode("srcnode-auth", "srcnode-conn-badpw", "customers"),
          sourceNode("srcnode-notable", "srcnode-conn-lite", "srcnode_no_such_table"),
          sourceNode("srcnode-nokey", "srcnode-conn-lite", TABLE, { keyColumns: ["customer_no"] }),
          sourceNode("srcnode-nocursor", "srcnode-conn-lite", TABLE, {
            cursorColumn: "modified_at",
          }),
          sourceNode("srcnode-healthy", "srcnode-conn-lite", TABLE),
          {
            id: "srcnode-bad-sink",
            type: "tributary-upsert",
            connection: "srcnode-conn-out",
            table: TABLE,
            keyColumns: ["id"],
            wires: [[], []],
          },
          ...ids.map((id) => ({ id: `${id}-summary`, type: "helper" })),
        ],
        { "srcnode-conn-badpw": { user: my.user || "root", password: env.pass } },
      );
      summaries = Object.fromEntries(
        ids.map((id) => [id, collect(helper.getNode(`${id}-summary`))]),
      );
    });

    // One flow, loaded once, in which every failure happens before the healthy run.
    after(async () => {
      await helper.unload();
    });

    async function expectFailure(id: string, patterns: RegExp[]): Promise<RunSummary> {
      const node = helper.getNode(id);
      const summary = await trigger(node, summaries[id]);
      assert.equal(summary.status, "failed", `${id} did not fail: ${JSON.stringify(summary)}`);
      const status = lastStatus(node);
      assert.equal(status.fill, "red", `${id} status ${JSON.stringify(status)}`);
      for (const pattern of patterns) {
        assert.match(summary.error ?? "", pattern);
        assert.ok(
          logged(node, "error").some((m) => pattern.test(m)),
          `${id}: no log line matches ${pattern}: ${JSON.stringify(logged(node, "error"))}`,
        );
      }
      // The status line is short; it should still start with what went wrong.
      assert.match(status.text ?? "", /^failed: /);
      return summary;
    }

    it("a refused connection: status red, the log names 'refused' and host:port", async () => {
      const summary = await expectFailure("srcnode-refused", [
        /refused/,
        /127\.0\.0\.1:1\b/,
        /check host and port/,
      ]);
      assert.equal(summary.counts.read, 0);
    });

    it("a wrong password on MariaDB: the log says authentication failed, without the password", async function () {
      const admin = mysqlKnex();
      try {
        await requireServer(this, "MySQL/MariaDB", admin);
      } finally {
        await admin.destroy();
      }
      const summary = await expectFailure("srcnode-auth", [
        /authentication failed/,
        /check user and password/,
      ]);
      assert.doesNotMatch(summary.error ?? "", new RegExp(`password: ${env.pass}|'${env.pass}'`));
    });

    it("an unknown table: the error names the table", async () => {
      await expectFailure("srcnode-notable", [/table "srcnode_no_such_table" was not found/]);
    });

    it("an unknown key column: the error names it and lists the table's columns", async () => {
      await expectFailure("srcnode-nokey", [
        /key column "customer_no" is not a column of table "srcnode_customers"/,
        /choose from id, name, city, updated_at/,
      ]);
    });

    it("an unknown cursor column: the error names it", async () => {
      await expectFailure("srcnode-nocursor", [/cursor column "modified_at" is not a column/]);
    });

    it("after all that, the healthy source in the same flow still syncs, twice", async () => {
      const node = helper.getNode("srcnode-healthy");
      const first = await trigger(node, summaries["srcnode-healthy"]);
      assert.equal(first.status, "succeeded", first.error);
      assert.equal(first.counts.insert, 12);
      assert.deepEqual(rowsOf(dstFile, TABLE), rowsOf(srcFile, TABLE));

      execSql(
        srcFile,
        `update ${TABLE} set name = 'Renamed' , updated_at = '2026-04-01T00:00:00Z' where id = 4`,
      );
      const second = await trigger(node, summaries["srcnode-healthy"]);
      assert.equal(second.status, "succeeded", second.error);
      assert.equal(second.counts.read, 1);
      assert.equal(second.counts.update, 1);
      assert.equal(rowsOf(dstFile, TABLE).find((r) => r.id === 4)?.name, "Renamed");
      assert.equal(lastStatus(node).fill, "green");

      // And the failing sources report the same way again: nothing is stuck.
      const again = await trigger(helper.getNode("srcnode-refused"), summaries["srcnode-refused"]);
      assert.equal(again.status, "failed");
      assert.match(again.error ?? "", /refused/);
    });
  });
});
