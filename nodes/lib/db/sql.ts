/**
 * Small SQL-building pieces several dialects share. Identifiers always go through
 * knex's `??` quoting; values are always bound with `?`.
 */
import type { Knex } from "knex";

export function placeholders(count: number): string {
  return new Array<string>(count).fill("?").join(", ");
}

export function identifierList(count: number): string {
  return new Array<string>(count).fill("??").join(", ");
}

export function valuesList(rows: unknown[][]): { sql: string; bindings: unknown[] } {
  const width = rows[0]?.length ?? 0;
  const tuple = `(${placeholders(width)})`;
  const bindings: unknown[] = [];
  for (const row of rows) for (const value of row) bindings.push(value);
  return { sql: new Array<string>(rows.length).fill(tuple).join(", "), bindings };
}

/** A stable text form of a key, to match rows a database returns with rows sent. */
export function keyText(values: unknown[]): string {
  return values.map((v) => (Buffer.isBuffer(v) ? v.toString("hex") : String(v))).join("\u0001");
}

export function keyIndexes(chunk: { columns: string[]; key: string[] }): number[] {
  return chunk.key.map((k) => chunk.columns.indexOf(k));
}

/** Keys of the chunk's rows that already exist in the table. */
export async function existingKeys(
  trx: Knex.Transaction | Knex,
  chunk: { table: string; columns: string[]; key: string[]; rows: unknown[][] },
  rowValues: boolean,
): Promise<Set<string>> {
  const indexes = keyIndexes(chunk);
  const keys = chunk.rows.map((row) => indexes.map((i) => row[i]));
  let rows: Array<Record<string, unknown>>;
  if (chunk.key.length === 1) {
    rows = await trx(chunk.table)
      .select(chunk.key)
      .whereIn(chunk.key[0], keys.map((k) => k[0]) as never[]);
  } else if (rowValues) {
    const tuple = `(${placeholders(chunk.key.length)})`;
    rows = await trx(chunk.table)
      .select(chunk.key)
      .whereRaw(`(${identifierList(chunk.key.length)}) in (${keys.map(() => tuple).join(", ")})`, [
        ...chunk.key,
        ...keys.flat(),
      ] as never[]);
  } else {
    rows = await trx(chunk.table)
      .select(chunk.key)
      .where((qb) => {
        for (const key of keys) {
          qb.orWhere((inner) =>
            chunk.key.forEach((column, i) => inner.where(column, key[i] as never)),
          );
        }
      });
  }
  return new Set(rows.map((row) => keyText(chunk.key.map((k) => row[k]))));
}

/** What goes in place of `length` characters of SQL text. */
export interface SqlToken {
  text: string;
  length: number;
}

/**
 * `sql` rewritten where it is code: `token` is asked at each character outside quoted
 * strings, quoted identifiers and comments, and gives the text to put there (and how
 * many characters it replaces), or null to keep the character.
 */
export function rewriteSqlCode(
  sql: string,
  token: (sql: string, at: number) => SqlToken | null,
): string {
  let out = "";
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    const next = sql[i + 1];
    let end = -1;
    if (c === "'" || c === '"' || c === "`") end = closingQuote(sql, i, c);
    else if (c === "-" && next === "-") end = lineEnd(sql, i);
    else if (c === "/" && next === "*") end = commentEnd(sql, i);
    if (end >= 0) {
      out += sql.slice(i, end);
      i = end;
      continue;
    }
    const replaced = token(sql, i);
    if (replaced) {
      out += replaced.text;
      i += replaced.length;
    } else {
      out += c;
      i += 1;
    }
  }
  return out;
}

function closingQuote(sql: string, start: number, quote: string): number {
  let i = start + 1;
  while (i < sql.length) {
    if (sql[i] === quote) {
      if (sql[i + 1] === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i += 1;
  }
  return sql.length;
}

function lineEnd(sql: string, start: number): number {
  const end = sql.indexOf("\n", start);
  return end < 0 ? sql.length : end;
}

function commentEnd(sql: string, start: number): number {
  const end = sql.indexOf("*/", start + 2);
  return end < 0 ? sql.length : end + 2;
}
