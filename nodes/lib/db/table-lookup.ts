/**
 * The target rows of a batch, found with one query per chunk of keys (never one
 * query per record), read lossless like a source reads them.
 */
import type { SyncRecord } from "../types";
import { keyString } from "../conflict/record-hash";
import { requireColumns, type DbConnection } from "./connection";

export async function lookupByKeys(
  connection: DbConnection,
  table: string,
  keyColumns: string[],
  records: SyncRecord[],
): Promise<{ rows: Map<string, SyncRecord>; fields: Set<string> }> {
  const info = await connection.describe(table);
  requireColumns(info, keyColumns, "key column", connection.label);
  const rows = new Map<string, SyncRecord>();
  const fields = new Set(info.columns.map((c) => c.name));
  const { dialect } = connection;
  const perQuery = Math.max(
    1,
    // One query for a whole batch where the dialect allows it (a round trip per 1,000
    // keys cost a 5,000-record batch five); Oracle and SQL Server cap IN lists themselves.
    Math.min(Math.floor(dialect.maxParameters / keyColumns.length), dialect.maxRows ?? Infinity),
  );
  for (let start = 0; start < records.length; start += perQuery) {
    const slice = records.slice(start, start + perQuery);
    const query = connection.knex()(table).select(connection.selectList(info.columns));
    const byName = new Map(info.columns.map((c) => [c.name, c]));
    const bind = (column: string, record: SyncRecord) =>
      dialect.toDbValue(byName.get(column)!, record[column] ?? null);
    if (keyColumns.length === 1) {
      query.whereIn(keyColumns[0], slice.map((r) => bind(keyColumns[0], r)) as never[]);
    } else {
      query.where((qb) => {
        for (const r of slice)
          qb.orWhere((inner) => keyColumns.forEach((k) => inner.where(k, bind(k, r) as never)));
      });
    }
    let found: SyncRecord[];
    try {
      found = connection.lossless(info.columns, (await query) as SyncRecord[]);
    } catch (err) {
      throw connection.explain(err, `looking up rows of table "${table}"`);
    }
    for (const row of found) rows.set(keyString(row, keyColumns), row);
  }
  return { rows, fields };
}

/**
 * Checks at deploy that the table and the key columns exist, and runs the lookup's
 * select once without rows, so a typo shows before the first run and the driver has
 * built its row parser before the first batch waits on it.
 */
export async function checkLookup(
  connection: DbConnection,
  table: string,
  keyColumns: string[],
): Promise<void> {
  const info = await connection.describe(table);
  requireColumns(info, keyColumns, "key column", connection.label);
  try {
    await connection.knex()(table).select(connection.selectList(info.columns)).whereRaw("1 = 0");
  } catch (err) {
    throw connection.explain(err, `looking up rows of table "${table}"`);
  }
}
