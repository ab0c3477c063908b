/**
 * Every database as source and as target: rows copied incrementally compare equal
 * when read back through each side's connection, soft deletes remove target rows,
 * and custom SQL with named parameters reads only what it selects.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Knex } from "knex";
import { DbConnection, parseSettings } from "../../nodes/lib/db/connection";
import { TableReader, type TableReaderOptions } from "../../nodes/lib/db/table-reader";
import { TableWriter, type TableWriterOptions } from "../../nodes/lib/db/table-writer";
import { runSource } from "../../nodes/lib/source-run";
import { runRegistry } from "../../nodes/lib/run-registry";
import { StateStore } from "../../nodes/lib/state-store";
import type { RunSummary, SyncRecord } from "../../nodes/lib/types";
import { MYSQL_URL, PG_URL, configFromUrl } from "../support/databases";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-matrix-"));

interface Side {
  name: string;
  connection(): DbConnection;
  ddl(table: string): string;
}

const SIDES: Side[] = [
  {
    name: "pg",
    connection: () => new DbConnection(parseSettings(configFromUrl(PG_URL), configFromUrl(PG_URL))),
    ddl: (t) =>
      `create table ${t} (id bigint primary key, name text, amount numeric(12,2), updated_at timestamptz, deleted_at timestamptz)`,
  },
  {
    name: "mysql",
    connection: () =>
      new DbConnection(parseSettings(configFromUrl(MYSQL_URL), configFromUrl(MYSQL_URL))),
    ddl: (t) =>
      `create table ${t} (id bigint primary key, name text, amount decimal(12,2), updated_at datetime(6), deleted_at datetime(6)) character set utf8mb4`,
  },
  {
    name: "sqlite",
    connection: () =>
      new DbConnection(
        parseSettings({ client: "sqlite", filename: path.join(tmp, "matrix.sqlite") }),
      ),
    ddl: (t) =>
      `create table ${t} (id integer primary key, name text, amount text, updated_at text, deleted_at text)`,
  },
];

const SEED: SyncRecord[] = [
  {
    id: "1",
    name: "Ada ✓",
    amount: "10.50",
    updated_at: "2026-05-01T10:00:00.000001Z",
    deleted_at: null,
  },
  {
    id: "2",
    name: null,
    amount: "-3.00",
    updated_at: "2026-05-01T10:00:00.000001Z",
    deleted_at: null,
  },
  { id: "3", name: "Grace", amount: null, updated_at: "2026-05-02T08:30:00.5Z", deleted_at: null },
];

async function recreate(side: Side, knex: Knex, table: string): Promise<void> {
  await knex.raw(`drop table if exists ${table}`);
  await knex.raw(side.ddl(table));
}

/** Rows as the pack reads them, with ids as text so dialects compare. */
async function rowsOf(connection: DbConnection, table: string): Promise<SyncRecord[]> {
  const rows = (await connection.knex()(table).orderBy("id")) as SyncRecord[];
  return rows.map((r) => ({ ...r, id: String(r.id) }));
}

async function sync(
  from: DbConnection,
  to: DbConnection,
  store: StateStore,
  sourceId: string,
  read: TableReaderOptions,
  write: TableWriterOptions,
): Promise<RunSummary> {
  const writer = new TableWriter(to, write);
  const summary = await runSource({
    sourceId,
    mode: "incremental",
    batchSize: 2,
    maxInFlight: 2,
    settleTimeoutMs: 10_000,
    reader: new TableReader(from, read),
    store,
    emit: (msg) => {
      writer.write(msg.payload, false, msg.sync.deletedField).then(
        (result) => runRegistry.settle(msg.sync.runId, msg.sync.batch, result.outcomes),
        (err: Error) => runRegistry.failBatch(msg.sync.runId, msg.sync.batch, err),
      );
    },
  });
  assert.equal(summary.status, "succeeded", summary.error);
  return summary;
}

