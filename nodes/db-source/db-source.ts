import type { NodeDef, NodeRedApi, RedNode } from "../lib/red";
import { registerManagementRoutes } from "../lib/api/routes";
import type { DbConnectionNode } from "../lib/db/connection";
import { TableReader } from "../lib/db/table-reader";
import { TributaryError } from "../lib/db/errors";
import { listOfNames, oneOf, requiredText } from "../lib/node-config";
import { attachSource, runSettings } from "../lib/source-node";
import type { SyncMode } from "../lib/types";

const MODES = ["full", "incremental"] as const;

interface SourceSettings {
  table: string;
  query: string;
  deletedColumn: string;
  keyColumns: string[];
  cursorColumn: string | null;
  mode: SyncMode;
  batchSize: number;
  maxInFlight: number;
  settleTimeoutMs: number;
  lookback: number;
}

function readSettings(def: NodeDef): SourceSettings {
  const mode = oneOf(def.mode, "mode", MODES, "incremental");
  const cursorColumn =
    typeof def.cursorColumn === "string" && def.cursorColumn.trim()
      ? def.cursorColumn.trim()
      : null;
  if (mode === "incremental" && !cursorColumn) {
    throw new TributaryError(
      "config",
      "cursor column is empty: incremental mode needs one (e.g. updated_at), or choose full mode",
    );
  }
  const query = typeof def.query === "string" ? def.query.trim() : "";
  return {
    table: query
      ? String(def.table ?? "").trim()
      : requiredText(
          def.table,
          "table",
          "choose the table to read (e.g. customers or public.customers), or write a custom query",
        ),
    query,
    deletedColumn: typeof def.deletedColumn === "string" ? def.deletedColumn.trim() : "",
    keyColumns: listOfNames(def.keyColumns, "key columns", true),
    cursorColumn,
    mode,
    ...runSettings(def, 5000),
  };
}

export = function register(RED: NodeRedApi): void {
  registerManagementRoutes(RED);

  function DbSourceNode(this: RedNode, def: NodeDef): void {
    RED.nodes.createNode(this, def);
    let settings: SourceSettings | null = null;
    let configError: Error | null = null;
    const connectionNode = RED.nodes.getNode(
      String(def.connection ?? ""),
    ) as DbConnectionNode | null;
    try {
      if (!connectionNode)
        throw new TributaryError(
          "config",
          "connection is not set: choose a tributary-db-connection",
        );
      connectionNode.connection(); // a broken connection shows on this node at deploy too
      settings = readSettings(def);
    } catch (err) {
      configError = err as Error;
    }
    attachSource(RED, this, def, {
      type: "tributary-db-source",
      entity: settings?.table || (settings?.query ? "query" : ""),
      settings,
      configError,
      reader(mode, options) {
        if (mode === "incremental" && !settings!.cursorColumn) {
          throw new TributaryError(
            "config",
            "cursor column is empty: incremental mode needs one (e.g. updated_at)",
          );
        }
        return new TableReader(connectionNode!.connection(), {
          ...settings!,
          params: options.params,
        });
      },
      // Check the table and columns at deploy, so a typo shows before the first run.
      deployCheck:
        settings && connectionNode && !settings.query
          ? new TableReader(connectionNode.connection(), settings)
          : null,
      inputOptions: (msg) =>
        msg.params && typeof msg.params === "object"
          ? { params: msg.params as Record<string, unknown> }
          : {},
    });
  }

  RED.nodes.registerType("tributary-db-source", DbSourceNode);
};
