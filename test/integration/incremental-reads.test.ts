import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Knex } from "knex";
import { DbConnection, parseSettings } from "../../nodes/lib/db/connection";
import { TableReader, type TableReaderOptions } from "../../nodes/lib/db/table-reader";
import { runSource } from "../../nodes/lib/source-run";
import { runRegistry } from "../../nodes/lib/run-registry";
import { StateStore } from "../../nodes/lib/state-store";
import type { RunSummary } from "../../nodes/lib/types";
import {
  MYSQL_URL,
  PG_URL,
  configFromUrl,
  mysqlKnex,
  pgKnex,
  requireServer,
} from "../support/databases";

/** One incremental run whose sink settles every batch at once; returns the ids read. */
async function syncOnce(
  connection: DbConnection,
  store: StateStore,
  sourceId: string,
  options: TableReaderOptions,
  batchSize = 1000,
): Promise<{ ids: number[]; summary: RunSummary }> {
  const ids: number[] = [];
  const summary = await runSource({
    sourceId,
    mode: "incremental",
    batchSize,
    maxInFlight: 2,
    settleTimeoutMs: 10_000,
    reader: new TableReader(connection, options),
    store,
    emit: (msg) => {
      for (const r of msg.payload) ids.push(Number(r.id));
      setImmediate(() => runRegistry.settle(msg.sync.runId, msg.sync.batch, []));
    },
  });
  assert.equal(summary.status, "succeeded", summary.error);
  return { ids, summary };
}

const servers = [
  { name: "PostgreSQL", url: PG_URL, admin: pgKnex, now: "clock_timestamp()", type: "timestamptz" },
  { name: "MariaDB", url: MYSQL_URL, admin: mysqlKnex, now: "now(6)", type: "datetime(6)" },
];

for (const server of servers) {
  describe(`incremental reads on ${server.name}`, function () {
    this.timeout(60_000);
    let admin: Knex;
    let connection: DbConnection;
    let store: StateStore;

    before(async function () {
      admin = server.admin();
      await requireServer(this, server.name, admin);
      connection = new DbConnection(
        parseSettings(configFromUrl(server.url), configFromUrl(server.url)),
      );
      store = await StateStore.open({
        file: path.join(fs.mkdtempSync(path.join(os.tmpdir(), "tributary-inc-")), "state.sqlite"),
      });
    });

    after(async () => {
      await connection?.close();
      await store?.close();
      await admin?.destroy();
    });

    it("reads each of 10,000 rows sharing one cursor value exactly once, in batches of 1,000", async () => {
      await admin.raw("drop table if exists inc_ties");
      await admin.raw(
        `create table inc_ties (id integer primary key, updated_at ${server.type} not null)`,
      );
      const rows = Array.from({ length: 10_000 }, (_, i) => ({
        id: i + 1,
        updated_at: "2026-05-01 12:00:00.123456",
      }));
      for (let i = 0; i < rows.length; i += 1000)
        await admin("inc_ties").insert(rows.slice(i, i + 1000));
      const { ids, summary } = await syncOnce(connection, store, `ties-${server.name}`, {
        table: "inc_ties",
        keyColumns: ["id"],
        cursorColumn: "updated_at",
      });
      assert.equal(summary.counts.batches, 10);
      assert.equal(ids.length, 10_000);
      assert.equal(new Set(ids).size, 10_000);
      // Two more rows at the same instant arrive later: they are read, the old ones are not.
      await admin("inc_ties").insert([
        { id: 10_001, updated_at: "2026-05-01 12:00:00.123456" },
        { id: 0, updated_at: "2026-05-01 12:00:00.123456" },
      ]);
      const next = await syncOnce(connection, store, `ties-${server.name}`, {
        table: "inc_ties",
        keyColumns: ["id"],
        cursorColumn: "updated_at",
      });
      // id 0 sorts before the watermark's key at the same cursor value: only a look-back window finds it.
      assert.deepEqual(next.ids, [10_001]);
    });

    it("picks up a row that commits late with an older cursor value", async () => {
      await admin.raw("drop table if exists inc_late");
      await admin.raw(
        `create table inc_late (id integer primary key, updated_at ${server.type} not null)`,
      );
      const sourceId = `late-${server.name}`;
      const options: TableReaderOptions = {
        table: "inc_late",
        keyColumns: ["id"],
        cursorColumn: "updated_at",
        lookback: server.name === "PostgreSQL" ? 0 : 60,
      };
      await admin.raw(`insert into inc_late values (1, ${server.now})`);
      await syncOnce(connection, store, sourceId, options);
      // A long transaction takes its timestamp now, and commits after others.
      const late = await admin.transaction();
      await late.raw(
        `insert into inc_late values (2, ${server.name === "PostgreSQL" ? "now()" : "now(6)"})`,
      );
      await new Promise((r) => setTimeout(r, 50));
      await admin.raw(`insert into inc_late values (3, ${server.now})`);
      const during = await syncOnce(connection, store, sourceId, options);
      await late.commit();
      const after = await syncOnce(connection, store, sourceId, options);
      const seen = new Set([...during.ids, ...after.ids]);
      assert.ok(
        seen.has(2),
        `the late row was never read (during: ${during.ids}, after: ${after.ids})`,
      );
      assert.ok(seen.has(3));
      if (server.name === "PostgreSQL") {
        // The bound stays below the open transaction's start: row 3 waits for it.
        assert.deepEqual(during.ids, []);
      }
    });

    it("warns about rows with no cursor value instead of silently leaving them out", async () => {
      await admin.raw("drop table if exists inc_nulls");
      await admin.raw(
        `create table inc_nulls (id integer primary key, updated_at ${server.type} null)`,
      );
      await admin.raw(`insert into inc_nulls values (1, ${server.now}), (2, null), (3, null)`);
      const { ids, summary } = await syncOnce(connection, store, `nulls-${server.name}`, {
        table: "inc_nulls",
        keyColumns: ["id"],
        cursorColumn: "updated_at",
      });
      assert.deepEqual(ids, [1]);
      assert.match(summary.warnings?.[0] ?? "", /2 row\(s\) have no updated_at value .* full sync/);
    });
  });
}
