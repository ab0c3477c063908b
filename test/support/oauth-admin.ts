/**
 * The OAuth admin routes mounted the way Node-RED mounts its admin app, behind
 * Node-RED's real adminAuth (@node-red/editor-api's needsPermission with the passport
 * bearer strategy), at /red. Users: "admin" (every permission) and "viewer" (read).
 * Every reply and log line is kept, so tests can check that no token leaks.
 */
import { createRequire } from "node:module";
import type http from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import type { NodeRedApi, RedNode } from "../../nodes/lib/red";
import { registerOAuthRoutes, type OAuthRouteOptions } from "../../nodes/lib/api/oauth-routes";
import type { StateStore } from "../../nodes/lib/state-store";

const load = createRequire(__filename);

interface NodeRedAuth {
  init(settings: object, storage: object): void;
  needsPermission(permission: string): express.RequestHandler;
}
interface NodeRedTokens {
  create(user: string, client: string, scope: string): Promise<{ accessToken: string }>;
}

export interface CrmConnectionDef {
  provider: string;
  authType?: string;
  baseUrl: string;
  clientId: string;
  clientSecret: string;
}

export interface Admin {
  /** http://127.0.0.1:port/red (the admin root) */
  url: string;
  adminToken: string;
  viewerToken: string;
  logs: string[];
  /** Text of every reply the routes gave (status, headers, body). */
  replies: string[];
  connections: Map<string, CrmConnectionDef>;
  request(
    method: string,
    path: string,
    init?: { token?: string; body?: unknown; cookie?: string },
  ): Promise<{ status: number; text: string; headers: Headers }>;
  close(): Promise<void>;
}

export async function startAdmin(
  store: StateStore,
  secret: string,
  options: Omit<OAuthRouteOptions, "store"> = {},
): Promise<Admin> {
  const auth = load("@node-red/editor-api/lib/auth") as NodeRedAuth;
  const tokens = load("@node-red/editor-api/lib/auth/tokens") as NodeRedTokens;
  const passport = load("passport") as { initialize(): express.RequestHandler };
  let sessions: object = {};
  auth.init(
    {
      adminAuth: {
        type: "credentials",
        users: [
          { username: "admin", password: "unused-hash", permissions: "*" },
          { username: "viewer", password: "unused-hash", permissions: "read" },
        ],
      },
    },
    {
      getSessions: async () => sessions,
      saveSessions: async (s: object) => {
        sessions = s;
      },
    },
  );
  const adminApp = express();
  adminApp.use(express.json());
  adminApp.use(passport.initialize());

  const logs: string[] = [];
  const replies: string[] = [];
  const connections = new Map<string, CrmConnectionDef>();
  const log = (level: string) => (msg: string) => logs.push(`${level}: ${msg}`);
  const RED = {
    httpAdmin: adminApp,
    auth: { needsPermission: auth.needsPermission },
    settings: { userDir: "/nonexistent", credentialSecret: secret },
    log: { info: log("info"), warn: log("warn"), error: log("error"), debug: log("debug") },
    nodes: {
      createNode: () => undefined,
      registerType: () => undefined,
      getNode: (id: string) => {
        const def = connections.get(id);
        if (!def) return null;
        // What a deployed config node looks like to the routes: its properties and credentials.
        return {
          id,
          type: "tributary-crm-connection",
          provider: def.provider,
          authType: def.authType ?? "oauth2",
          baseUrl: def.baseUrl,
          credentials: { clientId: def.clientId, clientSecret: def.clientSecret },
        } as unknown as RedNode;
      },
      getCredentials: () => undefined,
    },
  } as unknown as NodeRedApi;
  registerOAuthRoutes(RED, { ...options, store: async () => store });

  const root = express();
  root.use("/red", adminApp);
  const server: http.Server = await new Promise((resolve) => {
    const s = root.listen(0, "127.0.0.1", () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/red`;
  const adminToken = (await tokens.create("admin", "node-red-editor", "*")).accessToken;
  const viewerToken = (await tokens.create("viewer", "node-red-editor", "read")).accessToken;

  return {
    url,
    adminToken,
    viewerToken,
    logs,
    replies,
    connections,
    async request(method, path, init = {}) {
      const headers: Record<string, string> = {};
      if (init.token) headers.Authorization = `Bearer ${init.token}`;
      if (init.cookie) headers.Cookie = init.cookie;
      if (init.body !== undefined) headers["Content-Type"] = "application/json";
      const res = await fetch(path.startsWith("http") ? path : `${url}${path}`, {
        method,
        headers,
        redirect: "manual",
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      });
      const text = await res.text();
      replies.push(`${res.status} ${JSON.stringify([...res.headers])} ${text}`);
      return { status: res.status, text, headers: res.headers };
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
