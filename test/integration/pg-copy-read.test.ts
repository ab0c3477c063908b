/**
 * The db source reads PostgreSQL tables with COPY … TO STDOUT after its first batch
 * (nodes/lib/db/pg-copy.ts). Against the local server: every value comes out as the row
 * protocol gives it, whatever its type and characters, and keys with quotes, backslashes
 * and dollar signs bound the batches exactly.
 */
import assert from "node:assert/strict";
import type { Knex } from "knex";
import { DbConnection, parseSettings } from "../../nodes/lib/db/connection";
import { pgDialect } from "../../nodes/lib/db/pg";
import { TableReader, type TableReaderOptions } from "../../nodes/lib/db/table-reader";
import type { WatermarkPosition } from "../../nodes/lib/state-store";
import type { SyncMode, SyncRecord } from "../../nodes/lib/types";
import { PG_URL, configFromUrl, pgKnex, requireServer } from "../support/databases";

const TABLE = "copy_read_src";

/** Counts the COPY statements sent on `knex`'s connections. */
function countCopies(knex: Knex): { copies: number } {
  const counter = { copies: 0 };
  type Conn = { query(q: unknown, ...rest: unknown[]): unknown; __counted?: boolean };
  const client = knex.client as { acquireConnection(): Promise<Conn> };
  const acquire = client.acquireConnection.bind(client);
  client.acquireConnection = async () => {
    const conn = await acquire();
    if (!conn.__counted) {
      const query = conn.query.bind(conn);
      conn.query = (q: unknown, ...rest: unknown[]) => {
        if (/^copy \(/.test((q as { text?: string })?.text ?? "")) counter.copies += 1;
        return query(q, ...rest);
      };
      conn.__counted = true;
    }
    return conn;
  };
  return counter;
}

const BY_CURSOR: TableReaderOptions = {
  table: TABLE,
  keyColumns: ["k"],
  cursorColumn: "updated_at",
};

/** Every row, in batches of `size`; a batch after the first is read with COPY. */
async function readAll(
  connection: DbConnection,
  size: number,
  source = BY_CURSOR,
  mode: SyncMode = "incremental",
): Promise<SyncRecord[]> {
  const reader = new TableReader(connection, source);
  await reader.open(mode);
  const rows: SyncRecord[] = [];
  let after: WatermarkPosition | null = null;
  for (;;) {
    const batch = await reader.readBatch(after, size);
    if (batch.length === 0) return rows;
    rows.push(...batch);
    after = reader.positionOf(batch[batch.length - 1]);
  }
}

describe("PostgreSQL reads through COPY", function () {
  this.timeout(60_000);
  let admin: Knex;
  let connection: DbConnection;

  before(async function () {
    admin = pgKnex();
    await requireServer(this, "PostgreSQL", admin);
    await admin.raw(`drop table if exists ${TABLE}`);
    await admin.raw(
      `create table ${TABLE} (k text primary key, updated_at timestamptz not null, big bigint,
        amount numeric(30,10), flag boolean, ratio double precision, n integer, day date,
        naive timestamp, doc jsonb, tags text[], raw bytea, uid uuid, name text, note text)`,
    );
    const tie = "2026-03-01 10:00:00.000001+00";
    const rows: unknown[][] = [
      // [k, updated_at, big, amount, flag, ratio, n, day, naive, doc, tags, raw, uid, name, note]
      [
        "a'quote",
        tie,
        "9223372036854775807",
        "-12345678901234567890.0000000001",
        true,
        1e-300,
        7,
        "2028-02-29",
        "2026-03-01 10:00:00.5",
        JSON.stringify({ a: "\t\n", b: [1, 2] }),
        ["x,y", 'q"uote', "back\\slash"],
        Buffer.from([0, 255, 92, 10]),
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "tab\there",
        "line\nbreak\r\n",
      ],
      [
        "b\\backslash",
        tie,
        "-1",
        "0.0000000000",
        false,
        Number.NaN,
        -2147483648,
        "0001-01-01",
        "1999-12-31 23:59:59.999999",
        "[]",
        [],
        Buffer.alloc(0),
        null,
        "\\N",
        "",
      ],
      ["c$1 ' \\ ", tie, ...Array<null>(12).fill(null), "Grüße 🚀👩‍💻 日本語"],
      [
        "d",
        "2026-03-01 15:30:00.000002+05:30",
        "0",
        "1",
        true,
        -0.5,
        0,
        "2026-03-01",
        "2026-03-01 00:00:00",
        JSON.stringify({ nested: { deep: "\\" } }),
        ["\\N", ""],
        Buffer.from("\\x41"),
        null,
        "\u0001\u0008\f\v",
        null,
      ],
    ];
    for (const row of rows) {
      await admin.raw(
        `insert into ${TABLE} values (${row.map(() => "?").join(", ")})`,
        row as never[],
      );
    }
    await admin.raw(
      `insert into ${TABLE} (k, updated_at, name) select 'fill' || g, timestamptz '2026-03-02' + g * interval '1 ms', repeat('é', g)
       from generate_series(1, 40) g`,
    );
    connection = new DbConnection(parseSettings(configFromUrl(PG_URL), configFromUrl(PG_URL)));
  });

  after(async () => {
    await connection?.close();
    await admin?.destroy();
  });

  it("gives every value as the row protocol does, in batches of 1 to 7 rows", async () => {
    const counter = countCopies(connection.knex());
    // One batch by the row protocol, then an empty one by COPY ends the run.
    const protocol = await readAll(connection, 1000);
    assert.equal(counter.copies, 1);
    assert.equal(protocol.length, 44);
    assert.deepEqual(
      protocol.find((r) => r.k === "a'quote")?.raw,
      Buffer.from([0, 255, 92, 10]),
      "bytea as a Buffer",
    );
    for (const size of [1, 2, 7]) {
      const copied = await readAll(connection, size);
      assert.deepEqual(copied, protocol, `batches of ${size}`);
    }
    // Every batch after each run's first (and the empty one that ends it).
    assert.equal(counter.copies, 1 + 44 + 22 + 7);
  });

  it("reads each row once when keys with quotes, backslashes and $1 bound the batches", async () => {
    const keys = (await readAll(connection, 1)).map((r) => r.k);
    assert.equal(new Set(keys).size, 44);
    assert.deepEqual(keys.slice(0, 4), ["a'quote", "b\\backslash", "c$1 ' \\ ", "d"]);
    // The bounds were settings of each read's transaction: none is left on the session.
    const left = await connection.knex().raw("select current_setting('tributary.p1', true) as v");
    assert.ok(!left.rows[0].v, `tributary.p1 is still set: ${left.rows[0].v}`);
  });

  it("full mode with a two-column key: every row once, as the row protocol gives it", async () => {
    const pairs = { table: `${TABLE}_pairs`, keyColumns: ["a", "b"], cursorColumn: null };
    await admin.raw(`drop table if exists ${pairs.table}`);
    await admin.raw(
      `create table ${pairs.table} (a integer, b text, v numeric, primary key (a, b))`,
    );
    // Keys ending in a quote or a backslash.
    await admin.raw(
      `insert into ${pairs.table} select g % 3, 'b' || (g / 3) || case when g % 2 = 0 then '''' else '\\' end, g * 1.5
       from generate_series(1, 30) g`,
    );
    const protocol = await readAll(connection, 1000, pairs, "full");
    assert.equal(protocol.length, 30);
    assert.deepEqual(await readAll(connection, 4, pairs, "full"), protocol);
  });

  it("a batch bounded by a NULL, which a setting cannot carry, is read the usual way", async () => {
    const knex = connection.knex();
    const counter = countCopies(knex);
    const select = () =>
      knex(TABLE).select("*").whereRaw("coalesce(?, k) = k", [null]).orderBy("k");
    const first = await pgDialect.readRows!(knex, select(), null);
    const second = await pgDialect.readRows!(knex, select(), first.layout);
    assert.equal(second.rows.length, 44);
    assert.deepEqual(second.rows, first.rows);
    assert.equal(counter.copies, 0);
    assert.equal(second.layout.fast, true, "COPY stays on for the next batches");
  });

  it("a failing batch names the table; the connection stays usable", async () => {
    const reader = new TableReader(connection, BY_CURSOR);
    await reader.open("incremental");
    const first = await reader.readBatch(null, 1);
    await admin.raw(`alter table ${TABLE} rename to ${TABLE}_moved`);
    try {
      await assert.rejects(reader.readBatch(reader.positionOf(first[0]), 1), (err: Error) => {
        assert.match(err.message, new RegExp(TABLE));
        return true;
      });
    } finally {
      await admin.raw(`alter table ${TABLE}_moved rename to ${TABLE}`);
    }
    assert.equal((await readAll(connection, 5)).length, 44);
  });
});