describe("dialect matrix: each database as source and as target", function () {
  this.timeout(120_000);
  let store: StateStore;
  const connections = new Map<string, DbConnection>();

  before(async function () {
    for (const side of SIDES) {
      const connection = side.connection();
      try {
        await connection.test();
      } catch (err) {
        if (process.env.CI === "true") throw err;
        this.skip();
      }
      connections.set(side.name, connection);
    }
    store = await StateStore.open({ file: path.join(tmp, "state.sqlite") });
  });

  after(async () => {
    for (const c of connections.values()) await c.close();
    await store?.close();
  });

  for (const side of SIDES) {
    it(`${side.name}: "Test connection" names the version, database, user and time zone`, async () => {
      const probe = await connections.get(side.name)!.test();
      assert.match(probe.version, /\d+\.\d+/);
      assert.ok(probe.database, "database");
      assert.ok(probe.timezone, "time zone");
      if (side.name !== "sqlite") assert.ok(probe.user, "user");
      assert.ok(probe.latencyMs >= 0);
    });
  }

  for (const source of SIDES) {
    for (const target of SIDES) {
      it(`${source.name} → ${target.name}: copies, updates and soft-deletes rows exactly`, async () => {
        const from = connections.get(source.name)!;
        const to = connections.get(target.name)!;
        const src = `mx_src_${source.name}_${target.name}`;
        const dst = `mx_dst_${source.name}_${target.name}`;
        await recreate(source, from.knex(), src);
        await recreate(target, to.knex(), dst);
        const writer = new TableWriter(from, { table: src, keyColumns: ["id"], mode: "upsert" });
        await writer.write(SEED);
        const read: TableReaderOptions = {
          table: src,
          keyColumns: ["id"],
          cursorColumn: "updated_at",
          deletedColumn: "deleted_at",
        };
        const write: TableWriterOptions = {
          table: dst,
          keyColumns: ["id"],
          mode: "upsert",
          deletes: "delete",
        };
        const sourceId = `mx-${source.name}-${target.name}`;

        const first = await sync(from, to, store, sourceId, read, write);
        assert.equal(first.counts.insert, 3);
        assert.deepEqual(await rowsOf(to, dst), await rowsOf(from, src));

        await writer.write([
          {
            id: "2",
            name: "changed",
            amount: "7.25",
            updated_at: "2026-06-01T00:00:00.25Z",
            deleted_at: null,
          },
          {
            id: "3",
            name: "Grace",
            amount: null,
            updated_at: "2026-06-01T00:00:01Z",
            deleted_at: "2026-06-01T00:00:01Z",
          },
        ]);
        const second = await sync(from, to, store, sourceId, read, write);
        assert.equal(second.counts.read, 2);
        assert.equal(second.counts.update, 1);
        assert.equal(second.counts.delete, 1);
        const expected = (await rowsOf(from, src)).filter((r) => r.id !== "3");
        assert.deepEqual(await rowsOf(to, dst), expected);
      });
    }
  }

  for (const side of SIDES) {
    it(`${side.name}: custom SQL with named parameters reads what it selects, bound not spliced`, async () => {
      const connection = connections.get(side.name)!;
      const table = `mx_q_${side.name}`;
      await recreate(side, connection.knex(), table);
      await new TableWriter(connection, { table, keyColumns: ["id"], mode: "upsert" }).write([
        ...SEED,
        {
          id: "4",
          name: "x'; drop table mx_q; --",
          amount: "1.00",
          updated_at: "2026-05-03T00:00:00Z",
          deleted_at: null,
        },
      ]);
      const query = `select id, name, updated_at from ${table} where name <> :skip_name or name is null -- :not_a_param`;
      const ids: string[] = [];
      const summary = await runSource({
        sourceId: `mxq-${side.name}`,
        mode: "incremental",
        batchSize: 10,
        maxInFlight: 1,
        settleTimeoutMs: 10_000,
        reader: new TableReader(connection, {
          table: "",
          query,
          keyColumns: ["id"],
          cursorColumn: "updated_at",
          params: { skip_name: "Grace" },
        }),
        store,
        emit: (msg) => {
          ids.push(...msg.payload.map((r) => String(r.id)));
          runRegistry.settle(msg.sync.runId, msg.sync.batch, []);
        },
      });
      assert.equal(summary.status, "succeeded", summary.error);
      assert.deepEqual(ids, ["1", "2", "4"]);
      const stillThere = await connection.knex()(table).count({ n: "*" });
      assert.equal(Number((stillThere[0] as { n: unknown }).n), 4);
    });

    it(`${side.name}: a custom SQL parameter of the wrong type is a clear error`, async () => {
      const connection = connections.get(side.name)!;
      const summary = await runSource({
        sourceId: `mxbad-${side.name}`,
        mode: "full",
        batchSize: 10,
        maxInFlight: 1,
        settleTimeoutMs: 10_000,
        reader: new TableReader(connection, {
          table: "",
          query: `select id from mx_q_${side.name} where name = :who`,
          keyColumns: ["id"],
          cursorColumn: null,
          params: { who: { nested: true } },
        }),
        store,
        emit: () => {},
      });
      assert.equal(summary.status, "failed");
      assert.match(
        summary.error ?? "",
        /parameter :who is object: give a string, number, boolean or null/,
      );
    });
  }
});
