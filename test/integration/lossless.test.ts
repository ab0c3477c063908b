import assert from "node:assert/strict";
import type { Knex } from "knex";
import { allNodes, helper, useTempUserDir } from "../support/red";
import {
  MYSQL_URL,
  PG_URL,
  configFromUrl,
  mysqlKnex,
  pgKnex,
  requireServer,
} from "../support/databases";
import { sources } from "../../nodes/lib/sources";
import { closeStateStores } from "../../nodes/lib/state-store";

// Values that a JavaScript number or Date would change.
const ROWS = [
  [
    1,
    "9007199254740993",
    "12345678901234567890.1234567890",
    "2026-03-01 10:00:00.123456+00",
    "Grüße 🚀👩‍💻",
    "x",
  ],
  [2, "-9223372036854775808", "0.0000000001", "1999-12-31 23:59:59.999999+00", "", null],
  [
    3,
    "9223372036854775807",
    "-99999999999999999999.9999999999",
    "2026-03-01 10:00:00.000001+05:30",
    "日本語 ✓",
    "",
  ],
  [4, "0", "0.0000000000", "2026-03-01 10:00:00+00", null, null],
];

describe("lossless values: PostgreSQL → MySQL → PostgreSQL", function () {
  this.timeout(60_000);
  let pg: Knex;
  let my: Knex;

  before(async function () {
    pg = pgKnex();
    my = mysqlKnex();
    await requireServer(this, "PostgreSQL", pg);
    await requireServer(this, "MySQL/MariaDB", my);
    useTempUserDir();
    for (const table of ["ll_src", "ll_back"]) {
      await pg.raw(`drop table if exists ${table}`);
      await pg.raw(
        `create table ${table} (id bigint primary key, big bigint, amount numeric(30,10), ts timestamptz, name text, note text)`,
      );
    }
    await my.raw("drop table if exists ll_mid");
    await my.raw(
      `create table ll_mid (id bigint primary key, big bigint, amount decimal(30,10), ts datetime(6), name text, note text)
       character set utf8mb4`,
    );
    for (const row of ROWS) await pg.raw(`insert into ll_src values (?, ?, ?, ?, ?, ?)`, row);
    const pgc = configFromUrl(PG_URL);
    const myc = configFromUrl(MYSQL_URL);
    await helper.load(
      allNodes,
      [
        {
          id: "c_pg",
          type: "tributary-db-connection",
          client: "pg",
          host: pgc.host,
          port: pgc.port,
          database: pgc.database,
        },
        {
          id: "c_my",
          type: "tributary-db-connection",
          client: "mysql",
          host: myc.host,
          port: myc.port,
          database: myc.database,
        },
        {
          id: "there",
          type: "tributary-db-source",
          connection: "c_pg",
          table: "ll_src",
          keyColumns: ["id"],
          cursorColumn: "ts",
          mode: "incremental",
          batchSize: 3,
          wires: [["w1"], []],
        },
        {
          id: "w1",
          type: "tributary-upsert",
          connection: "c_my",
          table: "ll_mid",
          keyColumns: ["id"],
          wires: [[], []],
        },
        {
          id: "back",
          type: "tributary-db-source",
          connection: "c_my",
          table: "ll_mid",
          keyColumns: ["id"],
          cursorColumn: "ts",
          mode: "incremental",
          batchSize: 3,
          wires: [["w2"], []],
        },
        {
          id: "w2",
          type: "tributary-upsert",
          connection: "c_pg",
          table: "ll_back",
          keyColumns: ["id"],
          wires: [[], []],
        },
      ],
      {
        c_pg: { user: pgc.user, password: pgc.password },
        c_my: { user: myc.user, password: myc.password },
      },
    );
  });

  after(async () => {
    await helper.unload();
    await closeStateStores();
    await pg?.destroy();
    await my?.destroy();
  });

  it("keeps bigint, numeric, timestamptz microseconds, emoji text and NULLs unchanged", async () => {
    const out = await sources.get("there")!.trigger();
    assert.equal(out.status, "succeeded", out.error);
    const back = await sources.get("back")!.trigger();
    assert.equal(back.status, "succeeded", back.error);
    assert.equal(back.counts.read, ROWS.length);
    const text = `select id, big::text, amount::text, to_char(ts at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') as ts, name, note`;
    const original = await pg.raw(`${text} from ll_src order by id`);
    const roundTrip = await pg.raw(`${text} from ll_back order by id`);
    assert.deepEqual(roundTrip.rows, original.rows);
    assert.equal(original.rows[2].ts, "2026-03-01 04:30:00.000001");
  });

  it("resumes a MySQL DATETIME(6) cursor exactly: the next run reads nothing", async () => {
    const again = await sources.get("back")!.trigger();
    assert.equal(again.status, "succeeded", again.error);
    assert.equal(again.counts.read, 0);
  });

  it("picks up a change one microsecond after the watermark", async () => {
    await my.raw(
      `update ll_mid set ts = '2026-03-01 10:00:00.123457', name = 'later' where id = 1`,
    );
    const next = await sources.get("back")!.trigger();
    assert.equal(next.counts.read, 1);
    const row = await pg.raw(
      `select name, to_char(ts at time zone 'UTC', 'HH24:MI:SS.US') as t from ll_back where id = 1`,
    );
    assert.deepEqual(row.rows[0], { name: "later", t: "10:00:00.123457" });
  });
});
