import assert from "node:assert/strict";
import path from "node:path";
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

// eslint-disable-next-line @typescript-eslint/no-require-imports
const conflictNode = require(
  path.resolve(__dirname, "../../nodes/conflict-resolve/conflict-resolve.js"),
) as unknown;

const STRATEGIES = ["source-wins", "target-wins", "newest-wins", "skip"] as const;

/**
 * Each strategy against a real target: PostgreSQL → MySQL. Row 1 is changed on both
 * sides after a first sync, the target's change being the newer one; row 2 only at
 * the source.
 */
describe("conflict strategies with a real MySQL target", function () {
  this.timeout(120_000);
  let pg: Knex;
  let my: Knex;

  before(async function () {
    pg = pgKnex();
    my = mysqlKnex();
    await requireServer(this, "PostgreSQL", pg);
    await requireServer(this, "MySQL/MariaDB", my);
    useTempUserDir();
    const p = configFromUrl(PG_URL);
    const m = configFromUrl(MYSQL_URL);
    const flow: unknown[] = [
      {
        id: "cs_pg",
        type: "tributary-db-connection",
        client: "pg",
        host: p.host,
        port: p.port,
        database: p.database,
      },
      {
        id: "cs_my",
        type: "tributary-db-connection",
        client: "mysql",
        host: m.host,
        port: m.port,
        database: m.database,
      },
    ];
    for (const strategy of STRATEGIES) {
      const t = `cs_${strategy.replace("-", "_")}`;
      await pg.raw(`drop table if exists ${t}`);
      await pg.raw(
        `create table ${t} (id int primary key, name text, updated_at timestamptz not null)`,
      );
      await pg.raw(
        `insert into ${t} values (1, 'one', '2026-01-01 00:00:00+00'), (2, 'two', '2026-01-01 00:00:00+00')`,
      );
      await my.raw(`drop table if exists ${t}`);
      await my.raw(
        `create table ${t} (id int primary key, name text, updated_at datetime(6) not null)`,
      );
      flow.push(
        {
          id: `src_${strategy}`,
          type: "tributary-db-source",
          connection: "cs_pg",
          table: t,
          keyColumns: ["id"],
          cursorColumn: "updated_at",
          mode: "incremental",
          wires: [[`cr_${strategy}`], []],
        },
        {
          id: `cr_${strategy}`,
          type: "tributary-conflict-resolve",
          connection: "cs_my",
          table: t,
          keyColumns: ["id"],
          strategy,
          sourceTimestamp: "updated_at",
          wires: [[`up_${strategy}`], []],
        },
        {
          id: `up_${strategy}`,
          type: "tributary-upsert",
          connection: "cs_my",
          table: t,
          keyColumns: ["id"],
          wires: [[], []],
        },
      );
    }
    await helper.load([...allNodes, conflictNode], flow, {
      cs_pg: { user: p.user, password: p.password },
      cs_my: { user: m.user, password: m.password },
    });
  });

  after(async () => {
    await helper.unload();
    await closeStateStores();
    await pg?.destroy();
    await my?.destroy();
  });

  const expected: Record<
    (typeof STRATEGIES)[number],
    { name: string; update: number; skipped: number }
  > = {
    "source-wins": { name: "pg side", update: 2, skipped: 0 },
    "target-wins": { name: "mysql side", update: 1, skipped: 1 },
    "newest-wins": { name: "mysql side", update: 1, skipped: 1 },
    skip: { name: "mysql side", update: 1, skipped: 1 },
  };

  for (const strategy of STRATEGIES) {
    it(`${strategy}: resolves a conflict as documented, and writes the one-sided change`, async () => {
      const t = `cs_${strategy.replace("-", "_")}`;
      const first = await sources.get(`src_${strategy}`)!.trigger();
      assert.equal(first.counts.insert, 2, first.error);
      await pg.raw(
        `update ${t} set name = 'pg side', updated_at = '2026-02-01 00:00:00+00' where id = 1`,
      );
      await pg.raw(
        `update ${t} set name = 'two v2', updated_at = '2026-02-01 00:00:00+00' where id = 2`,
      );
      await my.raw(
        `update ${t} set name = 'mysql side', updated_at = '2026-03-01 00:00:00' where id = 1`,
      );
      const second = await sources.get(`src_${strategy}`)!.trigger();
      assert.equal(second.status, "succeeded", second.error);
      assert.equal(second.counts.update, expected[strategy].update);
      assert.equal(second.counts.skipped, expected[strategy].skipped);
      const row1 = await my(t).where({ id: 1 }).first();
      assert.equal(row1.name, expected[strategy].name);
      const row2 = await my(t).where({ id: 2 }).first();
      assert.equal(row2.name, "two v2");
    });
  }

  it("newest-wins writes the source when the source is newer", async () => {
    await pg.raw(
      `update cs_newest_wins set name = 'pg newest', updated_at = '2026-04-01 00:00:00.000001+00' where id = 1`,
    );
    const run = await sources.get("src_newest-wins")!.trigger();
    assert.equal(run.counts.update, 1, JSON.stringify(run));
    const row = await my("cs_newest_wins").where({ id: 1 }).first();
    assert.equal(row.name, "pg newest");
  });

  it("a dry run computes the outcomes and writes nothing", async () => {
    await pg.raw(
      `update cs_source_wins set name = 'dry', updated_at = '2026-05-01 00:00:00+00' where id = 2`,
    );
    await pg.raw(`insert into cs_source_wins values (3, 'three', '2026-05-01 00:00:00+00')`);
    const dry = await sources.get("src_source-wins")!.trigger({ dryRun: true });
    assert.equal(dry.status, "succeeded", dry.error);
    assert.equal(dry.counts.update, 1);
    assert.equal(dry.counts.insert, 1);
    const rows = await my("cs_source_wins").orderBy("id");
    assert.deepEqual(
      rows.map((r: { name: string }) => r.name),
      ["pg side", "two v2"],
    );
    // The watermark did not move: the real run reads the same two rows.
    const real = await sources.get("src_source-wins")!.trigger();
    assert.equal(real.counts.read, 2);
    assert.equal(real.counts.insert + real.counts.update, 2);
  });
});
