/**
 * Transient failures while writing a batch: a deadlock in which the server picks the
 * writer as victim, and the writer's connection killed mid-batch. Both times the
 * batch is written once, on a retry, and the rolled-back attempt leaves nothing.
 */
import assert from "node:assert/strict";
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

interface Server {
  name: string;
  url: string;
  admin(): Knex;
  /** The server's id of the session running the writer's statement. */
  sessionOf(admin: Knex, table: string): Promise<number | null>;
  kill(admin: Knex, id: number): Promise<void>;
  /** Makes the server pick the writer, not the other transaction, as deadlock victim. */
  survivor(trx: Knex.Transaction): Promise<void>;
}

const servers: Server[] = [
  {
    name: "PostgreSQL",
    url: PG_URL,
    admin: pgKnex,
    async sessionOf(admin, table) {
      const r = await admin.raw(
        "select pid from pg_stat_activity where query ilike ? and pid <> pg_backend_pid() and state = 'active'",
        [`%insert into "${table}"%`],
      );
      return r.rows[0]?.pid ?? null;
    },
    async kill(admin, id) {
      await admin.raw("select pg_terminate_backend(?)", [id]);
    },
    // The session whose deadlock check fires first is aborted: make the other wait longer.
    async survivor(trx) {
      await trx.raw("set local deadlock_timeout = '10s'");
    },
  },
  {
    name: "MariaDB",
    url: MYSQL_URL,
    admin: mysqlKnex,
    // The writer's INSERT, not its lookup of existing keys: only the INSERT waits for
    // the row lock (matching any statement made the test race the writer).
    async sessionOf(admin, table) {
      const [rows] = await admin.raw(
        "select id from information_schema.processlist where info like ? and id <> connection_id()",
        [`%insert into \`${table}\`%`],
      );
      return (rows as Array<{ id: number }>)[0]?.id ?? null;
    },
    async kill(admin, id) {
      await admin.raw(`kill ${Number(id)}`);
    },
    // InnoDB aborts the transaction that changed fewer rows: make the other one heavier.
    async survivor(trx) {
      const ballast = Array.from({ length: 500 }, (_, i) => ({ id: 1000 + i, name: "ballast" }));
      await trx(TABLE).insert(ballast);
    },
  },
];

const TABLE = "retry_people";

async function until<T>(what: string, probe: () => Promise<T | null>): Promise<T> {
  for (let i = 0; i < 200; i += 1) {
    const value = await probe();
    if (value !== null) return value;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

for (const server of servers) {
  describe(`writes to ${server.name} survive transient failures`, function () {
    this.timeout(60_000);
    let admin: Knex;
    let connection: DbConnection;
    let statements: string[];

    before(async function () {
      admin = server.admin();
      await requireServer(this, server.name, admin);
    });

    beforeEach(async () => {
      await admin.raw(`drop table if exists ${TABLE}`);
      await admin.raw(`create table ${TABLE} (id bigint primary key, name varchar(40))`);
      await admin(TABLE).insert([
        { id: 1, name: "one" },
        { id: 2, name: "two" },
      ]);
      connection = new DbConnection(
        parseSettings(configFromUrl(server.url), configFromUrl(server.url)),
      );
      statements = [];
      connection.knex().on("query", (q: { sql: string }) => {
        if (/^insert/i.test(q.sql)) statements.push(q.sql);
      });
    });

    afterEach(async () => {
      await connection?.close();
    });

    after(async () => {
      await admin?.destroy();
    });

    const writer = () =>
      new TableWriter(connection, { table: TABLE, keyColumns: ["id"], mode: "upsert" });
    const batch = [
      { id: 1, name: "one from sync" },
      { id: 2, name: "two from sync" },
      { id: 3, name: "three from sync" },
    ];

    it("a deadlock that aborts the writer is retried and the batch lands once", async () => {
      const other = await admin.transaction();
      await server.survivor(other);
      await other(TABLE).where({ id: 2 }).update({ name: "two by someone else" });
      // The writer locks row 1, then waits for row 2 ...
      const writing = writer().write(batch);
      await until("the writer to wait for row 2", () => server.sessionOf(admin, TABLE));
      // ... while the other transaction now wants row 1: a deadlock.
      const otherUpdate = other(TABLE).where({ id: 1 }).update({ name: "one by someone else" });
      const otherResult = await otherUpdate.then(
        () => "updated",
        (err: Error) => `failed: ${err.message}`,
      );
      if (otherResult === "updated") await other.commit();
      else await other.rollback().catch(() => undefined);
      const result = await writing;
      assert.equal(otherResult, "updated", "the server picked the writer as the deadlock victim");
      assert.deepEqual(result.failed, [], "no record failed");
      assert.ok(statements.length >= 2, `the batch was retried (${statements.length} attempt(s))`);
      const rows = await admin(TABLE).where("id", "<", 1000).orderBy("id");
      assert.deepEqual(
        rows.map((r: { id: unknown; name: string }) => [Number(r.id), r.name]),
        [
          [1, "one from sync"],
          [2, "two from sync"],
          [3, "three from sync"],
        ],
      );
    });

    it("a connection killed mid-batch is retried on a fresh connection and writes each row once", async () => {
      const other = await admin.transaction();
      await other(TABLE).where({ id: 2 }).update({ name: "held" });
      const writing = writer().write(batch);
      const session = await until("the writer to block", () => server.sessionOf(admin, TABLE));
      await server.kill(admin, session);
      await new Promise((r) => setTimeout(r, 200));
      await other.rollback();
      const result = await writing;
      assert.deepEqual(result.failed, []);
      assert.ok(statements.length >= 2, `the batch was retried (${statements.length} attempt(s))`);
      assert.deepEqual(
        result.outcomes.map((o) => [o.key[0], o.action]),
        [
          [1, "update"],
          [2, "update"],
          [3, "insert"],
        ],
      );
      const [{ n }] = await admin(TABLE).count({ n: "*" });
      assert.equal(Number(n), 3);
      const three = await admin(TABLE).where({ id: 3 });
      assert.equal(three.length, 1);
      assert.equal(three[0].name, "three from sync");
    });
  });
}
