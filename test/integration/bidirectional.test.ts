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
import { closeStateStores, stateStoreFor } from "../../nodes/lib/state-store";
import type { RunSummary } from "../../nodes/lib/types";
import { waitFor } from "../e2e/support";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const conflictNode = require(
  path.resolve(__dirname, "../../nodes/conflict-resolve/conflict-resolve.js"),
) as unknown;

const written = (s: RunSummary) => s.counts.insert + s.counts.update;

async function run(id: string): Promise<RunSummary> {
  const summary = await sources.get(id)!.trigger();
  assert.notEqual(summary.status, "failed", summary.error);
  return summary;
}

describe("bidirectional PostgreSQL ⇄ MySQL without ping-pong", function () {
  this.timeout(120_000);
  let pg: Knex;
  let my: Knex;
  let userDir: string;

  before(async function () {
    pg = pgKnex();
    my = mysqlKnex();
    await requireServer(this, "PostgreSQL", pg);
    await requireServer(this, "MySQL/MariaDB", my);
    userDir = useTempUserDir();
    await pg.raw("drop table if exists bi_customers");
    await pg.raw(
      "create table bi_customers (id bigint primary key, name text, amount numeric(12,2), updated_at timestamptz not null)",
    );
    await pg.raw(
      `insert into bi_customers select g, 'name ' || g, g * 1.25, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second' from generate_series(1, 100) g`,
    );
    await my.raw("drop table if exists bi_customers");
    await my.raw(
      "create table bi_customers (id bigint primary key, name text, amount decimal(12,2), updated_at datetime(6) not null) character set utf8mb4",
    );
    const p = configFromUrl(PG_URL);
    const m = configFromUrl(MYSQL_URL);
    await helper.load(
      [...allNodes, conflictNode],
      [
        {
          id: "bi_pg",
          type: "tributary-db-connection",
          client: "pg",
          host: p.host,
          port: p.port,
          database: p.database,
        },
        {
          id: "bi_my",
          type: "tributary-db-connection",
          client: "mysql",
          host: m.host,
          port: m.port,
          database: m.database,
        },
        {
          id: "toMy",
          type: "tributary-db-source",
          connection: "bi_pg",
          table: "bi_customers",
          keyColumns: ["id"],
          cursorColumn: "updated_at",
          mode: "incremental",
          wires: [["crMy"], []],
        },
        {
          id: "crMy",
          type: "tributary-conflict-resolve",
          connection: "bi_my",
          table: "bi_customers",
          keyColumns: ["id"],
          strategy: "manual",
          wires: [["upMy"], ["conflicts"]],
        },
        {
          id: "upMy",
          type: "tributary-upsert",
          connection: "bi_my",
          table: "bi_customers",
          keyColumns: ["id"],
          wires: [[], []],
        },
        {
          id: "toPg",
          type: "tributary-db-source",
          connection: "bi_my",
          table: "bi_customers",
          keyColumns: ["id"],
          cursorColumn: "updated_at",
          mode: "incremental",
          wires: [["crPg"], []],
        },
        {
          id: "crPg",
          type: "tributary-conflict-resolve",
          connection: "bi_pg",
          table: "bi_customers",
          keyColumns: ["id"],
          strategy: "manual",
          wires: [["upPg"], []],
        },
        {
          id: "upPg",
          type: "tributary-upsert",
          connection: "bi_pg",
          table: "bi_customers",
          keyColumns: ["id"],
          wires: [[], []],
        },
        { id: "conflicts", type: "helper" },
      ],
      {
        bi_pg: { user: p.user, password: p.password },
        bi_my: { user: m.user, password: m.password },
      },
    );
  });

  after(async () => {
    await helper.unload();
    await closeStateStores();
    await pg?.destroy();
    await my?.destroy();
  });

  it("copies once, and the echo of its own writes comes back as zero writes", async () => {
    assert.equal(written(await run("toMy")), 100);
    const back = await run("toPg");
    assert.equal(back.counts.read, 100);
    assert.equal(written(back), 0);
    assert.equal(back.counts.unchanged, 100);
  });

  it("after both directions ran twice with no new changes, nothing is written", async () => {
    for (let round = 0; round < 2; round += 1) {
      const [a, b] = await Promise.all([run("toMy"), run("toPg")]);
      assert.equal(written(a) + written(b), 0, `round ${round}`);
    }
  });

  it("a change on either side crosses once and does not bounce back", async () => {
    await pg.raw(
      "update bi_customers set name = 'pg edit', updated_at = clock_timestamp() where id = 1",
    );
    assert.equal((await run("toMy")).counts.update, 1);
    assert.equal(written(await run("toPg")), 0);
    await my.raw("update bi_customers set amount = 999.99, updated_at = now(6) where id = 2");
    assert.equal((await run("toPg")).counts.update, 1);
    assert.equal(written(await run("toMy")), 0);
    assert.equal(written(await run("toPg")), 0);
    const mine = await my("bi_customers").where({ id: 1 }).first();
    assert.equal(mine.name, "pg edit");
    const theirs = await pg("bi_customers").where({ id: 2 }).first();
    assert.equal(theirs.amount, "999.99");
  });

  it("a record changed on both sides goes to the review queue; taking the source writes it on the next run", async () => {
    await pg.raw(
      "update bi_customers set name = 'from pg', updated_at = clock_timestamp() where id = 3",
    );
    await my.raw("update bi_customers set name = 'from mysql', updated_at = now(6) where id = 3");
    const conflicts = helper.getNode("conflicts");
    const seen = new Promise<Record<string, unknown>>((resolve) =>
      conflicts.on("input", (msg: never) => resolve(msg)),
    );
    const summary = await run("toMy");
    assert.equal(summary.counts.conflict, 1);
    assert.equal(written(summary), 0);
    const msg = await seen;
    const [conflict] = msg.payload as Array<{
      key: unknown[];
      source: { name: string };
      target: { name: string };
      reviewId: number;
    }>;
    assert.equal(conflict.source.name, "from pg");
    assert.equal(conflict.target.name, "from mysql");
    const store = await stateStoreFor(userDir);
    const open = await store.listReview({ status: "open" });
    assert.equal(open.length, 1);
    assert.ok(await store.resolveReview(open[0].id, "source", "test"));
    await pg.raw(
      "update bi_customers set name = 'another', updated_at = clock_timestamp() where id = 4",
    );
    const next = await run("toMy");
    assert.equal(next.counts.update, 2);
    const row = await my("bi_customers").where({ id: 3 }).first();
    assert.equal(row.name, "from pg");
    // Marked applied with the batch's sync states, once the upsert settled it: that save
    // may still be under way when the run's summary arrives.
    await waitFor(
      "the review item marked applied",
      async () => (await store.listReview({ status: "applied" })).length > 0,
      5_000,
    );
    assert.equal((await store.listReview({ status: "applied" })).length, 1);
  });
});
