/**
 * The `customers` workload of shared/BENCH.md, shared by the integration tests and
 * the benchmark: deterministic rows from generate_series, and a checksum over every
 * column computed by each database itself, so verification does not go through the
 * code under test.
 */
import { createHash } from "node:crypto";
import type { Knex } from "knex";
import { mysqlConnection } from "./databases";

/** The md5 of a text in hex, as PostgreSQL's md5() gives it: to compare an expected
 *  listing of records with one a database computed. */
export function md5(text: string): string {
  return createHash("md5").update(text).digest("hex");
}

export async function createPgCustomers(pg: Knex, table: string, rows: number): Promise<void> {
  await pg.raw(`drop table if exists ?? cascade`, [table]);
  await pg.raw(
    `create table ?? (id bigint primary key, email text, first_name text, last_name text, phone text,
      city text, country text, status text, balance numeric(12,2), created_at timestamptz, updated_at timestamptz)`,
    [table],
  );
  if (rows > 0) await insertPgCustomers(pg, table, 1, rows);
  await pg.raw(`create index ?? on ?? (updated_at, id)`, [`${table}_updated_at_id`, table]);
  await pg.raw(`analyze ??`, [table]);
}

export async function insertPgCustomers(
  pg: Knex,
  table: string,
  from: number,
  to: number,
): Promise<void> {
  await pg.raw(
    `insert into ?? select g, 'user' || g || '@example.com', 'First' || g, 'Last' || (g % 1000),
      '+1-555-' || lpad((g % 10000)::text, 4, '0'),
      (array['Berlin','Paris','Lisbon','Austin','Osaka'])[1 + g % 5],
      (array['DE','FR','PT','US','JP'])[1 + g % 5],
      (array['active','lead','churned'])[1 + g % 3],
      round(((g * 7.31) % 100000)::numeric, 2),
      timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' + (g % 997) * interval '1 microsecond',
      timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second' + (g % 991) * interval '1 microsecond'
    from generate_series(?::bigint, ?::bigint) g`,
    [table, from, to],
  );
}

/** Updates every 10th row the way BENCH.md's incremental job does; returns how many. */
export async function touchPgCustomers(pg: Knex, table: string, every = 10): Promise<number> {
  const result = await pg.raw(
    `update ?? set updated_at = clock_timestamp(), balance = balance + 1 where id % ? = 0`,
    [table, every],
  );
  return result.rowCount as number;
}

export async function createMysqlCustomers(my: Knex, table: string): Promise<void> {
  await my.raw(`drop table if exists ??`, [table]);
  await my.raw(
    `create table ?? (id BIGINT PRIMARY KEY, email TEXT, first_name TEXT, last_name TEXT, phone TEXT,
      city TEXT, country TEXT, status TEXT, balance DECIMAL(12,2), created_at DATETIME(6), updated_at DATETIME(6))
      character set utf8mb4`,
    [table],
  );
}

export interface Checksum {
  count: number;
  md5: string | null;
}

const COLUMNS = ["id", "email", "first_name", "last_name", "phone", "city", "country", "status"];

/**
 * Count and an order-independent checksum: two sums of 60-bit slices of each row's
 * md5 over all its columns as text. Sums, not one concatenated string, so a million
 * rows stay within MySQL's packet size.
 */
export async function pgChecksum(pg: Knex, table: string): Promise<Checksum> {
  const text = COLUMNS.map((c) => `coalesce(${c}::text, '\\N')`).join(", ");
  const ts = (c: string) =>
    `coalesce(to_char(${c} at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), '\\N')`;
  const row = `md5(concat_ws('|', ${text}, coalesce(balance::text, '\\N'), ${ts("created_at")}, ${ts("updated_at")}))`;
  const result = await pg.raw(
    `select count(*)::int as count,
            coalesce(sum(('x' || substr(${row}, 1, 15))::bit(60)::bigint), 0)::text as a,
            coalesce(sum(('x' || substr(${row}, 16, 15))::bit(60)::bigint), 0)::text as b
       from ??`,
    [table],
  );
  const r = result.rows[0] as { count: number; a: string; b: string };
  return { count: r.count, md5: `${r.a}-${r.b}` };
}

export async function mysqlChecksum(table: string): Promise<Checksum> {
  const conn = await mysqlConnection();
  try {
    const text = COLUMNS.map((c) => `coalesce(${c}, '\\\\N')`).join(", ");
    const ts = (c: string) => `coalesce(date_format(${c}, '%Y-%m-%d %H:%i:%s.%f'), '\\\\N')`;
    const row = `md5(concat_ws('|', ${text}, coalesce(balance, '\\\\N'), ${ts("created_at")}, ${ts("updated_at")}))`;
    const [rows] = await conn.query(
      `select count(*) as count,
              coalesce(sum(cast(conv(substr(${row}, 1, 15), 16, 10) as unsigned)), 0) as a,
              coalesce(sum(cast(conv(substr(${row}, 16, 15), 16, 10) as unsigned)), 0) as b
         from ??`,
      [table],
    );
    const r = (
      rows as Array<{ count: number | string; a: string | number; b: string | number }>
    )[0];
    return { count: Number(r.count), md5: `${String(r.a)}-${String(r.b)}` };
  } finally {
    await conn.end();
  }
}
