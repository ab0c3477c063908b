/**
 * Revoking a CRM connection (issue 5, "Revoke"): the token is revoked at the provider
 * where it has an endpoint, wiped locally, the act recorded in the audit (who, why),
 * and announced on `connectionEvents` so the sources using the connection stop with a
 * clear status instead of failing on their next call.
 *
 * The local wipe happens even when the provider cannot be reached: what the user asks
 * for first is that this runtime stops using the connection. The result (and the
 * audit action `revoked-local`) then says to revoke the app in the provider's UI.
 */
import { EventEmitter } from "node:events";
import axios, { type AxiosInstance } from "axios";
import { scrub } from "../db/errors";
import { oauthEndpoints, type OAuthApp } from "./oauth";
import type { CrmTokens, ProviderName } from "./provider";
import { TokenVaultError, type TokenStore, type TokenVault } from "./token-vault";

export interface ConnectionRevoked {
  connectionId: string;
  provider: string;
  by: string;
  reason: string;
  /** ISO 8601 */
  at: string;
  /** A line for a node's status: "revoked by admin: leaked laptop". */
  status: string;
}

/** Other code (crm-source, crm-connection) listens here to stop what uses a connection. */
class ConnectionEvents extends EventEmitter {
  /** Calls `listener` on every revoke; returns the function that stops listening. */
  onRevoked(listener: (event: ConnectionRevoked) => void): () => void {
    this.on("revoked", listener);
    return () => this.off("revoked", listener);
  }

  emitRevoked(event: ConnectionRevoked): void {
    // A listener that throws must not undo the revoke or keep others from hearing it.
    for (const listener of this.listeners("revoked") as Array<(e: ConnectionRevoked) => void>) {
      try {
        listener(event);
      } catch {
        // ignored: the revoke happened; the listener's own code reports its failure
      }
    }
  }
}

export const connectionEvents = new ConnectionEvents();

export type ProviderRevokeOutcome =
  | { status: "revoked" }
  | { status: "already-invalid" }
  | { status: "no-token" }
  | { status: "no-endpoint" }
  | { status: "failed"; message: string };

export interface RevokeResult {
  connectionId: string;
  provider: string;
  /** Tokens were stored and are now wiped. */
  wiped: boolean;
  atProvider: ProviderRevokeOutcome;
}

export interface RevokeAuditStore extends Pick<TokenStore, "getToken" | "deleteToken"> {
  addConnectionAudit(event: {
    connectionId: string;
    action: string;
    by: string;
    reason: string;
  }): Promise<void>;
}

export interface RevokeRequest {
  connectionId: string;
  /** The connection's OAuth app; when the connection is not deployed, the stored provider's defaults. */
  app?: OAuthApp;
  store: RevokeAuditStore;
  vault: TokenVault;
  /** The editor user (or "cli", "system"). */
  by: string;
  reason: string;
  http?: AxiosInstance;
}

const LABEL: Record<string, string> = {
  salesforce: "Salesforce",
  hubspot: "HubSpot",
  pipedrive: "Pipedrive",
  zoho: "Zoho",
};

