import type { ClientName, Dialect } from "./dialect";
import { pgDialect } from "./pg";
import { mysqlDialect } from "./mysql";
import { sqliteDialect } from "./sqlite";
import { mssqlDialect } from "./mssql";
import { oracleDialect } from "./oracle";

export const dialects: Record<ClientName, Dialect> = {
  pg: pgDialect,
  mysql: mysqlDialect,
  sqlite: sqliteDialect,
  mssql: mssqlDialect,
  oracle: oracleDialect,
};

export function dialectFor(client: string): Dialect | undefined {
  return (dialects as Record<string, Dialect | undefined>)[client];
}
