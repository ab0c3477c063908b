/**
 * The "hand-written" contender of shared/BENCH.md: what a competent engineer writes
 * with knex in about 40 lines. Keyset pages of 5,000 over (updated_at, id) from
 * PostgreSQL, multi-row INSERT ... ON DUPLICATE KEY UPDATE in batches of 1,000.
 */
import fs from "node:fs";
import knexFactory from "knex";
import pg from "pg";
import { COLUMNS, SOURCE_TABLE, report } from "./common";

const started = performance.now();
const [stateFile] = process.argv.slice(2);
const pgUrl = process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const my = new URL(process.env.TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test");

// Timestamps as UTC text with microseconds; MySQL DATETIME(6) takes "YYYY-MM-DD HH:MM:SS.ffffff".
const asText = (t: string) => t.replace(/\+00$/, "");
const types = {
  getTypeParser: (oid: number, format?: string) =>
    oid === 1184 ? asText : pg.types.getTypeParser(oid, format as "text"),
};

async function main() {
  const source = knexFactory({
    client: "pg",
    connection: { connectionString: pgUrl, options: "-c TimeZone=UTC", types } as never,
  });
  const target = knexFactory({
    client: "mysql2",
    connection: {
      host: my.hostname,
      port: Number(my.port || 3306),
      user: decodeURIComponent(my.username),
      password: decodeURIComponent(my.password),
      database: my.pathname.slice(1),
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
      timezone: "Z",
    },
  });
  let after: [string, string] | null = fs.existsSync(stateFile)
    ? JSON.parse(fs.readFileSync(stateFile, "utf8"))
    : null;
  let moved = 0;
  for (;;) {
    const q = source(SOURCE_TABLE)
      .select(COLUMNS)
      .orderBy([{ column: "updated_at" }, { column: "id" }])
      .limit(5000);
    if (after) q.whereRaw("(updated_at, id) > (?::timestamptz, ?)", after);
    const rows = await q;
    if (rows.length === 0) break;
    for (let i = 0; i < rows.length; i += 1000) {
      await target(SOURCE_TABLE)
        .insert(rows.slice(i, i + 1000))
        .onConflict()
        .merge();
    }
    const last = rows[rows.length - 1];
    after = [`${last.updated_at}+00`, String(last.id)];
    moved += rows.length;
  }
  fs.writeFileSync(stateFile, JSON.stringify(after));
  await source.destroy();
  await target.destroy();
  report(moved, started);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
