import type { NodeDef, NodeRedApi } from "../lib/red";
import {
  DbConnection,
  parseSettings,
  type ConnectionConfig,
  type DbConnectionNode,
} from "../lib/db/connection";

export = function register(RED: NodeRedApi): void {
  function DbConnectionNodeCtor(this: DbConnectionNode, def: NodeDef): void {
    RED.nodes.createNode(this, def);
    let connection: DbConnection | null = null;
    let configError: Error | null = null;
    try {
      connection = new DbConnection(
        parseSettings(def as ConnectionConfig, this.credentials ?? {}, RED.settings.userDir),
      );
    } catch (err) {
      configError = err as Error;
      this.error(`${def.name || "db connection"}: ${configError.message}`);
    }
    this.connection = () => {
      if (configError) throw configError;
      return connection!;
    };
    this.on("close", (_removed: boolean, done: () => void) => {
      if (!connection) return done();
      connection.close().then(done, done);
    });
  }

  RED.nodes.registerType("tributary-db-connection", DbConnectionNodeCtor, {
    credentials: { user: { type: "text" }, password: { type: "password" } },
  });
};
