/**
 * PostgreSQL's `COPY (select …) TO STDOUT` as the db source's read path: the server
 * sends each row as one line of text, split here in a few string operations instead of
 * the row protocol's per-message and per-field work (about half the CPU per row,
 * bench/RESULTS.md). Each value goes through the same text parser the row protocol
 * would use for its column type, so the records are the same.
 * https://www.postgresql.org/docs/current/sql-copy.html (File Formats: Text Format)
 */
import { StringDecoder } from "node:string_decoder";
import type pg from "pg";
import { to as copyTo } from "pg-copy-streams";
import type { Knex } from "knex";
import type { SyncRecord, Value } from "../types";
import type { RowLayout } from "./dialect";
import { rewriteSqlCode } from "./sql";

/**
 * `sql` with each `$n` placeholder read from the setting `tributary.p<n>` and cast to
 * the type the server gave the parameter: COPY takes no parameters, and values are
 * never spliced into SQL, so the batch's bounds travel as bound parameters of a
 * set_config just before (boundSettings). A cast from text is what the server does to a
 * parameter sent as text, so the select means the same.
 */
export function settingsSelect(sql: string, types: readonly string[]): string {
  return rewriteSqlCode(sql, (text, at) => {
    const digits = text[at] === "$" ? /^\d+/.exec(text.slice(at + 1))?.[0] : undefined;
    if (!digits) return null;
    const type = types[Number(digits) - 1];
    if (type === undefined) throw new Error(`no type for parameter $${digits}`);
    return { text: `current_setting('tributary.p${digits}')::${type}`, length: 1 + digits.length };
  });
}

/** The statement that sets `tributary.p<n>` to each binding, bound as a parameter, for
 *  the current transaction only. */
export function boundSettings(count: number): string {
  const sets = Array.from(
    { length: count },
    (_, i) => `set_config('tributary.p${i + 1}', $${i + 1}, true)`,
  );
  return `select ${sets.join(", ")}`;
}

const ESCAPED: Record<string, string> = {
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
  v: "\v",
};

/** A field's text without COPY's backslash escapes (COPY TO writes no octal or hex ones). */
function unescapeField(text: string): string {
  return text.replace(/\\(.)/gs, (_, c: string) => ESCAPED[c] ?? c);
}

/** Records from COPY's text format, fed chunk by chunk as they arrive. */
export class CopyTextRows {
  readonly rows: SyncRecord[] = [];
  private readonly decoder = new StringDecoder("utf8");
  /** The start of a line whose end has not arrived yet. */
  private rest = "";
  /**
   * Every column, in order, set to null: each record starts as a copy of it. V8 copies
   * the object with room for every field, where adding fields one by one to `{}` grows
   * its property store several times: about 100 fewer bytes allocated per record
   * (11 columns), so fewer young-generation collections per run.
   */
  private readonly template: SyncRecord;

  constructor(private readonly layout: RowLayout) {
    this.template = Object.fromEntries(layout.names.map((name) => [name, null]));
  }

  write(chunk: Buffer): void {
    const text = this.decoder.write(chunk);
    let start = 0;
    if (this.rest) {
      // Only the row cut by the previous chunk is joined to the new text: joining the
      // whole chunk would copy every row of it once more.
      const end = text.indexOf("\n");
      if (end < 0) {
        this.rest += text;
        return;
      }
      this.readLines(this.rest + text.slice(0, end + 1), 0);
      start = end + 1;
    }
    this.rest = text.slice(this.readLines(text, start));
  }

  end(): SyncRecord[] {
    const text = this.rest + this.decoder.end();
    if (text) throw new Error("COPY output ended inside a row");
    return this.rows;
  }

