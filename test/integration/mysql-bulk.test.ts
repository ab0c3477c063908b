/**
 * The MySQL/MariaDB bulk path (LOAD DATA into a staging table, one INSERT ... SELECT)
 * that upserts of 500 records or more take: values arrive exactly as the statement
 * path would write them, insert/update labels are exact whatever the key's type, and
 * what LOAD DATA cannot carry falls back to statements without losing a row.
 */
import assert from "node:assert/strict";
import type { Knex } from "knex";
import { DbConnection, parseSettings } from "../../nodes/lib/db/connection";
import { mysqlDialect } from "../../nodes/lib/db/mysql";
import { TableWriter } from "../../nodes/lib/db/table-writer";
import type { SyncRecord } from "../../nodes/lib/types";
import { MYSQL_URL, configFromUrl, mysqlKnex, requireServer } from "../support/databases";

const TRICKY = [
  "tab\there",
  "line\nbreak",
  "cr\rlf",
  "back\\slash",
  "nul\0byte",
  "Zoë ✓ 🚀",
  "\\N",
];

function records(from: number, count: number, version: number): SyncRecord[] {
  return Array.from({ length: count }, (_, i) => {
    const id = from + i;
    return {
      id: String(id),
      name: id % 50 === 0 ? null : `${TRICKY[id % TRICKY.length]} ${id}.${version}`,
      amount: `${id}.${String(version).padStart(2, "0")}`,
      active: id % 2 === 0,
      score: id * 1.5,
      // A non-UTC offset and every microsecond: stored as the UTC wall clock.
      seen_at: `2026-03-0${1 + (id % 9)}T12:00:00.${String(id % 1_000_000).padStart(6, "0")}+02:00`,
      attrs: { id, tags: ["a", "b"], version },
    };
  });
}

