/**
 * tributary-upsert in a loaded flow (SQLite targets): settings and the target table
 * checked at deploy, the status counts, msg.sync.outcomes on output 1, records that
 * cannot be written on output 2 with the reason, and what a failing write does to
 * the source's run.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { allNodes, helper, useTempUserDir, type HelperNode } from "../support/red";
import { closeStateStores } from "../../nodes/lib/state-store";
import { sources } from "../../nodes/lib/sources";
import type {
  BatchMessage,
  Outcome,
  RunSummary,
  SyncMeta,
  SyncRecord,
} from "../../nodes/lib/types";

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

async function trigger(source: HelperNode, summaries: Msg[], msg: Msg = {}): Promise<RunSummary> {
  const before = summaries.length;
  source.receive(msg);
  await waitFor(`a run summary from ${source.id}`, () => summaries.length > before);
  return summaries[before].payload as RunSummary;
}

// ---- SQLite fixtures ----

const TABLE = "upsnode_accounts";

function account(
  id: number,
  updatedAt = `2026-06-01T00:00:${String(id).padStart(2, "0")}Z`,
): SyncRecord {
  return { id, code: `A-${id}`, name: `Account ${id}`, updated_at: updatedAt };
}

function sql(file: string, statements: string): void {
  const db = new Database(file);
  try {
    db.exec(statements);
  } finally {
    db.close();
  }
}

function createTable(file: string, rows: SyncRecord[], keyed = true): void {
  sql(
    file,
    `drop table if exists ${TABLE};
     create table ${TABLE} (id integer ${keyed ? "primary key" : ""}, code text, name text, updated_at text)`,
  );
  const db = new Database(file);
  try {
    const insert = db.prepare(`insert into ${TABLE} values (@id, @code, @name, @updated_at)`);
    for (const row of rows) insert.run(row);
  } finally {
    db.close();
  }
}

function rowsOf(file: string): SyncRecord[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(`select * from ${TABLE} order by id`).all() as SyncRecord[];
  } finally {
    db.close();
  }
}

/** A hand-made batch, as a source would send it. */
function batch(records: SyncRecord[], sync: Partial<SyncMeta> = {}): Msg {
  return {
    payload: records,
    sync: {
      runId: "",
      sourceId: "upsnode-hand",
      entity: TABLE,
      mode: "full",
      batch: 1,
      key: ["id"],
      ...sync,
    },
  };
}

