/**
 * Every example flow (flows/, offered in Import > Examples) runs against the local
 * databases as shipped, configured only through environment variables.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import type { Knex } from "knex";
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
} from "../support/customers";
import { root, runCli, tempDir } from "./support";

const flows = path.join(root, "flows");

function example(prefix: string): string {
  const file = fs.readdirSync(flows).find((f) => f.startsWith(prefix));
  assert.ok(file, `no example ${prefix}`);
  return path.join(flows, file);
}

describe("example flows", function () {
  this.timeout(180_000);
  let pg: Knex;
  let my: Knex;
  const p = configFromUrl(PG_URL);
  const m = configFromUrl(MYSQL_URL);
  const env: NodeJS.ProcessEnv = {
    TRIBUTARY_USER_DIR: path.join(tempDir("tributary-examples-"), "user"),
    PG_HOST: p.host,
    PG_PORT: p.port,
    PG_DATABASE: p.database,
    PG_USER: p.user,
    PG_PASSWORD: p.password,
    MYSQL_HOST: m.host,
    MYSQL_PORT: m.port,
    MYSQL_DATABASE: m.database,
    MYSQL_USER: m.user,
    MYSQL_PASSWORD: m.password,
  };

  before(async function () {
    pg = pgKnex();
    my = mysqlKnex();
    await requireServer(this, "PostgreSQL", pg);
    await requireServer(this, "MySQL/MariaDB", my);
    await createPgCustomers(pg, "customers", 3_000);
    await createMysqlCustomers(my, "customers");
  });

  after(async () => {
    await pg?.destroy();
    await my?.destroy();
  });

  it("every example is a flow with a comment node explaining it, and no secret", () => {
    for (const file of fs.readdirSync(flows)) {
      const nodes = JSON.parse(fs.readFileSync(path.join(flows, file), "utf8")) as Array<
        Record<string, unknown>
      >;
      const comment = nodes.find((n) => n.type === "comment");
      assert.ok(comment && String(comment.info).length > 80, `${file} has no explaining comment`);
      for (const n of nodes.filter((x) => x.type === "tributary-db-connection")) {
        const creds = n.credentials as Record<string, string>;
        for (const value of [n.host, n.database, creds.user, creds.password])
          assert.match(String(value), /^\$\{[A-Z_]+\}$/, file);
      }
    }
  });

  it("01 PostgreSQL → MySQL incremental copies every customer, then only changes", async () => {
    const first = await runCli(["run", example("01")], env);
    assert.equal(first.code, 0, first.out);
    assert.match(first.out, /customers customers succeeded read=3000 written=3000/);
    assert.deepEqual(await mysqlChecksum("customers"), await pgChecksum(pg, "customers"));
    await pg.raw(
      "update customers set city = 'Porto', updated_at = clock_timestamp() where id <= 30",
    );
    const second = await runCli(["run", example("01")], env);
    assert.match(second.out, /customers customers succeeded read=30 written=30/);
    assert.deepEqual(await mysqlChecksum("customers"), await pgChecksum(pg, "customers"));
  });

  it("02 MySQL → PostgreSQL reshapes with the transform and holds back invalid records", async () => {
    // MySQL customers come from example 01 (or are copied here when it did not run).
    if (((await mysqlChecksum("customers")).count ?? 0) === 0) {
      const rows = await pg("customers").select();
      for (let i = 0; i < rows.length; i += 500)
        await my("customers").insert(rows.slice(i, i + 500));
    }
    await my.raw(
      "update customers set email = 'not an address', updated_at = now(6) where id in (7, 8)",
    );
    await pg.raw("drop table if exists contacts");
    await pg.raw(
      "create table contacts (id bigint primary key, email text not null, full_name text, country char(2), balance numeric(12,2), updated_at timestamptz)",
    );
    const result = await runCli(["run", example("02")], env);
    assert.notEqual(result.code, 0, "a run with invalid records is reported as failed");
    assert.match(result.out, /MySQL customers customers failed read=3000 written=2998 failed=2 /);
    assert.match(result.out, /2 record\(s\) failed/);
    const [{ n }] = await pg("contacts").count({ n: "*" });
    assert.equal(Number(n), 2998);
    assert.equal(await pg("contacts").whereIn("id", [7, 8]).first(), undefined);
    const c = await pg("contacts").where({ id: 42 }).first();
    const source = await my("customers").where({ id: 42 }).first();
    assert.equal(c.full_name, `${source.first_name} ${source.last_name}`);
    assert.equal(c.email, source.email.toLowerCase());
    assert.equal(c.country, source.country);
    assert.equal(Number(c.balance), Number(source.balance));
  });

  it("05 bidirectional with review writes nothing when both sides agree", async () => {
    const result = await runCli(["run", example("05")], env);
    assert.equal(result.code, 0, result.out);
    for (const line of result.out
      .trim()
      .split("\n")
      .filter((l) => / read=/.test(l)))
      assert.match(line, / written=0 /);
    await my.raw("update customers set status = 'vip', updated_at = now(6) where id = 5");
    const again = await runCli(["run", example("05")], env);
    assert.match(again.out, /MySQL customers customers succeeded read=1 written=1/);
    const row = await pg("customers").where({ id: 5 }).first();
    assert.equal(row.status, "vip");
  });

  it("06 nightly full reconciliation repairs a row changed behind the cursor's back", async () => {
    await my.raw("update customers set email = 'tampered@example.com' where id = 42");
    const result = await runCli(["run", example("06")], env);
    assert.equal(result.code, 0, result.out);
    assert.match(result.out, /all customers customers succeeded read=3000 /);
    const row = await my("customers").where({ id: 42 }).first();
    assert.equal(row.email, "user42@example.com");
  });
});
