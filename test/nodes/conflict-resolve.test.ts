/** tributary-conflict-resolve through Node-RED: review resolutions are written once. */
import assert from "node:assert/strict";
import path from "node:path";
import Database from "better-sqlite3";
import { allNodes, helper, useTempUserDir, waitForStatus } from "../support/red";
import type { DbConnectionNode } from "../../nodes/lib/db/connection";
import { closeStateStores, stateStoreFor } from "../../nodes/lib/state-store";
import { runRegistry } from "../../nodes/lib/run-registry";
import type { SyncRecord } from "../../nodes/lib/types";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const conflictNode = require(
  path.resolve(__dirname, "../../nodes/conflict-resolve/conflict-resolve.js"),
) as unknown;

describe("tributary-conflict-resolve node", function () {
  this.timeout(30_000);
  let userDir: string;

  before(async () => {
    userDir = useTempUserDir();
    const dst = new Database(path.join(userDir, "dst.sqlite"));
    dst.exec("create table people (id integer primary key, name text)");
    dst.prepare("insert into people values (1, 'changed in the target')").run();
    dst.close();
    await helper.load(
      [...allNodes, conflictNode],
      [
        { id: "cr_db", type: "tributary-db-connection", client: "sqlite", filename: "dst.sqlite" },
        {
          id: "cr",
          type: "tributary-conflict-resolve",
          connection: "cr_db",
          table: "people",
          keyColumns: ["id"],
          strategy: "manual",
          wires: [["cr_out"], []],
        },
        { id: "cr_out", type: "helper" },
      ],
    );
  });

  after(async () => {
    await helper.unload();
    await closeStateStores();
  });

  it("writes a resolution taken in the review queue once, though two batches are in flight", async () => {
    const label = (helper.getNode("cr_db") as unknown as DbConnectionNode).connection().label;
    const scope = ["source src/people", `${label}/people`].sort().join(" <> ");
    const store = await stateStoreFor(userDir);
    const reviewId = await store.addReview({
      scope,
      nodeId: "cr",
      key: [1],
      sourceRecord: { id: 1, name: "taken from the source" },
      targetRecord: { id: 1, name: "changed in the target" },
    });
    assert.ok(await store.resolveReview(reviewId, "source", "test"));

    const payloads: SyncRecord[][] = [];
    const out = helper.getNode("cr_out");
    const both = new Promise<void>((resolve) =>
      out.on("input", (msg: never) => {
        payloads.push((msg as { payload: SyncRecord[] }).payload);
        if (payloads.length === 2) resolve();
      }),
    );
    // Two batches of one run, the second sent before the first is written (settled).
    const batch = (n: number, id: number) => ({
      payload: [{ id, name: `new ${id}` }],
      sync: { runId: "run-1", sourceId: "src", entity: "people", batch: n, key: ["id"] },
    });
    helper.getNode("cr").receive(batch(1, 2));
    helper.getNode("cr").receive(batch(2, 3));
    await both;
    const written = payloads.flat().map((r) => r.id);
    assert.deepEqual(
      written.filter((id) => id === 1),
      [1],
      "the resolved record is in exactly one batch",
    );
    assert.deepEqual(written.filter((id) => id !== 1).sort(), [2, 3]);
  });
});

describe("tributary-conflict-resolve node, stopped while saving sync states", function () {
  this.timeout(30_000);
  let userDir: string;

  before(async () => {
    userDir = useTempUserDir();
    const dst = new Database(path.join(userDir, "dst.sqlite"));
    dst.exec("create table people (id integer primary key, name text)");
    dst.close();
    await helper.load(
      [...allNodes, conflictNode],
      [
        { id: "cs_db", type: "tributary-db-connection", client: "sqlite", filename: "dst.sqlite" },
        {
          id: "cs",
          type: "tributary-conflict-resolve",
          connection: "cs_db",
          table: "people",
          keyColumns: ["id"],
          strategy: "source-wins",
          wires: [["cs_out"], []],
        },
        { id: "cs_out", type: "helper" },
      ],
    );
  });

  after(async () => {
    await helper.unload();
    await closeStateStores();
  });

  it("saves the written batch's sync states before its close is done", async () => {
    const store = await stateStoreFor(userDir);
    const save = store.saveSyncStates.bind(store);
    let saved = false;
    // A slow state store: the save is still under way when Node-RED stops the flow.
    store.saveSyncStates = async (...args) => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      await save(...args);
      saved = true;
    };
    const out = helper.getNode("cs_out");
    const passed = new Promise<void>((resolve) => out.on("input", () => resolve()));
    helper.getNode("cs").receive({
      payload: [{ id: 7, name: "new" }],
      sync: { runId: "run-close", sourceId: "src", entity: "people", batch: 1, key: ["id"] },
    });
    await passed;
    // What the upsert reports once it wrote the batch.
    runRegistry.emit("settled", {
      runId: "run-close",
      sourceId: "src",
      batch: 1,
      nodeId: "up",
      outcomes: [{ key: [7], action: "insert" }],
    });
    await helper.unload();
    assert.ok(saved, "the sync states were saved before the node's close was done");
  });
});

describe("tributary-conflict-resolve node, checked at deploy", function () {
  this.timeout(30_000);

  before(() => {
    const userDir = useTempUserDir();
    const dst = new Database(path.join(userDir, "dst.sqlite"));
    dst.exec("create table people (id integer primary key, name text)");
    dst.close();
  });
  afterEach(async () => {
    await helper.unload();
    await closeStateStores();
  });

  const load = (settings: Record<string, unknown>) =>
    helper.load(
      [...allNodes, conflictNode],
      [
        { id: "cr_db", type: "tributary-db-connection", client: "sqlite", filename: "dst.sqlite" },
        { id: "cr", type: "tributary-conflict-resolve", connection: "cr_db", ...settings },
      ],
    );

  for (const [what, settings, message] of [
    [
      "a table that does not exist",
      { table: "nowhere", keyColumns: ["id"] },
      /table "nowhere" was not found/,
    ],
    [
      "an unknown key column",
      { table: "people", keyColumns: ["code"] },
      /key column "code" is not a column of table "people"/,
    ],
  ] as const) {
    it(`${what}: shows on the status and in the log before any batch`, async () => {
      await load(settings);
      const node = helper.getNode("cr");
      await waitForStatus(node, (text) => message.test(text));
      assert.ok(
        node.error.args.some(([m]) => message.test(String(m))),
        JSON.stringify(node.error.args),
      );
    });
  }

  it("a correct target shows no error", async () => {
    await load({ table: "people", keyColumns: ["id"] });
    await new Promise((resolve) => setTimeout(resolve, 200)); // the check is asynchronous
    assert.deepEqual(helper.getNode("cr").error.args, []);
  });
});