describe("MySQL bulk upsert (LOAD DATA through a staging table)", function () {
  this.timeout(60_000);
  let admin: Knex;
  let connection: DbConnection;
  /** Whether each batch went through the bulk path or fell back to statements. */
  const paths: string[] = [];
  const original = mysqlDialect.bulkUpsert!;

  before(async function () {
    admin = mysqlKnex();
    await requireServer(this, "MariaDB", admin);
    await admin.raw("drop table if exists bulk_people");
    await admin.raw(
      `create table bulk_people (id bigint primary key, name text, amount decimal(12,2) not null,
        active tinyint(1), score double, seen_at datetime(6), attrs json) character set utf8mb4`,
    );
    await admin.raw("drop table if exists bulk_events");
    await admin.raw(
      `create table bulk_events (at datetime(6) not null, source varchar(20) not null, n int,
        primary key (at, source)) character set utf8mb4`,
    );
    connection = new DbConnection(
      parseSettings(configFromUrl(MYSQL_URL), configFromUrl(MYSQL_URL)),
    );
    mysqlDialect.bulkUpsert = async (knex, chunk) => {
      try {
        const actions = await original.call(mysqlDialect, knex, chunk);
        paths.push("bulk");
        return actions;
      } catch (err) {
        paths.push(`fallback: ${(err as Error).message}`);
        throw err;
      }
    };
  });

  after(async () => {
    mysqlDialect.bulkUpsert = original;
    await connection?.close();
    await admin?.destroy();
  });

  beforeEach(() => (paths.length = 0));

  const writer = (table: string, keyColumns: string[]) =>
    new TableWriter(connection, { table, keyColumns, mode: "upsert" });

  it("writes tabs, newlines, backslashes, NUL, emoji, NULL, decimals, JSON and offsets exactly", async () => {
    const batch = records(1, 1200, 1);
    const result = await writer("bulk_people", ["id"]).write(batch);
    assert.deepEqual(paths, ["bulk"]);
    assert.equal(result.failed.length, 0);
    assert.equal(result.outcomes.filter((o) => o.action === "insert").length, 1200);

    const rows = (await admin("bulk_people").select(
      "id",
      "name",
      "amount",
      "active",
      "score",
      admin.raw("date_format(seen_at, '%Y-%m-%d %H:%i:%s.%f') as seen_at"),
      admin.raw("cast(attrs as char) as attrs"),
    )) as Array<Record<string, unknown>>;
    const byId = new Map(rows.map((r) => [String(r.id), r]));
    assert.equal(byId.size, 1200);
    for (const record of batch) {
      const row = byId.get(record.id as string)!;
      assert.equal(row.name, record.name, `name of ${record.id}`);
      assert.equal(String(row.amount), record.amount);
      assert.equal(Number(row.active), record.active ? 1 : 0);
      assert.equal(Number(row.score), record.score);
      const seen = record.seen_at as string;
      const day = Number(seen.slice(8, 10));
      assert.equal(row.seen_at, `2026-03-0${day} 10:00:00.${seen.slice(20, 26)}`);
      assert.deepEqual(JSON.parse(row.attrs as string), record.attrs);
    }
  });

  it("labels each record insert or update by whether its key existed", async () => {
    // 600 of these exist from the test above (ids 601-1200), 600 are new (1201-1800).
    const result = await writer("bulk_people", ["id"]).write(records(601, 1200, 2));
    assert.deepEqual(paths, ["bulk"]);
    const actionOf = new Map(result.outcomes.map((o) => [String(o.key[0]), o.action]));
    assert.equal(actionOf.get("601"), "update");
    assert.equal(actionOf.get("1200"), "update");
    assert.equal(actionOf.get("1201"), "insert");
    assert.equal([...actionOf.values()].filter((a) => a === "update").length, 600);
    assert.equal([...actionOf.values()].filter((a) => a === "insert").length, 600);
    const row = await admin("bulk_people").where({ id: 700 }).first();
    assert.equal(String(row.amount), "700.02");
    const [{ n }] = await admin("bulk_people").count({ n: "*" });
    assert.equal(Number(n), 1800);
  });

  it("a batch of new rows with one existing key inside is still labelled exactly", async () => {
    // First and last keys are new, so the batch is tried straight into the table; the
    // existing key in the middle makes that load roll back and go through staging.
    const batch = records(3001, 600, 3);
    batch[300] = { ...records(5, 1, 3)[0] };
    const [{ n: before }] = await admin("bulk_people").count({ n: "*" });
    const result = await writer("bulk_people", ["id"]).write(batch);
    assert.deepEqual(paths, ["bulk"]);
    const updated = result.outcomes.filter((o) => o.action === "update").map((o) => o.key[0]);
    assert.deepEqual(updated, ["5"]);
    assert.equal(result.outcomes.filter((o) => o.action === "insert").length, 599);
    const [{ n: after }] = await admin("bulk_people").count({ n: "*" });
    assert.equal(Number(after) - Number(before), 599);
    const row = await admin("bulk_people").where({ id: 5 }).first();
    assert.equal(String(row.amount), "5.03");
  });

  it("a batch of rows that all exist is labelled update, also when some are unchanged", async () => {
    // Ids 601-1800 exist (version 2). All changed: every record is an update.
    const changed = await writer("bulk_people", ["id"]).write(records(601, 600, 5));
    assert.ok(changed.outcomes.every((o) => o.action === "update"));
    // Half of them sent again as they are: the server counts only changed rows as
    // duplicates, so the labels must come from the keys, not that count.
    const batch = records(601, 600, 6).map((r, i) => (i % 2 ? records(601 + i, 1, 5)[0] : r));
    const again = await writer("bulk_people", ["id"]).write(batch);
    assert.deepEqual(paths, ["bulk", "bulk"]);
    assert.equal(again.outcomes.length, 600);
    assert.ok(again.outcomes.every((o) => o.action === "update"));
    const rows = (await admin("bulk_people")
      .whereBetween("id", [601, 1200])
      .select("id", "amount")) as Array<{ id: number; amount: string }>;
    for (const row of rows) {
      const version = (Number(row.id) - 601) % 2 ? "05" : "06";
      assert.equal(String(row.amount), `${row.id}.${version}`);
    }
  });

  it("a batch whose first and last rows exist but one inside is new labels that one insert", async () => {
    const batch = records(601, 600, 7);
    batch[250] = records(9001, 1, 7)[0];
    const result = await writer("bulk_people", ["id"]).write(batch);
    assert.deepEqual(paths, ["bulk"]);
    const inserted = result.outcomes.filter((o) => o.action === "insert").map((o) => o.key[0]);
    assert.deepEqual(inserted, ["9001"]);
    assert.equal(result.outcomes.filter((o) => o.action === "update").length, 599);
    const row = await admin("bulk_people").where({ id: 9001 }).first();
    assert.equal(String(row.amount), "9001.07");
    const old = await admin("bulk_people").where({ id: 851 }).first();
    assert.equal(
      String(old.amount),
      "851.06",
      "the record it replaced in the batch was not written",
    );
  });

  it("labels updates exactly when the key is a timestamp and text", async () => {
    const events = (n: number) =>
      Array.from({ length: 800 }, (_, i) => ({
        at: `2026-04-01T08:${String(Math.floor(i / 60)).padStart(2, "0")}:${String(i % 60).padStart(2, "0")}.5Z`,
        source: i % 2 ? "web" : "shop",
        n,
      }));
    const first = await writer("bulk_events", ["at", "source"]).write(events(1));
    assert.ok(first.outcomes.every((o) => o.action === "insert"));
    const second = await writer("bulk_events", ["at", "source"]).write(events(2));
    assert.deepEqual(paths, ["bulk", "bulk"]);
    assert.ok(
      second.outcomes.every((o) => o.action === "update"),
      "a key read back as 2026-04-01T08:00:00.5Z is the one written",
    );
    const [{ n }] = await admin("bulk_events").count({ n: "*" });
    assert.equal(Number(n), 800);
  });

  it("falls back to statements for a value LOAD DATA would change, and fails only that record", async () => {
    const batch = records(2001, 600, 1);
    batch[10] = { ...batch[10], amount: null }; // NOT NULL: LOAD DATA would store 0.00
    const result = await writer("bulk_people", ["id"]).write(batch);
    assert.equal(paths.length, 1);
    assert.match(paths[0], /^fallback: bulk load: \d+ warning/);
    assert.deepEqual(
      result.failed.map((f) => f.record.id),
      ["2011"],
    );
    assert.match(result.failed[0].error, /amount/);
    const [{ n }] = await admin("bulk_people").whereBetween("id", [2001, 2600]).count({ n: "*" });
    assert.equal(Number(n), 599);
  });

  it("records of other shapes in one batch keep the fields they do not carry", async () => {
    // 700 complete records, then 300 without `name` and 100 with their fields in
    // another order: the 300 must leave the stored name alone, not write NULL.
    const before = (await admin("bulk_people").where({ id: 42 }).first()) as { name: string };
    const complete = records(4001, 700, 4);
    const partial = records(1, 300, 4).map(({ name: _name, ...rest }) => rest);
    const reordered = records(4701, 100, 4).map((r) =>
      Object.fromEntries(Object.entries(r).reverse()),
    );
    const result = await writer("bulk_people", ["id"]).write([
      ...complete,
      ...partial,
      ...reordered,
    ]);
    assert.equal(result.failed.length, 0);
    assert.equal(result.outcomes.length, 1100);
    const row42 = await admin("bulk_people").where({ id: 42 }).first();
    assert.equal(row42.name, before.name, "a record without name keeps the stored one");
    assert.equal(String(row42.amount), "42.04");
    const row4750 = await admin("bulk_people").where({ id: 4750 }).first();
    assert.equal(row4750.name, records(4750, 1, 4)[0].name);
    assert.equal(String(row4750.amount), "4750.04");
  });

  it("a field set to undefined is left alone like a missing one, in a batch of the same shape", async () => {
    const before = (await admin("bulk_people").where({ id: 4010 }).first()) as { name: string };
    const batch = records(4001, 700, 5);
    batch[9] = { ...batch[9], name: undefined as unknown as null }; // id 4010
    const result = await writer("bulk_people", ["id"]).write(batch);
    assert.equal(result.failed.length, 0);
    const row = await admin("bulk_people").where({ id: 4010 }).first();
    assert.equal(row.name, before.name, "undefined is not written as NULL");
    assert.equal(String(row.amount), "4010.05");
    const next = await admin("bulk_people").where({ id: 4011 }).first();
    assert.equal(next.name, records(4011, 1, 5)[0].name);
  });

  it("writes binary values through statements, every row", async () => {
    await admin.raw("drop table if exists bulk_files");
    await admin.raw("create table bulk_files (id int primary key, body blob)");
    const files = Array.from({ length: 500 }, (_, i) => ({
      id: i + 1,
      body: Buffer.from([i % 256, 9, 10, 92, 0]),
    }));
    const result = await writer("bulk_files", ["id"]).write(files);
    assert.match(paths[0], /^fallback: bulk path: binary/);
    assert.equal(result.outcomes.filter((o) => o.action === "insert").length, 500);
    const row = await admin("bulk_files").where({ id: 300 }).first();
    assert.deepEqual(row.body, Buffer.from([299 % 256, 9, 10, 92, 0]));
  });
});
