/**
 * The `customers` workload of shared/BENCH.md, shared by the integration tests and
 * the benchmark: deterministic rows from generate_series, and a checksum over every
 * column computed by each database itself, so verification does not go through the
 * code under test.
 */
import type { Knex } from "knex";
import { mysqlConnection } from "./databases";

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

export async function pgChecksum(pg: Knex, table: string): Promise<Checksum> {
  const text = COLUMNS.map((c) => `coalesce(${c}::text, '\\N')`).join(", ");
  const ts = (c: string) =>
    `coalesce(to_char(${c} at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), '\\N')`;
  const result = await pg.raw(
    `select count(*)::int as count, md5(string_agg(concat_ws('|', ${text}, coalesce(balance::text, '\\N'),
      ${ts("created_at")}, ${ts("updated_at")}), E'\\n' order by id)) as md5 from ??`,
    [table],
  );
  return result.rows[0] as Checksum;
}

export async function mysqlChecksum(table: string): Promise<Checksum> {
  const conn = await mysqlConnection();
  try {
    await conn.query("set session group_concat_max_len = 1073741824");
    const text = COLUMNS.map((c) => `coalesce(${c}, '\\\\N')`).join(", ");
    const ts = (c: string) => `coalesce(date_format(${c}, '%Y-%m-%d %H:%i:%s.%f'), '\\\\N')`;
    const [rows] = await conn.query(
      `select count(*) as count, md5(group_concat(concat_ws('|', ${text}, coalesce(balance, '\\\\N'),
        ${ts("created_at")}, ${ts("updated_at")}) order by id separator '\\n')) as md5 from ??`,
      [table],
    );
    const row = (rows as Array<{ count: number | string; md5: string | null }>)[0];
    return { count: Number(row.count), md5: row.md5 };
  } finally {
    await conn.end();
  }
}
