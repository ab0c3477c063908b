/** The state store on PostgreSQL (TRIBUTARY_STATE_URL): migrations, runs, watermarks, leases. */
import assert from "node:assert/strict";
import type { Knex } from "knex";
import { StateStore } from "../../nodes/lib/state-store";
import { PG_URL, pgKnex, requireServer } from "../support/databases";

describe("state store on PostgreSQL", function () {
  this.timeout(60_000);
  let admin: Knex;
  let store: StateStore;
  const url = new URL(PG_URL);
  url.pathname = "/tributary_state_test";

  before(async function () {
    admin = pgKnex();
    await requireServer(this, "PostgreSQL", admin);
    await admin.raw("drop database if exists tributary_state_test");
    await admin.raw("create database tributary_state_test");
    store = await StateStore.open({ url: url.toString() });
  });

  after(async () => {
    await store?.close();
    await admin?.raw("drop database if exists tributary_state_test").catch(() => undefined);
    await admin?.destroy();
  });

  it("runs its migrations once, and again is a no-op", async () => {
    const again = await StateStore.open({ url: url.toString() });
    await again.close();
    const tables = await store.knex.raw(
      "select tablename from pg_tables where tablename like 'tributary_%' order by 1",
    );
    const names = (tables.rows as Array<{ tablename: string }>).map((r) => r.tablename);
    for (const t of [
      "tributary_runs",
      "tributary_watermarks",
      "tributary_audit",
      "tributary_sync_state",
      "tributary_review",
      "tributary_leases",
    ]) {
      assert.ok(names.includes(t), t);
    }
  });

  it("keeps a watermark with microseconds exactly, and runs with counts", async () => {
    await store.saveWatermark({
      sourceId: "s1",
      entity: "customers",
      cursorField: "updated_at",
      position: { cursor: "2026-11-01T10:00:00.123456Z", key: ["42"] },
      runId: null,
    });
    const mark = await store.getWatermark("s1");
    assert.deepEqual(mark?.position, { cursor: "2026-11-01T10:00:00.123456Z", key: ["42"] });
    await store.saveRun({
      runId: "00000000-0000-0000-0000-000000000001",
      sourceId: "s1",
      flowId: "f1",
      entity: "customers",
      mode: "incremental",
      status: "succeeded",
      counts: {
        read: 3,
        batches: 1,
        insert: 2,
        update: 1,
        delete: 0,
        unchanged: 0,
        skipped: 0,
        conflict: 0,
        failed: 0,
      },
      startedAt: "2026-11-01T10:00:00.000Z",
      finishedAt: "2026-11-01T10:00:01.000Z",
    });
    const { runs } = await store.listRuns({ sourceId: "s1" });
    assert.equal(runs[0].counts.insert, 2);
  });

  it("gives a source's lease to one replica at a time, and to another once it expires", async () => {
    assert.equal(await store.acquireLease("s1", "replica-a", 200), true);
    assert.equal(await store.acquireLease("s1", "replica-b", 200), false);
    assert.equal(await store.acquireLease("s1", "replica-a", 200), true);
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(await store.acquireLease("s1", "replica-b", 200), true);
    await store.releaseLease("s1", "replica-b");
    assert.equal(await store.acquireLease("s1", "replica-a", 200), true);
  });
});
