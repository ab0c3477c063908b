import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Knex } from "knex";
import { DbConnection, parseSettings } from "../../nodes/lib/db/connection";
import { TableWriter } from "../../nodes/lib/db/table-writer";
import {
  MYSQL_URL,
  PG_URL,
  configFromUrl,
  mysqlKnex,
  pgKnex,
  requireServer,
} from "../support/databases";
import type { SyncRecord } from "../../nodes/lib/types";

interface Target {
  name: string;
  admin(): Knex;
  connection(): DbConnection;
  createSql: string;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-iso-"));
const targets: Target[] = [
  {
    name: "PostgreSQL",
    admin: pgKnex,
    connection: () =>
      new DbConnection(parseSettings({ ...configFromUrl(PG_URL) }, configFromUrl(PG_URL))),
    createSql:
      "create table iso_people (id bigint primary key, name varchar(10) not null, score integer)",
  },
  {
    name: "MariaDB",
    admin: mysqlKnex,
    connection: () =>
      new DbConnection(parseSettings({ ...configFromUrl(MYSQL_URL) }, configFromUrl(MYSQL_URL))),
    createSql:
      "create table iso_people (id bigint primary key, name varchar(10) not null, score integer)",
  },
  {
    name: "SQLite",
    admin: () =>
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require("knex")({
        client: "better-sqlite3",
        connection: { filename: path.join(tmp, "iso.sqlite") },
        useNullAsDefault: true,
      }) as Knex,
    connection: () =>
      new DbConnection(parseSettings({ client: "sqlite", filename: path.join(tmp, "iso.sqlite") })),
    createSql:
      "create table iso_people (id integer primary key, name text not null check (length(name) <= 10), score integer)",
  },
];

function people(count: number, bad: Set<number>): SyncRecord[] {
  return Array.from({ length: count }, (_, i) => {
    const id = i + 1;
    if (!bad.has(id)) return { id, name: `p${id}`, score: id };
    return id % 2 ? { id, name: null, score: id } : { id, name: "far too long a name", score: id };
  });
}

for (const target of targets) {
  describe(`upsert to ${target.name}: bad rows are isolated`, function () {
    this.timeout(60_000);
    let admin: Knex;
    let connection: DbConnection;

    before(async function () {
      admin = target.admin();
      await requireServer(this, target.name, admin);
      await admin.raw("drop table if exists iso_people");
      await admin.raw(target.createSql);
      connection = target.connection();
    });

    after(async () => {
      await connection?.close();
      await admin?.destroy();
    });

    it("writes 997 of 1,000 rows and returns the 3 bad ones with the database's reason", async () => {
      const writer = new TableWriter(connection, {
        table: "iso_people",
        keyColumns: ["id"],
        mode: "upsert",
      });
      const bad = new Set([17, 500, 999]);
      const result = await writer.write(people(1000, bad));
      assert.deepEqual(
        result.failed.map((f) => f.record.id).sort((a, b) => Number(a) - Number(b)),
        [17, 500, 999],
      );
      for (const failure of result.failed)
        assert.match(failure.error, /null|long|check|constraint|too/i);
      const count = await admin("iso_people").count({ n: "*" });
      assert.equal(Number(count[0].n), 997);
      const actions = new Map<string, number>();
      for (const o of result.outcomes) actions.set(o.action, (actions.get(o.action) ?? 0) + 1);
      assert.equal(actions.get("insert"), 997);
      assert.equal(actions.get("failed"), 3);
    });

    it("reports updates and unchanged rows on a second write", async () => {
      const writer = new TableWriter(connection, {
        table: "iso_people",
        keyColumns: ["id"],
        mode: "upsert",
      });
      const records = people(10, new Set()).map((r) => (r.id === 3 ? { ...r, score: 333 } : r));
      const result = await writer.write(records);
      const byId = new Map(result.outcomes.map((o) => [String(o.key[0]), o.action]));
      assert.equal(byId.get("3"), "update");
      // MySQL's ON DUPLICATE KEY UPDATE cannot tell unchanged rows apart.
      assert.equal(byId.get("4"), target.name === "MariaDB" ? "update" : "unchanged");
      const row = await admin("iso_people").where({ id: 3 }).first();
      assert.equal(Number(row.score), 333);
    });

    it("fails the whole batch, without isolating, when the table does not exist", async () => {
      const writer = new TableWriter(connection, {
        table: "iso_missing",
        keyColumns: ["id"],
        mode: "upsert",
      });
      await assert.rejects(writer.write(people(3, new Set())), /table "iso_missing" was not found/);
    });
  });
}