export async function revokeConnection(request: RevokeRequest): Promise<RevokeResult> {
  const { connectionId, store, vault } = request;
  const reason = request.reason.trim();
  const row = await store.getToken(connectionId);
  const provider = request.app?.provider ?? row?.provider ?? "unknown";

  let tokens: CrmTokens | undefined;
  let atProvider: ProviderRevokeOutcome = { status: "no-token" };
  if (row) {
    try {
      tokens = vault.open(row.sealed, { connectionId, provider: row.provider });
    } catch (err) {
      if (!(err instanceof TokenVaultError)) throw err;
      // Unreadable (secret changed, altered): it cannot be sent to the provider.
      atProvider = { status: "failed", message: err.message };
    }
  }
  if (tokens) {
    const app: OAuthApp = request.app ?? {
      provider: row!.provider as ProviderName,
      clientId: "",
      clientSecret: "",
    };
    atProvider = await revokeAtProvider(app, tokens, request.http ?? axios);
  }

  const wiped = row ? await store.deleteToken(connectionId) : false;
  const failed = atProvider.status === "failed" ? atProvider.message : undefined;
  await store.addConnectionAudit({
    connectionId,
    action: failed ? "revoked-local" : "revoked",
    by: request.by,
    reason: failed ? `${reason} [not revoked at the provider: ${failed}]` : reason,
  });
  const at = new Date().toISOString();
  connectionEvents.emitRevoked({
    connectionId,
    provider,
    by: request.by,
    reason,
    at,
    status: `revoked by ${request.by}${reason ? `: ${reason}` : ""}`.slice(0, 120),
  });
  return { connectionId, provider, wiped, atProvider };
}

/** Revokes the refresh token (which takes its access tokens with it), else the access token. */
export async function revokeAtProvider(
  app: OAuthApp,
  tokens: CrmTokens,
  http: AxiosInstance = axios,
): Promise<ProviderRevokeOutcome> {
  const endpoints = oauthEndpoints(app);
  const revoke = endpoints.revoke;
  if (!revoke) return { status: "no-endpoint" };
  // HubSpot's endpoint deletes refresh tokens only; its access tokens expire in 30 minutes.
  const token =
    app.provider === "hubspot" ? tokens.refreshToken : (tokens.refreshToken ?? tokens.accessToken);
  if (!token) return { status: "no-endpoint" };
  let url = revoke.url(token);
  // Salesforce documents the revoke endpoint on the org's own domain.
  if (app.provider === "salesforce" && !app.baseUrl?.trim() && tokens.instanceUrl)
    url = `${tokens.instanceUrl.replace(/\/+$/, "")}/services/oauth2/revoke`;
  const headers: Record<string, string> = { Accept: "application/json" };
  let data: string | undefined;
  if (revoke.form) {
    const form = new URLSearchParams({ token });
    if (app.provider === "pipedrive") form.set("token_type_hint", "refresh_token");
    data = form.toString();
    headers["Content-Type"] = "application/x-www-form-urlencoded";
  }
  if (endpoints.basicAuth && app.clientId) {
    headers.Authorization = `Basic ${Buffer.from(`${app.clientId}:${app.clientSecret}`).toString("base64")}`;
  }
  const hide = [token, tokens.accessToken, tokens.refreshToken ?? "", app.clientSecret];
  const label = LABEL[app.provider] ?? app.provider;
  // Never the URL in a message: HubSpot's and Zoho's carry the token.
  const where = `${label}'s revoke endpoint`;
  try {
    const response = await http.request<unknown>({
      method: revoke.method,
      url,
      headers,
      ...(data !== undefined ? { data } : {}),
      timeout: 30_000,
      validateStatus: () => true,
    });
    const body = (response.data && typeof response.data === "object" ? response.data : {}) as {
      error?: unknown;
      status?: unknown;
    };
    if (response.status < 300 && body.error === undefined && body.status !== "failure")
      return { status: "revoked" };
    // Revoking what the provider no longer knows is what the user wanted.
    if (
      body.error === "invalid_token" ||
      body.error === "invalid_grant" ||
      (app.provider === "hubspot" && response.status === 404)
    )
      return { status: "already-invalid" };
    const error = typeof body.error === "string" ? body.error : `HTTP ${response.status}`;
    return {
      status: "failed",
      message: scrub(
        `${where} answered ${error}: revoke the app's access in ${label}'s settings (connected apps)`,
        hide,
      ),
    };
  } catch (err) {
    const code = (err as { code?: string }).code ?? "network error";
    return {
      status: "failed",
      message: `${where} did not answer (${code}): revoke the app's access in ${label}'s settings (connected apps)`,
    };
  }
}