  /** Reads every complete line from `start`; returns where the incomplete one starts. */
  private readLines(text: string, start: number): number {
    const { names, parsers } = this.layout;
    const last = names.length - 1;
    for (let end = text.indexOf("\n", start); end >= 0; end = text.indexOf("\n", start)) {
      const record: SyncRecord = { ...this.template };
      let from = start;
      for (let i = 0; i <= last; i += 1) {
        // Tabs and newlines in values are escaped: a raw one always separates.
        const tab = text.indexOf("\t", from);
        const to = i === last ? end : tab;
        if (i === last ? tab >= 0 && tab < end : tab < 0 || tab > end)
          throw this.misshapen(text.slice(start, end));
        const field = text.slice(from, to);
        record[names[i]] =
          field === "\\N"
            ? null
            : (parsers[i](field.includes("\\") ? unescapeField(field) : field) as Value);
        from = to + 1;
      }
      this.rows.push(record);
      start = end + 1;
    }
    return start;
  }

  private misshapen(line: string): Error {
    const fields = line.split("\t").length;
    return new Error(`COPY row has ${fields} field(s), expected ${this.layout.names.length}`);
  }
}

type PgConnection = pg.Client;

/** The type the server gives each parameter of `sql` (as it would a bound one), as SQL
 *  type names (regtype, quoted where needed). */
async function parameterTypes(conn: PgConnection, sql: string): Promise<string[]> {
  const name = "tributary_copy_types";
  await conn.query(`prepare ${name} as ${sql}`);
  try {
    const result = await conn.query<{ types: string[] }>(
      "select parameter_types::text[] as types from pg_prepared_statements where name = $1",
      [name],
    );
    return result.rows[0].types;
  } finally {
    await conn.query(`deallocate ${name}`);
  }
}

/** Parameter types learnt per run (layout) and select text. */
const typesSeen = new WeakMap<RowLayout, Map<string, string[]>>();

/**
 * The rows of `sql` (with `$n` placeholders for `bindings`), read with COPY … TO STDOUT
 * on a connection of `knex`'s pool; null when a binding is NULL (set_config cannot
 * carry it), for the row protocol to read.
 */
export async function copyRows(
  knex: Knex,
  sql: string,
  bindings: readonly unknown[],
  layout: RowLayout,
): Promise<SyncRecord[] | null> {
  if (bindings.some((b) => b === null || b === undefined)) return null;
  const client = knex.client as {
    acquireConnection(): Promise<PgConnection>;
    releaseConnection(conn: PgConnection): Promise<void>;
  };
  const conn = await client.acquireConnection();
  try {
    // One transaction keeps the settings and the COPY on one server session, even
    // behind a pooler that hands out sessions per transaction, and ends the settings.
    await conn.query("begin");
    try {
      let seen = typesSeen.get(layout);
      if (!seen) typesSeen.set(layout, (seen = new Map()));
      let types = seen.get(sql);
      if (!types) seen.set(sql, (types = await parameterTypes(conn, sql)));
      if (bindings.length) await conn.query(boundSettings(bindings.length), [...bindings]);
      const rows = await streamCopy(conn, settingsSelect(sql, types), layout);
      await conn.query("commit");
      return rows;
    } catch (err) {
      await conn.query("rollback").catch(() => undefined);
      throw err;
    }
  } finally {
    await client.releaseConnection(conn);
  }
}

function streamCopy(conn: PgConnection, select: string, layout: RowLayout): Promise<SyncRecord[]> {
  return new Promise<SyncRecord[]>((resolve, reject) => {
    const rows = new CopyTextRows(layout);
    // A row that cannot be read fails the batch once the output has ended: stopping
    // the stream midway would leave the connection inside the COPY.
    let failure: Error | null = null;
    const stream = conn.query(copyTo(`copy (${select}) to stdout`));
    stream.on("data", (chunk: Buffer) => {
      if (failure) return;
      try {
        rows.write(chunk);
      } catch (err) {
        failure = err as Error;
      }
    });
    stream.on("error", reject);
    stream.on("end", () => {
      try {
        if (failure) throw failure;
        resolve(rows.end());
      } catch (err) {
        reject(err);
      }
    });
  });
}
