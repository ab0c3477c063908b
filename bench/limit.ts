/**
 * The "limit" contender of shared/BENCH.md: PostgreSQL COPY ... TO STDOUT streamed
 * into MySQL LOAD DATA LOCAL INFILE. Variant "staging" loads a staging table, then
 * runs one set-based upsert; variant "replace" loads straight into the target with
 * REPLACE. The fastest this machine can move the data.
 */
import fs from "node:fs";
import { spawn } from "node:child_process";
import { PassThrough } from "node:stream";
import mysql from "mysql2/promise";
import pg from "pg";
import { SOURCE_TABLE, report } from "./common";

const started = performance.now();
const [variant, stateFile] = process.argv.slice(2);
const pgUrl = process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const my = new URL(process.env.TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test");
const ts = (c: string) => `to_char(${c} at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')`;
const SELECT = `id, email, first_name, last_name, phone, city, country, status, balance, ${ts("created_at")}, ${ts("updated_at")}`;
const LIST =
  "id, email, first_name, last_name, phone, city, country, status, balance, created_at, updated_at";

async function main() {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  const after: [string, string] | null = fs.existsSync(stateFile)
    ? JSON.parse(fs.readFileSync(stateFile, "utf8"))
    : null;
  const where = after
    ? `where (updated_at, id) > ('${after[0]}'::timestamptz, ${Number(after[1])})`
    : "";
  const bound = await client.query(`select max(updated_at)::text as u from ${SOURCE_TABLE}`);
  const conn = await mysql.createConnection({
    host: my.hostname,
    port: Number(my.port || 3306),
    user: decodeURIComponent(my.username),
    password: decodeURIComponent(my.password),
    database: my.pathname.slice(1),
  });
  const into = variant === "staging" ? `${SOURCE_TABLE}_stage` : SOURCE_TABLE;
  if (variant === "staging") {
    await conn.query(`create temporary table ${into} like ${SOURCE_TABLE}`);
  }
  // COPY's text format (tab-separated, \N for NULL, backslash escapes) is LOAD DATA's default.
  const u = new URL(pgUrl);
  const psql = spawn("psql", [
    "-h",
    u.hostname,
    "-p",
    u.port || "5432",
    "-U",
    decodeURIComponent(u.username),
    "-d",
    u.pathname.slice(1),
    "-qAt",
    "-c",
    `\\copy (select ${SELECT} from ${SOURCE_TABLE} ${where}) to stdout`,
  ]);
  const stream = psql.stdout.pipe(new PassThrough());
  const [loaded] = (await conn.query({
    sql: `load data local infile 'copy' ${variant === "replace" ? "replace" : ""} into table ${into} character set utf8mb4 (${LIST})`,
    infileStreamFactory: () => stream as never,
  } as never)) as unknown as [{ affectedRows: number }];
  if (variant === "staging") {
    const update = LIST.split(", ")
      .filter((c) => c !== "id")
      .map((c) => `${c} = values(${c})`)
      .join(", ");
    await conn.query(
      `insert into ${SOURCE_TABLE} (${LIST}) select ${LIST} from ${into} on duplicate key update ${update}`,
    );
  }
  const moved =
    variant === "staging"
      ? loaded.affectedRows
      : (await client.query(`select count(*)::int as n from ${SOURCE_TABLE} ${where}`)).rows[0].n;
  const last = await client.query(
    `select updated_at::text as u, id::text as id from ${SOURCE_TABLE} order by updated_at desc, id desc limit 1`,
  );
  fs.writeFileSync(
    stateFile,
    JSON.stringify(last.rows[0] ? [last.rows[0].u, last.rows[0].id] : [bound.rows[0].u, "0"]),
  );
  await conn.end();
  await client.end();
  report(moved, started);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
