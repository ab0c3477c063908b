/**
 * Admin routes of the CRM connection form and pickers, beside the management API
 * (routes.ts), behind the same adminAuth permissions:
 *
 *   POST <admin>/tributary/crm/connections/test            { id?, config, credentials }
 *   POST <admin>/tributary/crm/connections/:id/test        a deployed connection
 *   GET  <admin>/tributary/crm/connections/:id/objects     → { objects: [{ name, label }] }
 *   GET  <admin>/tributary/crm/connections/:id/objects/:object/fields → { fields }
 *
 * A failed test answers 200 with `{ ok: false, error: { code, message } }` (the form
 * shows it); other errors are `{ error: { code, message } }` with 400 or 404. Tokens
 * and secrets never appear in a reply: provider errors are scrubbed by the client.
 */
import type { Request, Response, Router } from "express";
import type { NodeRedApi } from "../red";
import { stateStoreFor } from "../state-store";
import { TributaryError } from "../db/errors";
import {
  CRM_CREDENTIAL_FIELDS,
  connectionLabel,
  createProvider,
  parseCrmSettings,
  sealedTokens,
  type CrmConnectionNode,
  type CrmCredentials,
} from "../crm/index";
import type { CrmProvider } from "../crm/provider";
import { vaultFor } from "../crm/token-vault";
import { credentialSecretOf } from "./oauth-routes";
import { allow, ApiError, sendError, testForm as readTestForm } from "./common";

const registered = new WeakSet<object>();

export function registerCrmRoutes(RED: NodeRedApi): void {
  const app = RED.httpAdmin as Router | undefined;
  if (!app || registered.has(app)) return;
  registered.add(app);
  const route =
    (handler: (req: Request) => Promise<unknown>) => async (req: Request, res: Response) => {
      try {
        res.json(await handler(req));
      } catch (err) {
        sendError(RED, req, res, err);
      }
    };

  const write = allow(RED, "tributary-crm-connection.write");
  const read = allow(RED, "tributary-crm-connection.read");
  app.post(
    "/tributary/crm/connections/test",
    write,
    route((req) => crmTestForm(req, RED)),
  );
  app.post(
    "/tributary/crm/connections/:id/test",
    write,
    route((req) => crmTestDeployed(req, RED)),
  );
  app.get(
    "/tributary/crm/connections/:id/objects",
    read,
    route((req) => crmObjects(req, RED)),
  );
  app.get(
    "/tributary/crm/connections/:id/objects/:object/fields",
    read,
    route((req) => crmFields(req, RED, req.params.object)),
  );
}

/** Whether `id` is a deployed crm-connection (the generic connection routes ask). */
export function isCrmConnection(RED: NodeRedApi, id: string): boolean {
  const node = RED.nodes.getNode(id) as unknown as CrmConnectionNode | null;
  return node?.type === "tributary-crm-connection";
}

export function crmTestDeployed(req: Request, RED: NodeRedApi) {
  const node = deployed(req, RED);
  return probe(node.provider(), node.label());
}

export async function crmObjects(req: Request, RED: NodeRedApi) {
  return { objects: await deployed(req, RED).provider().listObjects() };
}

export async function crmFields(req: Request, RED: NodeRedApi, object: string) {
  const provider = deployed(req, RED).provider();
  return {
    object,
    idField: provider.idField(object),
    modifiedField: provider.modifiedField(object),
    fields: await provider.describe(object),
  };
}

function deployed(req: Request, RED: NodeRedApi): CrmConnectionNode {
  const node = RED.nodes.getNode(req.params.id) as unknown as CrmConnectionNode | null;
  if (!node || node.type !== "tributary-crm-connection" || typeof node.provider !== "function") {
    throw new ApiError(
      404,
      "not-found",
      `no deployed tributary-crm-connection ${req.params.id}: deploy it first`,
    );
  }
  return node;
}

/** Tests an undeployed form (see readTestForm for its secrets). */
export async function crmTestForm(req: Request, RED: NodeRedApi) {
  const form = readTestForm(req, RED, CRM_CREDENTIAL_FIELDS);
  const credentials = form.credentials as CrmCredentials;
  const settings = parseCrmSettings(form.config, credentials);
  const id = form.id;
  const tokens =
    settings.authType === "oauth2"
      ? sealedTokens(async () =>
          vaultFor(
            credentialSecretOf(RED.settings),
            await stateStoreFor(RED.settings.userDir),
          ).forConnection(id, settings.provider),
        )
      : undefined;
  return probe(createProvider(settings, tokens), connectionLabel(settings));
}

async function probe(provider: CrmProvider, label: string) {
  const started = Date.now();
  try {
    const check = await provider.check();
    return { ok: true, ...check, latencyMs: Date.now() - started, connection: label };
  } catch (err) {
    const e = err as TributaryError;
    return { ok: false, error: { code: e.code ?? "error", message: e.message } };
  }
}
