import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DbConnection, parseSettings } from "../../nodes/lib/db/connection";
import { describeTableDetail, listTables } from "../../nodes/lib/db/discovery";
import { MYSQL_URL, PG_URL, configFromUrl } from "../support/databases";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-disc-"));
const SIDES = [
  {
    name: "PostgreSQL",
    connection: () => new DbConnection(parseSettings(configFromUrl(PG_URL), configFromUrl(PG_URL))),
    serial: "integer",
  },
  {
    name: "MariaDB",
    connection: () =>
      new DbConnection(parseSettings(configFromUrl(MYSQL_URL), configFromUrl(MYSQL_URL))),
    serial: "integer",
  },
  {
    name: "SQLite",
    connection: () =>
      new DbConnection(parseSettings({ client: "sqlite", filename: path.join(tmp, "d.sqlite") })),
    serial: "integer",
  },
];

for (const side of SIDES) {
  describe(`schema discovery on ${side.name}`, function () {
    this.timeout(30_000);
    let connection: DbConnection;

    before(async function () {
      connection = side.connection();
      try {
        await connection.test();
      } catch (err) {
        if (process.env.CI === "true") throw err;
        this.skip();
      }
      const knex = connection.knex();
      await knex.raw("drop table if exists disc_orders");
      await knex.raw("drop table if exists disc_accounts");
      await knex.raw(
        "create table disc_accounts (region varchar(10) not null, num integer not null, email varchar(100) not null, primary key (region, num), unique (email))",
      );
      await knex.raw(
        `create table disc_orders (id ${side.serial} primary key, region varchar(10), num integer, total decimal(10,2), placed_at varchar(40) null,
          foreign key (region, num) references disc_accounts (region, num))`,
      );
    });

    after(async () => connection?.close());

    it("lists tables", async () => {
      const tables = await listTables(connection);
      const names = tables.map((t) => t.name);
      assert.ok(names.includes("disc_accounts") && names.includes("disc_orders"), names.join());
      assert.equal(tables.find((t) => t.name === "disc_orders")!.type, "table");
    });

    it("describes columns, primary, unique and foreign keys", async () => {
      const accounts = await describeTableDetail(connection, "disc_accounts");
      assert.deepEqual(accounts.primaryKey, ["region", "num"]);
      assert.deepEqual(accounts.uniqueKeys, [["email"]]);
      assert.deepEqual(accounts.columns.map((c) => c.name).sort(), ["email", "num", "region"]);
      assert.equal(accounts.columns.find((c) => c.name === "email")!.nullable, false);
      const orders = await describeTableDetail(connection, "disc_orders");
      assert.deepEqual(orders.primaryKey, ["id"]);
      assert.deepEqual(orders.foreignKeys, [
        {
          columns: ["region", "num"],
          references: { table: "disc_accounts", columns: ["region", "num"] },
        },
      ]);
    });

    it("an unknown table is a clear error", async () => {
      await assert.rejects(
        describeTableDetail(connection, "disc_nope"),
        /table "disc_nope" was not found/,
      );
    });
  });
}
