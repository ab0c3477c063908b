/**
 * Runtime part of the editor plugin: the sidebar's data comes from the management
 * API, which this registers (so it exists even in a flow without a source yet).
 */
import type { NodeRedApi } from "../nodes/lib/red";
import { registerManagementRoutes } from "../nodes/lib/api/routes";

export = function register(
  RED: NodeRedApi & { plugins?: { registerPlugin(id: string, def: object): void } },
): void {
  registerManagementRoutes(RED);
  RED.plugins?.registerPlugin("tributary-sidebar", { type: "tributary-sidebar" });
};
