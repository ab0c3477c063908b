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
import type { Request, RequestHandler, Response, Router } from "express";
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

class ApiError extends Error {
  constructor(
    readonly status: 400 | 404,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const registered = new WeakSet<object>();

export function registerCrmRoutes(RED: NodeRedApi): void {
  const app = RED.httpAdmin as Router | undefined;
  if (!app || registered.has(app)) return;
  registered.add(app);
  const permission = (name: string): RequestHandler =>
    (RED.auth?.needsPermission(name) as RequestHandler | undefined) ??
    ((_req, _res, next) => next());

  const route =
    (handler: (req: Request) => Promise<unknown>) => async (req: Request, res: Response) => {
      try {
        res.json(await handler(req));
      } catch (err) {
        if (err instanceof ApiError)
          return res.status(err.status).json({ error: { code: err.code, message: err.message } });
        if (err instanceof TributaryError)
          return res.status(400).json({ error: { code: err.code, message: err.message } });
        RED.log.error(`tributary CRM API ${req.method} ${req.path}: ${(err as Error).message}`);
        res
          .status(500)
          .json({ error: { code: "internal", message: "internal error; see the Node-RED log" } });
      }
    };

  const write = permission("tributary-crm-connection.write");
  const read = permission("tributary-crm-connection.read");
  app.post(
    "/tributary/crm/connections/test",
    write,
    route((req) => testForm(req, RED)),
  );
  app.post(
    "/tributary/crm/connections/:id/test",
    write,
    route(async (req) => probe(deployed(req, RED).provider(), deployed(req, RED).label())),
  );
  app.get(
    "/tributary/crm/connections/:id/objects",
    read,
    route(async (req) => ({ objects: await deployed(req, RED).provider().listObjects() })),
  );
  app.get(
    "/tributary/crm/connections/:id/objects/:object/fields",
    read,
    route(async (req) => {
      const provider = deployed(req, RED).provider();
      const object = req.params.object;
      return {
        object,
        idField: provider.idField(object),
        modifiedField: provider.modifiedField(object),
        fields: await provider.describe(object),
      };
    }),
  );
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

/** Tests an undeployed form: blank or unchanged (__PWRD__) secrets come from the deployed node. */
async function testForm(req: Request, RED: NodeRedApi) {
  const body = (req.body ?? {}) as {
    id?: string;
    config?: Record<string, unknown>;
    credentials?: Record<string, string>;
  };
  if (!body.config || typeof body.config !== "object")
    throw new ApiError(400, "bad-request", "config is missing: send the form's values");
  const stored = body.id ? (RED.nodes.getCredentials(body.id) ?? {}) : {};
  const credentials: CrmCredentials = {};
  for (const field of CRM_CREDENTIAL_FIELDS) {
    const sent = body.credentials?.[field];
    credentials[field] = !sent || sent === "__PWRD__" ? stored[field] : sent;
  }
  const settings = parseCrmSettings(body.config, credentials);
  const id = body.id ?? "";
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
