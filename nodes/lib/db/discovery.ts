/**
 * Schema discovery for the editor's pickers (Airbyte's "discover"): tables and views
 * with approximate row counts, and per table its columns, primary key, unique keys
 * and foreign keys, from each database's catalogue.
 */
import type { Knex } from "knex";
import type { DbConnection } from "./connection";
import { splitTableName } from "./dialect";
import { TributaryError } from "./errors";

export interface TableSummary {
  schema: string | null;
  name: string;
  type: "table" | "view";
  approxRows: number | null;
}

export interface TableDetail {
  name: string;
  columns: Array<{ name: string; type: string; nullable: boolean }>;
  primaryKey: string[];
  uniqueKeys: string[][];
  foreignKeys: Array<{ columns: string[]; references: { table: string; columns: string[] } }>;
}

type Rows = Array<Record<string, unknown>>;

async function rows(knex: Knex, sql: string, bindings: unknown[] = []): Promise<Rows> {
  const result = await knex.raw(sql, bindings as never[]);
  if (Array.isArray(result)) return (Array.isArray(result[0]) ? result[0] : result) as Rows; // mysql2 / sqlite
  return (result as { rows: Rows }).rows; // pg
}

function num(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 ? n : null;
}

/** Groups (constraint, column) rows into ordered column lists per constraint. */
function byConstraint(
  list: Rows,
  nameKey = "constraint_name",
  columnKey = "column_name",
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const r of list) {
    const name = String(r[nameKey]);
    if (!out.has(name)) out.set(name, []);
    out.get(name)!.push(String(r[columnKey]));
  }
  return out;
}

export async function listTables(connection: DbConnection): Promise<TableSummary[]> {
  const knex = connection.knex();
  try {
    switch (connection.settings.client) {
      case "pg":
        return (
          await rows(
            knex,
            `select n.nspname as schema, c.relname as name, c.relkind as kind, c.reltuples::bigint as approx
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.relkind in ('r', 'p', 'v', 'm') and n.nspname not in ('pg_catalog', 'information_schema')
                and n.nspname not like 'pg_toast%' order by 1, 2`,
          )
        ).map((r) => ({
          schema: String(r.schema),
          name: String(r.name),
          type: r.kind === "v" || r.kind === "m" ? "view" : "table",
          approxRows: num(r.approx),
        }));
      case "mysql":
        return (
          await rows(
            knex,
            `select table_name as name, table_type as type, table_rows as approx from information_schema.tables
              where table_schema = database() order by 1`,
          )
        ).map((r) => ({
          schema: null,
          name: String(r.name),
          type: /VIEW/i.test(String(r.type)) ? "view" : "table",
          approxRows: num(r.approx),
        }));
      case "sqlite":
        return (
          await rows(
            knex,
            `select name, type from sqlite_master where type in ('table', 'view') and name not like 'sqlite_%' order by 1`,
          )
        ).map((r) => ({
          schema: null,
          name: String(r.name),
          type: r.type === "view" ? "view" : "table",
          approxRows: null,
        }));
      default:
        throw new TributaryError(
          "unsupported",
          `schema discovery is not available for ${connection.dialect.label} yet: type the table name`,
        );
    }
  } catch (err) {
    throw connection.explain(err, "listing tables");
  }
}

export async function describeTableDetail(
  connection: DbConnection,
  table: string,
): Promise<TableDetail> {
  const info = await connection.describe(table); // throws a clear error for an unknown table
  const knex = connection.knex();
  const { schema, name } = splitTableName(table);
  let constraints: Rows = [];
  let foreign: Rows = [];
  try {
    switch (connection.settings.client) {
      case "pg":
      case "mysql": {
        const schemaFilter =
          connection.settings.client === "pg" ? (schema ? "?" : "current_schema()") : "database()";
        const bindings = schema && connection.settings.client === "pg" ? [schema, name] : [name];
        constraints = await rows(
          knex,
          `select tc.constraint_name, tc.constraint_type, kcu.column_name
             from information_schema.table_constraints tc
             join information_schema.key_column_usage kcu
               on kcu.constraint_name = tc.constraint_name and kcu.table_schema = tc.table_schema and kcu.table_name = tc.table_name
            where tc.table_schema = ${schemaFilter} and tc.table_name = ?
              and tc.constraint_type in ('PRIMARY KEY', 'UNIQUE', 'FOREIGN KEY')
            order by tc.constraint_name, kcu.ordinal_position`,
          bindings,
        );
        foreign = await rows(
          knex,
          connection.settings.client === "mysql"
            ? `select constraint_name, column_name, referenced_table_name as ref_table, referenced_column_name as ref_column
                 from information_schema.key_column_usage
                where table_schema = database() and table_name = ? and referenced_table_name is not null
                order by constraint_name, ordinal_position`
            : `select con.conname as constraint_name, a.attname as column_name, rt.relname as ref_table, ra.attname as ref_column
                 from pg_constraint con
                 join pg_class t on t.oid = con.conrelid join pg_namespace n on n.oid = t.relnamespace
                 join pg_class rt on rt.oid = con.confrelid
                 cross join lateral unnest(con.conkey, con.confkey) with ordinality as k(col, refcol, ord)
                 join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.col
                 join pg_attribute ra on ra.attrelid = con.confrelid and ra.attnum = k.refcol
                where con.contype = 'f' and t.relname = ? and n.nspname = ${schema ? "?" : "current_schema()"}
                order by con.conname, k.ord`,
          connection.settings.client === "mysql" ? [name] : schema ? [name, schema] : [name],
        );
        break;
      }
      case "sqlite": {
        const columns = await rows(
          knex,
          `select name, pk from pragma_table_info(?) where pk > 0 order by pk`,
          [name],
        );
        constraints = columns.map((c) => ({
          constraint_name: "primary",
          constraint_type: "PRIMARY KEY",
          column_name: c.name,
        }));
        const indexes = await rows(
          knex,
          `select name from pragma_index_list(?) where "unique" = 1 and origin = 'u'`,
          [name],
        );
        for (const index of indexes) {
          for (const c of await rows(knex, `select name from pragma_index_info(?) order by seqno`, [
            index.name,
          ])) {
            constraints.push({
              constraint_name: index.name,
              constraint_type: "UNIQUE",
              column_name: c.name,
            });
          }
        }
        foreign = (
          await rows(
            knex,
            `select id, "from" as column_name, "table" as ref_table, "to" as ref_column from pragma_foreign_key_list(?) order by id, seq`,
            [name],
          )
        ).map((r) => ({ ...r, constraint_name: `fk${r.id}` }));
        break;
      }
      default:
        break;
    }
  } catch (err) {
    throw connection.explain(err, `reading the keys of table "${table}"`);
  }
  const primary = constraints.filter((c) => c.constraint_type === "PRIMARY KEY");
  const unique = byConstraint(constraints.filter((c) => c.constraint_type === "UNIQUE"));
  const fkColumns = byConstraint(foreign);
  const fkRefs = byConstraint(foreign, "constraint_name", "ref_column");
  const fkTables = new Map(foreign.map((r) => [String(r.constraint_name), String(r.ref_table)]));
  return {
    name: table,
    columns: info.columns,
    primaryKey: primary.map((c) => String(c.column_name)),
    uniqueKeys: [...unique.values()],
    foreignKeys: [...fkColumns.entries()].map(([constraint, columns]) => ({
      columns,
      references: { table: fkTables.get(constraint)!, columns: fkRefs.get(constraint)! },
    })),
  };
}
