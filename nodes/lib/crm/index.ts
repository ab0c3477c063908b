/**
 * CRM connections: settings parsed from a tributary-crm-connection, and the provider
 * for them. Salesforce and Zoho live in their own files and are loaded on first use,
 * so a build without them (or without jsforce) still loads the other providers.
 */
import path from "node:path";
import { TributaryError } from "../db/errors";
import { missingEnv, resolveEnv } from "../env";
import { wholeNumber } from "../node-config";
import type { TokenStore } from "./http";
import { createHubSpot, HUBSPOT_BASE_URL } from "./hubspot";
import { createPipedrive, PIPEDRIVE_BASE_URL } from "./pipedrive";
import {
  PROVIDERS,
  type AuthType,
  type CrmProvider,
  type CrmSettings,
  type ProviderName,
} from "./provider";

export interface CrmConnectionConfig {
  provider?: unknown;
  authType?: unknown;
  baseUrl?: unknown;
  maxConcurrency?: unknown;
}

export interface CrmCredentials {
  clientId?: string;
  clientSecret?: string;
  token?: string;
  username?: string;
  password?: string;
  securityToken?: string;
  privateKey?: string;
}

export const CRM_CREDENTIAL_FIELDS = [
  "clientId",
  "clientSecret",
  "token",
  "username",
  "password",
  "securityToken",
  "privateKey",
] as const;

const AUTH_TYPES: Record<ProviderName, AuthType[]> = {
  salesforce: ["oauth2", "password", "jwt"],
  hubspot: ["token", "oauth2"],
  pipedrive: ["token", "oauth2"],
  zoho: ["oauth2"],
};

export const DEFAULT_BASE_URLS: Record<ProviderName, string> = {
  salesforce: "https://login.salesforce.com",
  hubspot: HUBSPOT_BASE_URL,
  pipedrive: PIPEDRIVE_BASE_URL,
  zoho: "https://www.zohoapis.com",
};

/** What each auth type needs, to name the missing credential in one error. */
const REQUIRED: Record<AuthType, Array<keyof CrmCredentials>> = {
  token: ["token"],
  oauth2: ["clientId", "clientSecret"],
  // Salesforce logs in by SOAP with username + password + security token; a client id
  // and secret, when given, switch to the OAuth username-password flow.
  password: ["username", "password"],
  jwt: ["clientId", "username", "privateKey"],
};

function text(value: unknown): string {
  return value === undefined || value === null ? "" : resolveEnv(String(value)).trim();
}

/** Validates a crm-connection's properties and credentials; throws naming the field. */
export function parseCrmSettings(
  config: CrmConnectionConfig,
  credentials: CrmCredentials = {},
): CrmSettings {
  const provider = text(config.provider) as ProviderName;
  if (!PROVIDERS.includes(provider)) {
    throw new TributaryError(
      "config",
      `provider "${provider}" is not supported: choose ${PROVIDERS.join(", ")}`,
    );
  }
  const allowed = AUTH_TYPES[provider];
  const authType = (text(config.authType) || allowed[0]) as AuthType;
  if (!allowed.includes(authType)) {
    throw new TributaryError(
      "config",
      `auth type "${authType}" is not available for ${provider}: choose ${allowed.join(", ")}`,
    );
  }
  const unset = [config.baseUrl, ...CRM_CREDENTIAL_FIELDS.map((f) => credentials[f])].flatMap(
    (v) => (typeof v === "string" ? missingEnv(v) : []),
  );
  if (unset.length) {
    throw new TributaryError(
      "config",
      `environment variable ${unset.join(", ")} is not set: set it, or replace \${${unset[0]}} in the connection`,
    );
  }
  const creds = Object.fromEntries(
    CRM_CREDENTIAL_FIELDS.map((f) => [f, text(credentials[f])]),
  ) as Required<CrmCredentials>;
  const missing = REQUIRED[authType].filter((f) => !creds[f]);
  // OAuth2 client id/secret are only needed to refresh; Connect stores the tokens.
  if (missing.length && authType !== "oauth2") {
    throw new TributaryError(
      "config",
      `${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} empty: ${provider} with auth type ${authType} needs ${REQUIRED[authType].join(", ")}`,
    );
  }
  const baseUrl = text(config.baseUrl) || DEFAULT_BASE_URLS[provider];
  try {
    const url = new URL(baseUrl);
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error("protocol");
  } catch {
    throw new TributaryError(
      "config",
      `base URL "${baseUrl}" is not an http(s) URL: leave it empty for ${DEFAULT_BASE_URLS[provider]}`,
    );
  }
  return {
    provider,
    authType,
    baseUrl,
    ...creds,
    maxConcurrency: wholeNumber(config.maxConcurrency, "max concurrency", 4),
  };
}

type Factory = (settings: CrmSettings, auth?: TokenStore) => CrmProvider;

/** Loads ./salesforce or ./zoho when present; a clear error when this build lacks it. */
function optionalFactory(file: string, exported: string, label: string): Factory {
  let mod: Record<string, unknown>;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(path.join(__dirname, file)) as Record<string, unknown>;
  } catch (err) {
    if ((err as { code?: string }).code === "MODULE_NOT_FOUND")
      throw new TributaryError(
        "config",
        `${label} is not available in this version of node-red-contrib-tributary: update the package`,
      );
    throw err;
  }
  if (typeof mod[exported] !== "function")
    throw new TributaryError("config", `${label}: ${file} does not export ${exported}`);
  return mod[exported] as Factory;
}

/** The provider for a connection; `auth` keeps OAuth tokens (sealed in the state store). */
export function createProvider(settings: CrmSettings, auth?: TokenStore): CrmProvider {
  switch (settings.provider) {
    case "hubspot":
      return createHubSpot(settings, auth);
    case "pipedrive":
      return createPipedrive(settings, auth);
    case "salesforce":
      return optionalFactory("salesforce", "createSalesforce", "Salesforce")(settings, auth);
    case "zoho":
      return optionalFactory("zoho", "createZoho", "Zoho CRM")(settings, auth);
    default:
      throw new TributaryError(
        "config",
        `provider "${String(settings.provider)}" is not supported: choose ${PROVIDERS.join(", ")}`,
      );
  }
}

/** "hubspot api.hubapi.com": names a connection in messages and origins, no secrets. */
export function connectionLabel(settings: CrmSettings): string {
  let host = settings.baseUrl;
  try {
    host = new URL(settings.baseUrl).host;
  } catch {
    // keep the text as given
  }
  return `${settings.provider} ${host}`;
}

/** What a tributary-crm-connection config node offers the nodes that use it. */
export interface CrmConnectionNode {
  id: string;
  type: string;
  /** The parsed settings, or throws the configuration error (read by the OAuth routes too). */
  crmSettings(): CrmSettings;
  /** The connection's one provider (one concurrency limit per connection), or throws. */
  provider(): CrmProvider;
  /** "hubspot api.hubapi.com" */
  label(): string;
}

/**
 * OAuth tokens of one connection, sealed in the state store (token-vault.ts), opened
 * lazily: the store and the credential secret are only needed once a call is made.
 */
export function sealedTokens(access: () => Promise<TokenStore>): TokenStore {
  return {
    load: async () => (await access()).load(),
    save: async (tokens) => (await access()).save(tokens),
  };
}
