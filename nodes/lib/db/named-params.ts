/**
 * Named parameters in an analyst's SQL (`:last_sync_timestamp`, `:region`) turned into
 * bound `?` placeholders. Values are never spliced into the text. Quoted strings,
 * quoted identifiers, comments and PostgreSQL's `::type` casts are left alone.
 */
import { TributaryError } from "./errors";

export type ParamValue = string | number | boolean | null;

export interface CompiledQuery {
  sql: string;
  names: string[];
}

export function compileNamedParams(sql: string): CompiledQuery {
  let out = "";
  const names: string[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    const next = sql[i + 1];
    if (c === "'" || c === '"' || c === "`") {
      const end = closingQuote(sql, i, c);
      out += sql.slice(i, end);
      i = end;
    } else if (c === "-" && next === "-") {
      const end = sql.indexOf("\n", i);
      const stop = end < 0 ? sql.length : end;
      out += sql.slice(i, stop);
      i = stop;
    } else if (c === "/" && next === "*") {
      const end = sql.indexOf("*/", i + 2);
      const stop = end < 0 ? sql.length : end + 2;
      out += sql.slice(i, stop);
      i = stop;
    } else if (c === ":" && next === ":") {
      out += "::";
      i += 2;
    } else if (c === ":" && /[A-Za-z_]/.test(next ?? "")) {
      const match = /^[A-Za-z_][A-Za-z0-9_]*/.exec(sql.slice(i + 1))!;
      names.push(match[0]);
      out += "?";
      i += 1 + match[0].length;
    } else if (c === "?") {
      // A literal ? would shift every binding after it.
      throw new TributaryError(
        "config",
        'the query contains "?": use named parameters like :name instead',
      );
    } else {
      out += c;
      i += 1;
    }
  }
  return { sql: out, names };
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

/** The bindings for a compiled query; a missing or mistyped value is an error naming it. */
export function bindNamedParams(
  query: CompiledQuery,
  values: Record<string, unknown>,
): ParamValue[] {
  return query.names.map((name) => {
    if (!(name in values)) {
      throw new TributaryError(
        "input",
        `the query uses :${name} but no value was given: set msg.params.${name}`,
      );
    }
    const value = values[name];
    if (value === null || ["string", "number", "boolean"].includes(typeof value))
      return value as ParamValue;
    throw new TributaryError(
      "input",
      `parameter :${name} is ${Array.isArray(value) ? "an array" : typeof value}: give a string, number, boolean or null`,
    );
  });
}