describe("tributary-upsert node", function () {
  this.timeout(30_000);
  let dir: string;
  let srcFile: string;
  let dstFile: string;
  let written: Msg[];
  let failed: Msg[];

  function sinkFlow(extra: Record<string, unknown> = {}): unknown[] {
    return [
      {
        id: "upsnode-conn-dst",
        type: "tributary-db-connection",
        client: "sqlite",
        filename: dstFile,
      },
      {
        id: "upsnode-sink",
        type: "tributary-upsert",
        connection: "upsnode-conn-dst",
        table: TABLE,
        keyColumns: ["id"],
        mode: "upsert",
        wires: [["upsnode-written"], ["upsnode-failed"]],
        ...extra,
      },
      { id: "upsnode-written", type: "helper" },
      { id: "upsnode-failed", type: "helper" },
    ];
  }

  async function load(flow: unknown[]): Promise<void> {
    await helper.load(allNodes, flow);
    written = helper.getNode("upsnode-written") ? collect(helper.getNode("upsnode-written")) : [];
    failed = helper.getNode("upsnode-failed") ? collect(helper.getNode("upsnode-failed")) : [];
  }

  /** Sends a message to the sink and waits for it to leave on output 1 or 2, or fail. */
  async function send(sink: HelperNode, msg: Msg): Promise<void> {
    const before = written.length + failed.length + logged(sink, "error").length;
    sink.receive(msg);
    await waitFor(
      "the upsert to answer",
      () => written.length + failed.length + logged(sink, "error").length > before,
    );
    await sleep(20); // output 2 follows output 1 in the same send
  }

  before(() => {
    useTempUserDir();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-upsnode-"));
    srcFile = path.join(dir, "source.sqlite");
    dstFile = path.join(dir, "target.sqlite");
  });

  afterEach(async () => {
    await helper.unload();
  });

  after(async () => {
    await closeStateStores();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe("settings and the target table, checked at deploy", () => {
    beforeEach(() => createTable(dstFile, []));

    // [what, settings, the log line, the start of the (shortened) status text]
    const cases: Array<[string, Record<string, unknown>, RegExp, RegExp]> = [
      ["no table", { table: "" }, /^table is empty/, /^table is empty/],
      ["no key columns", { keyColumns: [] }, /^key columns is empty/, /^key columns is empty/],
      [
        "an unknown mode",
        { mode: "merge" },
        /^mode "merge" is not valid: choose insert, update, upsert/,
        /^mode "merge" is not valid/,
      ],
      ["no connection", { connection: "" }, /^connection is not set/, /^connection is not set/],
      [
        "a table that does not exist",
        { table: "upsnode_missing" },
        /table "upsnode_missing" was not found/,
        /^table "upsnode_missing" was not found/,
      ],
      [
        "an unknown key column",
        { keyColumns: ["account_no"] },
        /key column "account_no" is not a column of table "upsnode_accounts".*choose from id, code, name, updated_at/,
        /^key column "account_no" is not a column/,
      ],
    ];
    for (const [what, overrides, pattern, short] of cases) {
      it(`${what}: red ring status and a log line naming it`, async () => {
        await load(sinkFlow(overrides));
        const sink = helper.getNode("upsnode-sink");
        await waitFor(
          `a red status on the upsert (${what})`,
          () => lastStatus(sink).fill === "red",
        );
        const status = lastStatus(sink);
        assert.equal(status.shape, "ring");
        assert.match(status.text ?? "", short);
        assert.ok(
          logged(sink, "error").some((m) => pattern.test(m)),
          `log: ${JSON.stringify(logged(sink, "error"))}`,
        );
      });
    }

    it("a correct upsert shows no error at deploy", async () => {
      await load(sinkFlow());
      await sleep(100); // the table check is asynchronous
      const sink = helper.getNode("upsnode-sink");
      assert.deepEqual(logged(sink, "error"), []);
      assert.notEqual(lastStatus(sink).fill, "red");
    });
  });

  describe("writing batches", () => {
    let sink: HelperNode;

    beforeEach(async () => {
      createTable(dstFile, [account(1)]);
      await load(sinkFlow());
      sink = helper.getNode("upsnode-sink");
    });

    it("sends the batch on output 1 with msg.sync.outcomes, and counts on its status", async () => {
      await send(
        sink,
        batch([account(1), account(2), account(3), { ...account(4), name: "Fourth" }]),
      );
      assert.equal(written.length, 1);
      assert.equal(failed.length, 0);
      const out = written[0] as unknown as BatchMessage;
      assert.equal(out.payload.length, 4);
      assert.deepEqual(out.sync.outcomes, [
        { key: [1], action: "unchanged" },
        { key: [2], action: "insert" },
        { key: [3], action: "insert" },
        { key: [4], action: "insert" },
      ] satisfies Outcome[]);
      await waitForStatus(sink, /^3 inserted, 0 updated, 1 unchanged$/);
      assert.equal(lastStatus(sink).fill, "green");
      assert.equal(rowsOf(dstFile).length, 4);

      await send(sink, batch([{ ...account(2), name: "Renamed" }], { batch: 2 }));
      assert.deepEqual((written[1] as unknown as BatchMessage).sync.outcomes, [
        { key: [2], action: "update" },
      ]);
      await waitForStatus(sink, /^3 inserted, 1 updated, 1 unchanged$/);
      assert.equal(rowsOf(dstFile).find((r) => r.id === 2)?.name, "Renamed");
    });

    it("a record without the key leaves on output 2 with an error naming the key column", async () => {
      const keyless = { code: "A-x", name: "No id", updated_at: "2026-06-02T00:00:00Z" };
      await send(sink, batch([account(5), keyless, account(6)]));

      assert.equal(failed.length, 1, "nothing on output 2");
      const bad = failed[0] as {
        payload: SyncRecord[];
        error: string;
        failures: Array<{ error: string }>;
      };
      assert.deepEqual(bad.payload, [keyless]);
      assert.match(bad.error, /1 record\(s\) were not written/);
      assert.match(bad.failures[0].error, /record has no value for key column "id"/);

      const outcomes = (written[0] as unknown as BatchMessage).sync.outcomes ?? [];
      assert.deepEqual(outcomes.map((o) => o.action).sort(), ["failed", "insert", "insert"]);
      assert.match(outcomes.find((o) => o.action === "failed")?.error ?? "", /key column "id"/);
      assert.deepEqual(
        rowsOf(dstFile).map((r) => r.id),
        [1, 5, 6],
        "the good records of the batch were not written",
      );
      const status = await waitForStatus(sink, /1 failed/);
      assert.equal(status.fill, "yellow");
    });

    it("warns once about fields that have no column, and writes the rest", async () => {
      await send(sink, batch([{ ...account(7), loyalty_tier: "gold" }]));
      await send(sink, batch([{ ...account(8), loyalty_tier: "silver" }], { batch: 2 }));
      const warnings = logged(sink, "warn").filter((m) => /loyalty_tier/.test(m));
      assert.equal(warnings.length, 1, JSON.stringify(logged(sink, "warn")));
      assert.match(warnings[0], /not written: loyalty_tier/);
      assert.deepEqual(
        rowsOf(dstFile).map((r) => r.id),
        [1, 7, 8],
      );
    });

    it("a payload that is not an array is an error on the node, not a crash", async () => {
      await send(sink, { payload: "hello" });
      assert.ok(
        logged(sink, "error").some((m) => /msg\.payload must be an array of records/.test(m)),
        JSON.stringify(logged(sink, "error")),
      );
      assert.equal(lastStatus(sink).fill, "red");
      assert.equal(written.length, 0);

      // The next good batch is written.
      await send(sink, batch([account(9)]));
      assert.equal(written.length, 1);
    });
  });

  describe("insert and update modes", () => {
    beforeEach(() => createTable(dstFile, [account(1)]));

    it("insert mode: an existing key is a failed record on output 2 with the database's reason", async () => {
      await load(sinkFlow({ mode: "insert" }));
      const sink = helper.getNode("upsnode-sink");
      await send(sink, batch([account(1), account(2)]));
      assert.equal(failed.length, 1);
      const bad = failed[0] as { payload: SyncRecord[]; failures: Array<{ error: string }> };
      assert.deepEqual(
        bad.payload.map((r) => r.id),
        [1],
      );
      assert.match(bad.failures[0].error, /UNIQUE|constraint/i);
      assert.deepEqual(
        rowsOf(dstFile).map((r) => r.id),
        [1, 2],
      );
    });

    it("update mode: a missing key is skipped, an existing one updated", async () => {
      await load(sinkFlow({ mode: "update" }));
      const sink = helper.getNode("upsnode-sink");
      await send(sink, batch([{ ...account(1), name: "Updated" }, account(2)]));
      assert.deepEqual((written[0] as unknown as BatchMessage).sync.outcomes, [
        { key: [1], action: "update" },
        { key: [2], action: "skipped" },
      ]);
      assert.deepEqual(rowsOf(dstFile), [{ ...account(1), name: "Updated" }]);
    });
  });

  describe("behind a db-source", () => {
    // Each test has its own source id, so no watermark carries over between tests.
    let sourceId = "";
    let n = 0;
    beforeEach(() => {
      n += 1;
      sourceId = `upsnode-source-${n}`;
    });

    function flow(
      sourceExtra: Record<string, unknown> = {},
      sinkExtra: Record<string, unknown> = {},
    ): unknown[] {
      return [
        {
          id: "upsnode-conn-src",
          type: "tributary-db-connection",
          client: "sqlite",
          filename: srcFile,
        },
        {
          id: sourceId,
          type: "tributary-db-source",
          connection: "upsnode-conn-src",
          table: TABLE,
          keyColumns: ["id"],
          cursorColumn: "updated_at",
          mode: "incremental",
          batchSize: 4,
          wires: [["upsnode-sink"], ["upsnode-summary"]],
          ...sourceExtra,
        },
        { id: "upsnode-summary", type: "helper" },
        ...sinkFlow(sinkExtra),
      ];
    }

    it("settles every batch: the summary counts what the upsert wrote, its status shows the inserts", async () => {
      createTable(
        srcFile,
        Array.from({ length: 10 }, (_, i) => account(i + 1)),
      );
      createTable(dstFile, []);
      await load(flow());
      const summaries = collect(helper.getNode("upsnode-summary"));
      const summary = await trigger(helper.getNode(sourceId), summaries);
      assert.equal(summary.status, "succeeded", summary.error);
      assert.equal(summary.counts.batches, 3);
      assert.equal(summary.counts.insert, 10);
      assert.equal(written.length, 3);
      for (const msg of written as unknown as BatchMessage[]) {
        assert.equal(msg.sync.runId, summary.runId);
        assert.equal(msg.sync.outcomes?.length, msg.payload.length);
      }
      await waitForStatus(helper.getNode("upsnode-sink"), /^10 inserted, 0 updated$/);
      assert.deepEqual(rowsOf(dstFile), rowsOf(srcFile));
    });

    it("records without a key value fail the run, which points to output 2", async () => {
      // The source table has no primary key; two rows have no id.
      createTable(srcFile, [account(1), account(2)], false);
      sql(
        srcFile,
        `insert into ${TABLE} values (null, 'A-n1', 'No id 1', '2026-06-03T00:00:00Z'),
                                               (null, 'A-n2', 'No id 2', '2026-06-03T00:00:01Z')`,
      );
      createTable(dstFile, []);
      await load(flow());
      const summaries = collect(helper.getNode("upsnode-summary"));
      const summary = await trigger(helper.getNode(sourceId), summaries);
      assert.equal(summary.status, "failed");
      assert.equal(summary.counts.insert, 2);
      assert.equal(summary.counts.failed, 2);
      assert.match(
        summary.error ?? "",
        /2 record\(s\) failed .*see output 2 of the transform or sink/,
      );
      assert.equal(failed.length, 1);
      assert.equal((failed[0].payload as SyncRecord[]).length, 2);
    });

    it("a target table that is missing fails the run with an error naming it", async () => {
      createTable(srcFile, [account(1), account(2)]);
      await load(flow({}, { table: "upsnode_gone" }));
      const summaries = collect(helper.getNode("upsnode-summary"));
      const summary = await trigger(helper.getNode(sourceId), summaries);
      assert.equal(summary.status, "failed");
      assert.match(summary.error ?? "", /batch 1 failed: .*table "upsnode_gone" was not found/);
      const source = helper.getNode(sourceId);
      assert.equal(lastStatus(source).fill, "red");
      assert.equal(lastStatus(helper.getNode("upsnode-sink")).fill, "red");
    });

    it("a dry run reports what would be written and writes nothing", async () => {
      createTable(srcFile, [account(1), account(2), account(3)]);
      createTable(dstFile, [account(1)]);
      await load(flow());
      const handle = sources.get(sourceId);
      assert.ok(handle, "the source is not in the sources directory");
      const summary = await handle.trigger({ dryRun: true });
      assert.equal(summary.status, "succeeded", summary.error);
      assert.equal(summary.counts.insert, 2);
      assert.equal(summary.counts.update, 1);
      assert.deepEqual(rowsOf(dstFile), [account(1)]);
      assert.ok((written as unknown as BatchMessage[]).every((m) => m.sync.dryRun === true));
    });
  });
});
