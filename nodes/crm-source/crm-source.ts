import type { NodeDef, NodeRedApi, RedNode } from "../lib/red";
import { registerManagementRoutes } from "../lib/api/routes";
import type { CrmConnectionNode } from "../lib/crm/index";
import { CrmReader } from "../lib/crm/reader";
import { connectionEvents } from "../lib/crm/revoke";
import { TributaryError } from "../lib/db/errors";
import { listOfNames, oneOf, requiredText } from "../lib/node-config";
import { attachSource, runSettings } from "../lib/source-node";
import type { SyncMode } from "../lib/types";

const MODES = ["full", "incremental"] as const;

interface SourceSettings {
  object: string;
  fields: string[];
  mode: SyncMode;
  batchSize: number;
  maxInFlight: number;
  settleTimeoutMs: number;
  lookback: number;
}

function readSettings(def: NodeDef): SourceSettings {
  return {
    object: requiredText(
      def.object,
      "object",
      "choose the CRM object to read (e.g. contacts, Contact, persons)",
    ),
    fields: listOfNames(def.fields, "fields", false),
    mode: oneOf(def.mode, "mode", MODES, "incremental"),
    ...runSettings(def, 500),
  };
}

export = function register(RED: NodeRedApi): void {
  registerManagementRoutes(RED);

  function CrmSourceNode(this: RedNode, def: NodeDef): void {
    RED.nodes.createNode(this, def);
    let settings: SourceSettings | null = null;
    let configError: Error | null = null;
    const connectionNode = RED.nodes.getNode(
      String(def.connection ?? ""),
    ) as unknown as CrmConnectionNode | null;
    try {
      if (!connectionNode || typeof connectionNode.provider !== "function")
        throw new TributaryError(
          "config",
          "connection is not set: choose a tributary-crm-connection",
        );
      connectionNode.crmSettings(); // a broken connection shows on this node at deploy too
      settings = readSettings(def);
    } catch (err) {
      configError = err as Error;
    }
    const reader = () =>
      new CrmReader(connectionNode!.provider(), {
        object: settings!.object,
        fields: settings!.fields,
        lookback: settings!.lookback,
        label: connectionNode!.label(),
      });
    const source = attachSource(RED, this, def, {
      type: "tributary-crm-source",
      entity: settings?.object ?? "",
      settings,
      configError,
      reader,
      // Check the object and fields at deploy, so a typo shows before the first run.
      deployCheck: settings && connectionNode && settings.fields.length ? reader() : null,
    });

    // A revoked connection stops the run under way, with the reason on the status.
    const stopListening = connectionEvents.onRevoked((event) => {
      if (!connectionNode || event.connectionId !== connectionNode.id) return;
      source.stop(
        new Error(`the connection was revoked (${event.status})`),
        `connection revoked: ${event.status}`,
      );
    });
    this.on("close", () => stopListening());
  }

  RED.nodes.registerType("tributary-crm-source", CrmSourceNode);
};
