/**
 * What differs between CRMs. Each provider lives in one file beside this one
 * (salesforce.ts, hubspot.ts, pipedrive.ts, zoho.ts); the crm-source reader, the
 * CRM side of the upsert node and the connection's routes are written once against
 * this interface, the way nodes/lib/db is written against Dialect.
 */
import type { OutcomeAction, SyncRecord, Value } from "../types";

export type ProviderName = "salesforce" | "hubspot" | "pipedrive" | "zoho";

export const PROVIDERS: ProviderName[] = ["salesforce", "hubspot", "pipedrive", "zoho"];

export type AuthType =
  | "oauth2" // authorization code (+ refresh token); Connect button in the editor
  | "password" // Salesforce username + password + security token
  | "jwt" // Salesforce JWT bearer
  | "token"; // HubSpot private-app token, Pipedrive API token

/** A crm-connection's settings, as parsed from the config node; secrets included. */
export interface CrmSettings {
  provider: ProviderName;
  authType: AuthType;
  /** Provider API base (or Salesforce login URL); overridable for sandboxes and fakes. */
  baseUrl: string;
  clientId: string;
  clientSecret: string;
  /** API token / private-app token (authType token). */
  token: string;
  username: string;
  password: string;
  /** Salesforce security token appended to the password (authType password). */
  securityToken: string;
  /** PEM private key (Salesforce JWT bearer). */
  privateKey: string;
  /** Most calls in flight at once on this connection. */
  maxConcurrency: number;
}

/** Tokens of an OAuth2 or session login; kept sealed in the state store, never in flows. */
export interface CrmTokens {
  accessToken: string;
  refreshToken?: string;
  /** Epoch milliseconds; refreshed a little before. */
  expiresAt?: number;
  /** Salesforce: the org's instance URL; Zoho: the data centre's API domain. */
  instanceUrl?: string;
}

export interface CrmObject {
  name: string;
  label: string;
}

export interface CrmField {
  name: string;
  label: string;
  type: string;
  /** Can be used as the key of an upsert (Salesforce external ID, HubSpot unique property). */
  unique?: boolean;
}

/** Where a keyset read continues: strictly after (modified, id). */
export interface CrmPosition {
  modified: string | null;
  id: string | null;
}

export interface ReadRequest {
  object: string;
  /** Fields to return; the id and modified fields are always included. */
  fields: string[];
  /** Incremental: records with (modified, id) > after, in that order. Full: all, by id. */
  mode: "full" | "incremental";
  after: CrmPosition | null;
  limit: number;
}

export interface UpsertResult {
  key: Value[];
  action: OutcomeAction;
  error?: string;
}

export interface ConnectionCheck {
  user: string;
  org: string;
  /** e.g. "DailyApiRequests 14,200 of 15,000 left" */
  limits?: string;
}

export interface CrmProvider {
  readonly name: ProviderName;
  /** The object's record id field ("Id", "id", "hs_object_id") and last-modified field. */
  idField(object: string): string;
  modifiedField(object: string): string;
  check(): Promise<ConnectionCheck>;
  listObjects(): Promise<CrmObject[]>;
  describe(object: string): Promise<CrmField[]>;
  /** Up to `limit` records after `after`; each record carries the id and modified fields. */
  read(request: ReadRequest): Promise<SyncRecord[]>;
  /** Inserts or updates by `keyField` (an external-id / unique field, or the id). */
  upsert(object: string, keyField: string, records: SyncRecord[]): Promise<UpsertResult[]>;
  /** Revokes the token at the provider where it has an endpoint. */
  revoke?(): Promise<void>;
}
