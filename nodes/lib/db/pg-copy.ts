/**
 * PostgreSQL's `COPY (select …) TO STDOUT` as the db source's read path: the server
 * sends each row as one line of text, split here in a few string operations instead of
 * the row protocol's per-message and per-field work (about half the CPU per row,
 * bench/RESULTS.md). Each value goes through the same text parser the row protocol
 * would use for its column type, so the records are the same.
 * https://www.postgresql.org/docs/current/sql-copy.html (File Formats: Text Format)
 */
import { StringDecoder } from "node:string_decoder";
import pg from "pg";
import { to as copyTo } from "pg-copy-streams";
import type { Knex } from "knex";
import type { SyncRecord, Value } from "../types";
import type { RowLayout } from "./dialect";

/**
 * `sql` with its `$n` placeholders replaced by the bindings as SQL literals, since COPY
 * takes no parameters; null when a value has no plain literal form (binary, arrays,
 * objects: the row protocol reads those). A literal is untyped, as a bound parameter
 * is, so the server resolves it the same way. Placeholders inside quotes are left alone.
 */
export function inlineBindings(sql: string, bindings: readonly unknown[]): string | null {
  const literals: string[] = [];
  for (const value of bindings) {
    const literal = sqlLiteral(value);
    if (literal === null) return null;
    literals.push(literal);
  }
  let out = "";
  let quote = "";
  for (let i = 0; i < sql.length; i += 1) {
    const c = sql[i];
    if (quote) {
      if (c === quote) quote = "";
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === "$" && /\d/.test(sql[i + 1] ?? "")) {
      const digits = /^\d+/.exec(sql.slice(i + 1))![0];
      const literal = literals[Number(digits) - 1];
      if (literal === undefined) return null;
      out += literal;
      i += digits.length;
      continue;
    }
    out += c;
  }
  return out;
}

function sqlLiteral(value: unknown): string | null {
  if (value === null || value === undefined) return "null";
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : null;
  if (typeof value === "bigint") return String(value);
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "string") return pg.escapeLiteral(value);
  if (value instanceof Date) return pg.escapeLiteral(value.toISOString());
  return null;
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

  constructor(private readonly layout: RowLayout) {}

  write(chunk: Buffer): void {
    const text = this.rest + this.decoder.write(chunk);
    this.rest = text.slice(this.readLines(text));
  }

  end(): SyncRecord[] {
    const text = this.rest + this.decoder.end();
    if (text) throw new Error("COPY output ended inside a row");
    return this.rows;
  }

  /** Reads every complete line; returns where the incomplete one starts. */
  private readLines(text: string): number {
    const { names, parsers } = this.layout;
    const last = names.length - 1;
    let start = 0;
    for (let end = text.indexOf("\n"); end >= 0; end = text.indexOf("\n", start)) {
      const record: SyncRecord = {};
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

/** The rows of `select`, read with COPY … TO STDOUT on a connection of `knex`'s pool. */
export async function copyRows(
  knex: Knex,
  select: string,
  layout: RowLayout,
): Promise<SyncRecord[]> {
  const client = knex.client as {
    acquireConnection(): Promise<pg.Client>;
    releaseConnection(conn: pg.Client): Promise<void>;
  };
  const conn = await client.acquireConnection();
  try {
    return await new Promise<SyncRecord[]>((resolve, reject) => {
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
  } finally {
    await client.releaseConnection(conn);
  }
}
