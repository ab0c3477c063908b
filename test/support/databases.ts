/**
 * The real database servers the tests use (TEST_PG_URL, TEST_MYSQL_URL, defaulting to
 * the local servers). Under CI=true an unreachable server fails the test run; locally
 * the tests that need it are skipped with the reason.
 */
import knexFactory, { type Knex } from "knex";
import mysql from "mysql2/promise";

export const PG_URL = process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
export const MYSQL_URL = process.env.TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test";

export interface DbConfig {
  client: "pg" | "mysql";
  host: string;
  port: string;
  database: string;
  user: string;
  password: string;
}

export function configFromUrl(url: string): DbConfig {
  const u = new URL(url);
  return {
    client: u.protocol.startsWith("postgres") ? "pg" : "mysql",
    host: u.hostname,
    port: u.port,
    database: decodeURIComponent(u.pathname.slice(1)),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
  };
}

export function pgKnex(): Knex {
  return knexFactory({ client: "pg", connection: PG_URL, pool: { min: 0, max: 2 } });
}

export function mysqlKnex(): Knex {
  const c = configFromUrl(MYSQL_URL);
  return knexFactory({
    client: "mysql2",
    connection: {
      host: c.host,
      port: Number(c.port || 3306),
      user: c.user,
      password: c.password,
      database: c.database,
      multipleStatements: true,
      charset: "utf8mb4",
    },
    pool: { min: 0, max: 2 },
  });
}

export async function mysqlConnection(): Promise<mysql.Connection> {
  const c = configFromUrl(MYSQL_URL);
  return mysql.createConnection({
    host: c.host,
    port: Number(c.port || 3306),
    user: c.user,
    password: c.password,
    database: c.database,
    charset: "utf8mb4",
  });
}

/** Call in a `before` hook: skips the suite locally, fails it under CI, when the server is down. */
export async function requireServer(ctx: Mocha.Context, name: string, db: Knex): Promise<void> {
  try {
    await db.raw("select 1");
  } catch (err) {
    const reason = `${name} is unreachable (${(err as Error).message})`;
    if (process.env.CI === "true") throw new Error(`${reason}: CI needs it; start the server`);
    console.warn(`    skipped: ${reason}`);
    ctx.skip();
  }
}
