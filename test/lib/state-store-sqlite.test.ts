/**
 * The SQLite state store writes audit entries and sync states on a worker thread:
 * what it writes is read back, its writes and the main connection's do not collide,
 * closing lets sent writes finish, and Node-RED's event loop keeps turning meanwhile.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SqliteWorker } from "../../nodes/lib/sqlite-worker";
import { StateStore, type AuditEntry } from "../../nodes/lib/state-store";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-sqlite-"));
const RUN = "2f0c9d4e-5b6a-4c3d-8e9f-0a1b2c3d4e5f";

function entries(count: number, batch = 1): AuditEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    runId: RUN,
    batch,
    nodeId: "audit1",
    key: [String(i + 1)],
    action: i % 3 ? "update" : "insert",
    ...(i === 7 ? { error: 'a tab\tand a quote " survive' } : {}),
  }));
}

async function allAudit(store: StateStore): Promise<AuditEntry[]> {
  const all: AuditEntry[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.listAudit(RUN, { limit: 1000, cursor });
    all.push(...page.entries);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return all;
}

describe("SQLite state store: per-record writes on a worker thread", function () {
  this.timeout(60_000);

  it("reads back every audit entry and sync state it wrote", async () => {
    const store = await StateStore.open({ file: path.join(tmp, "readback.sqlite") });
    try {
      await store.addAudit(entries(5000));
      const audit = await allAudit(store);
      assert.equal(audit.length, 5000);
      assert.deepEqual(audit[7].key, ["8"]);
      assert.equal(audit[7].error, 'a tab\tand a quote " survive');
      assert.equal(audit.filter((e) => e.action === "insert").length, 1667);

      const states = Array.from({ length: 3000 }, (_, i) => ({
        key: JSON.stringify([String(i)]),
        sourceHash: `s${i}`,
        targetHash: i % 2 ? null : `t${i}`,
      }));
      await store.saveSyncStates("a <> b", states);
      await store.saveSyncStates("a <> b", [{ key: '["5"]', sourceHash: "new", targetHash: "t" }]);
      const found = await store.getSyncStates("a <> b", ['["4"]', '["5"]', '["9999"]']);
      assert.deepEqual([...found.keys()].sort(), ['["4"]', '["5"]']);
      assert.equal(found.get('["5"]')?.sourceHash, "new");
      assert.equal(found.get('["4"]')?.targetHash, "t4");
      assert.equal((await store.getSyncStates("other scope", ['["4"]'])).size, 0);
    } finally {
      await store.close();
    }
  });

  it("keeps the sync states of a store made by an earlier version when it upgrades", async () => {
    const file = path.join(tmp, "upgrade.sqlite");
    const first = await StateStore.open({ file });
    // The table as the first release made it (a rowid table), holding states.
    await first.knex.schema.dropTable("tributary_sync_state");
    await first.knex.schema.createTable("tributary_sync_state", (t) => {
      t.string("scope", 255).notNullable();
      t.string("record_key", 512).notNullable();
      t.string("source_hash", 64);
      t.string("target_hash", 64);
      t.string("synced_at", 40).notNullable();
      t.primary(["scope", "record_key"]);
    });
    await first.knex("tributary_sync_state").insert([
      {
        scope: "a <> b",
        record_key: '["1"]',
        source_hash: "s1",
        target_hash: "t1",
        synced_at: "x",
      },
      {
        scope: "a <> b",
        record_key: '["2"]',
        source_hash: "s2",
        target_hash: null,
        synced_at: "x",
      },
    ]);
    await first
      .knex("tributary_migrations")
      .where({ name: "003_sqlite_sync_state_without_rowid" })
      .delete();
    await first.close();

    const store = await StateStore.open({ file });
    try {
      const found = await store.getSyncStates("a <> b", ['["1"]', '["2"]']);
      assert.equal(found.get('["1"]')?.targetHash, "t1");
      assert.equal(found.get('["2"]')?.sourceHash, "s2");
      await store.saveSyncStates("a <> b", [{ key: '["2"]', sourceHash: "s2b", targetHash: "t2" }]);
      assert.equal(
        (await store.getSyncStates("a <> b", ['["2"]'])).get('["2"]')?.sourceHash,
        "s2b",
      );
      const [table] = (await store.knex.raw(
        "select sql from sqlite_master where name = 'tributary_sync_state'",
      )) as Array<{ sql: string }>;
      assert.match(table.sql, /without rowid/i);
    } finally {
      await store.close();
    }
  });

  it("writes from the worker and the main connection at once without a busy error", async () => {
    const store = await StateStore.open({ file: path.join(tmp, "concurrent.sqlite") });
    try {
      await Promise.all(
        Array.from({ length: 20 }, (_, b) =>
          Promise.all([
            store.addAudit(entries(500, b + 1)),
            store.saveWatermark({
              sourceId: `src${b}`,
              entity: "customers",
              cursorField: "updated_at",
              position: { cursor: `2026-01-01T00:00:${String(b).padStart(2, "0")}Z`, key: [b] },
              runId: RUN,
            }),
          ]),
        ),
      );
      assert.equal((await allAudit(store)).length, 10_000);
      assert.equal((await store.listWatermarks()).length, 20);
    } finally {
      await store.close();
    }
  });

  it("close lets the writes already sent finish", async () => {
    const file = path.join(tmp, "close.sqlite");
    const store = await StateStore.open({ file });
    const writing = store.addAudit(entries(20_000));
    await store.close();
    await writing;
    const reopened = await StateStore.open({ file });
    try {
      assert.equal((await allAudit(reopened)).length, 20_000);
      await assert.rejects(store.addAudit(entries(1)), /closed/);
    } finally {
      await reopened.close();
    }
  });

  it("keeps the event loop turning while a large batch is written", async () => {
    const store = await StateStore.open({ file: path.join(tmp, "loop.sqlite") });
    try {
      const order: string[] = [];
      const writing = store.addAudit(entries(100_000)).then(() => order.push("written"));
      await new Promise<void>((resolve) =>
        setTimeout(() => {
          order.push("timer");
          resolve();
        }, 1),
      );
      await writing;
      assert.deepEqual(order, ["timer", "written"]);
    } finally {
      await store.close();
    }
  });

  it("carries on without the worker when its thread dies", async () => {
    const store = await StateStore.open({ file: path.join(tmp, "crash.sqlite") });
    try {
      await store.addAudit(entries(10));
      // The thread stops as an out-of-memory kill or a native fault would stop it.
      const thread = (store as unknown as { worker: { worker: { terminate(): Promise<number> } } })
        .worker.worker;
      await thread.terminate();
      await store.addAudit(entries(10, 2));
      await store.saveSyncStates("a <> b", [{ key: '["1"]', sourceHash: "s", targetHash: "t" }]);
      assert.equal((await allAudit(store)).length, 20);
      assert.equal((await store.getSyncStates("a <> b", ['["1"]'])).get('["1"]')?.sourceHash, "s");
    } finally {
      await store.close();
    }
  });

  it("rejects a statement SQLite refuses with SQLite's message", async () => {
    const worker = new SqliteWorker(path.join(tmp, "refused.sqlite"));
    try {
      await assert.rejects(worker.all("select * from no_such_table", []), /no such table/);
      await worker.run("create table t (n integer not null)", []);
      await assert.rejects(worker.run("insert into t values (?)", [null]), (err: Error) => {
        assert.match(err.message, /NOT NULL/);
        assert.equal((err as Error & { code?: string }).code, "SQLITE_CONSTRAINT_NOTNULL");
        return true;
      });
      assert.deepEqual(await worker.all("select count(*) as n from t", []), [{ n: 0 }]);
    } finally {
      await worker.close();
    }
  });
});
