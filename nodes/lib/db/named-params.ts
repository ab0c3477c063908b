/**
 * Named parameters in an analyst's SQL (`:last_sync_timestamp`, `:region`) turned into
 * bound `?` placeholders. Values are never spliced into the text. Quoted strings,
 * quoted identifiers, comments and PostgreSQL's `::type` casts are left alone.
 */
import { TributaryError } from "./errors";
import { rewriteSqlCode } from "./sql";

export type ParamValue = string | number | boolean | null;

export interface CompiledQuery {
  sql: string;
  names: string[];
}

export function compileNamedParams(sql: string): CompiledQuery {
  const names: string[] = [];
  const compiled = rewriteSqlCode(sql, (text, at) => {
    const c = text[at];
    const next = text[at + 1];
    if (c === ":" && next === ":") return { text: "::", length: 2 };
    if (c === ":" && /[A-Za-z_]/.test(next ?? "")) {
      const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(at + 1))![0];
      names.push(name);
      return { text: "?", length: 1 + name.length };
    }
    if (c === "?") {
      // A literal ? would shift every binding after it.
      throw new TributaryError(
        "config",
        'the query contains "?": use named parameters like :name instead',
      );
    }
    return null;
  });
  return { sql: compiled, names };
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
