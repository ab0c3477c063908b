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
import {
  createMysqlCustomers,
  createPgCustomers,
  mysqlChecksum,
  pgChecksum,
  touchPgCustomers,
} from "../support/customers";
import { sources } from "../../nodes/lib/sources";
import { closeStateStores } from "../../nodes/lib/state-store";

const ROWS = 50_000;

function flow(table: string) {
  const pg = configFromUrl(PG_URL);
  const my = configFromUrl(MYSQL_URL);
  return {
    nodes: [
      {
        id: "pgconn",
        type: "tributary-db-connection",
        client: "pg",
        host: pg.host,
        port: pg.port,
        database: pg.database,
      },
      {
        id: "myconn",
        type: "tributary-db-connection",
        client: "mysql",
        host: my.host,
        port: my.port,
        database: my.database,
      },
      {
        id: "src",
        type: "tributary-db-source",
        connection: "pgconn",
        table,
        keyColumns: ["id"],
        cursorColumn: "updated_at",
        mode: "incremental",
        batchSize: 1000,
        wires: [["sink"], []],
      },
      {
        id: "sink",
        type: "tributary-upsert",
        connection: "myconn",
        table,
        keyColumns: ["id"],
        mode: "upsert",
        wires: [[], []],
      },
    ],
    credentials: {
      pgconn: { user: pg.user, password: pg.password },
      myconn: { user: my.user, password: my.password },
    },
  };
}

describe("PostgreSQL → MySQL sync (real servers)", function () {
  this.timeout(180_000);
  const table = "it_customers";
  let pg: Knex;
  let my: Knex;

  before(async function () {
    pg = pgKnex();
    my = mysqlKnex();
    await requireServer(this, "PostgreSQL", pg);
    await requireServer(this, "MySQL/MariaDB", my);
    useTempUserDir();
    await createPgCustomers(pg, table, ROWS);
    await createMysqlCustomers(my, table);
    const { nodes, credentials } = flow(table);
    await helper.load(allNodes, nodes, credentials);
  });

  after(async () => {
    await helper.unload();
    await closeStateStores();
    await pg?.destroy();
    await my?.destroy();
  });

  it("copies every row on the first run, verified by count and checksum over all columns", async () => {
    const summary = await sources.get("src")!.trigger();
    assert.equal(summary.status, "succeeded", summary.error);
    assert.equal(summary.counts.read, ROWS);
    assert.equal(summary.counts.insert, ROWS);
    assert.equal(summary.counts.batches, ROWS / 1000);
    assert.deepEqual(await mysqlChecksum(table), await pgChecksum(pg, table));
  });

  it("moves only the changed rows on the next run", async () => {
    const changed = await touchPgCustomers(pg, table, 10);
    assert.equal(changed, ROWS / 10);
    const summary = await sources.get("src")!.trigger();
    assert.equal(summary.status, "succeeded", summary.error);
    assert.equal(summary.counts.read, changed);
    assert.equal(summary.counts.update, changed);
    assert.equal(summary.counts.insert, 0);
    assert.deepEqual(await mysqlChecksum(table), await pgChecksum(pg, table));
  });

  it("reads nothing when nothing changed", async () => {
    const summary = await sources.get("src")!.trigger();
    assert.equal(summary.status, "succeeded", summary.error);
    assert.equal(summary.counts.read, 0);
  });
});
