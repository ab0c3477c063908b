/** source → transform → upsert → audit-log on SQLite, through Node-RED. */
import assert from "node:assert/strict";
import path from "node:path";
import Database from "better-sqlite3";
import { allNodes, helper, useTempUserDir } from "../support/red";
import { sources } from "../../nodes/lib/sources";
import { closeStateStores, stateStoreFor } from "../../nodes/lib/state-store";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const transformNode = require(
  path.resolve(__dirname, "../../nodes/transform/transform.js"),
) as unknown;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const auditNode = require(path.resolve(__dirname, "../../nodes/audit-log/audit-log.js")) as unknown;

const SCHEMA = JSON.stringify({
  type: "object",
  required: ["id", "email", "full_name"],
  properties: { email: { type: "string", pattern: "@" }, amount: { type: "number" } },
});

describe("pipeline: db-source → transform → upsert → audit-log", function () {
  this.timeout(30_000);
  let userDir: string;

  before(async () => {
    userDir = useTempUserDir();
    const src = new Database(path.join(userDir, "src.sqlite"));
    src.exec(
      "create table people (id integer primary key, first text, last text, mail text, amount text, updated_at text)",
    );
    const insert = src.prepare("insert into people values (?, ?, ?, ?, ?, ?)");
    for (let id = 1; id <= 20; id += 1) {
      insert.run(
        id,
        `F${id}`,
        `L${id}`,
        id % 10 === 0 ? "not-an-email" : `p${id}@example.com`,
        `${id}.25`,
        `2026-01-01T00:00:${String(id).padStart(2, "0")}Z`,
      );
    }
    src.exec("create table junk (id integer primary key, mail text, updated_at text)");
    src.prepare("insert into junk values (1, 'bad', '2026-01-01T00:00:00Z')").run();
    src.close();
    const dst = new Database(path.join(userDir, "dst.sqlite"));
    dst.exec(
      "create table people (id integer primary key, email text, full_name text, amount real, city text)",
    );
    dst.exec(
      "create table junk (id integer primary key, email text, full_name text, amount real, city text)",
    );
    dst.close();
    const mappings = [
      { target: "id", type: "integer" },
      { target: "email", source: "mail" },
      { target: "full_name", expression: "first & ' ' & last" },
      { target: "amount", type: "number" },
      { target: "city", default: "Lisbon" },
    ];
    await helper.load(
      [...allNodes, transformNode, auditNode],
      [
        { id: "pl_a", type: "tributary-db-connection", client: "sqlite", filename: "src.sqlite" },
        { id: "pl_b", type: "tributary-db-connection", client: "sqlite", filename: "dst.sqlite" },
        {
          id: "pl_src",
          type: "tributary-db-source",
          connection: "pl_a",
          table: "people",
          keyColumns: ["id"],
          cursorColumn: "updated_at",
          mode: "incremental",
          batchSize: 5,
          wires: [["pl_tx"], []],
        },
        {
          id: "pl_tx",
          type: "tributary-transform",
          mappings,
          dropUnmapped: true,
          schema: SCHEMA,
          wires: [["pl_up"], ["pl_invalid"]],
        },
        {
          id: "pl_up",
          type: "tributary-upsert",
          connection: "pl_b",
          table: "people",
          keyColumns: ["id"],
          wires: [["pl_audit"], []],
        },
        { id: "pl_audit", type: "tributary-audit-log", retentionDays: 30, wires: [[]] },
        { id: "pl_invalid", type: "helper" },
        {
          id: "junk_src",
          type: "tributary-db-source",
          connection: "pl_a",
          table: "junk",
          keyColumns: ["id"],
          cursorColumn: "updated_at",
          mode: "incremental",
          batchSize: 5,
          settleTimeout: 2,
          wires: [["junk_tx"], []],
        },
        {
          id: "junk_tx",
          type: "tributary-transform",
          mappings: [{ target: "id" }, { target: "email", source: "mail" }],
          dropUnmapped: true,
          schema: SCHEMA,
          wires: [["junk_up"], []],
        },
        {
          id: "junk_up",
          type: "tributary-upsert",
          connection: "pl_b",
          table: "junk",
          keyColumns: ["id"],
          wires: [[], []],
        },
        {
          id: "bad_tx",
          type: "tributary-transform",
          mappings: [{ target: "x", expression: "$$$(" }],
          wires: [[], []],
        },
      ],
    );
  });

  after(async () => {
    await helper.unload();
    await closeStateStores();
  });

  it("writes the valid records, sends the invalid ones to output 2, and counts them in the run", async () => {
    const invalid: Array<Record<string, unknown>> = [];
    helper.getNode("pl_invalid").on("input", (msg: never) => invalid.push(msg));
    const summary = await sources.get("pl_src")!.trigger();
    assert.equal(summary.counts.read, 20);
    assert.equal(summary.counts.insert, 18);
    assert.equal(summary.counts.failed, 2);
    assert.equal(summary.status, "failed");
    for (let i = 0; i < 100 && invalid.length < 2; i += 1)
      await new Promise((r) => setTimeout(r, 10));
    const errors = invalid.flatMap((m) => m.errors as Array<{ key: unknown[]; errors: string[] }>);
    assert.deepEqual(
      errors.map((e) => e.key),
      [["10"], ["20"]].map((k) => [Number(k[0])]),
    );
    assert.match(errors[0].errors[0], /\/email must match pattern/);
    const dst = new Database(path.join(userDir, "dst.sqlite"), { readonly: true });
    const row = dst.prepare("select * from people where id = 3").get();
    dst.close();
    assert.deepEqual(row, {
      id: 3,
      email: "p3@example.com",
      full_name: "F3 L3",
      amount: 3.25,
      city: "Lisbon",
    });

    const store = await stateStoreFor(userDir);
    const audit = await store.listAudit(summary.runId, { limit: 100 });
    const actions = audit.entries.map((e) => e.action).sort();
    assert.equal(actions.filter((a) => a === "insert").length, 18);
    assert.equal(actions.filter((a) => a === "failed").length, 2);
    assert.ok(audit.entries.every((e) => e.nodeId === "pl_audit" && e.runId === summary.runId));
  });

  it("settles a batch whose records are all invalid, so the run does not wait for its timeout", async () => {
    const started = Date.now();
    const summary = await sources.get("junk_src")!.trigger();
    assert.ok(Date.now() - started < 1500, "the run waited for the settle timeout");
    assert.equal(summary.counts.failed, 1);
    assert.match(summary.error ?? "", /1 record\(s\) failed/);
  });

  it("reports a bad expression at deploy, naming the mapping row", () => {
    const node = helper.getNode("bad_tx");
    assert.ok(
      node.status.args.some((a) =>
        /mapping 1 \(target x\): the expression does not parse/.test(
          String((a[0] as { text?: string })?.text),
        ),
      ),
    );
  });

  it("prunes audit entries older than the retention", async () => {
    const store = await stateStoreFor(userDir);
    await store.addAudit([
      {
        runId: "old",
        batch: 1,
        nodeId: "pl_audit",
        key: [1],
        action: "insert",
        createdAt: "2020-01-01T00:00:00.000Z",
      },
    ]);
    const removed = await store.pruneAudit(new Date(Date.now() - 30 * 86_400_000).toISOString());
    assert.equal(removed, 1);
    assert.equal((await store.listAudit("old")).entries.length, 0);
  });
});
