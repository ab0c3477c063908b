/**
 * How a CRM provider keeps its tokens. The connection node backs this with the
 * state store (sealed with AES-256-GCM); tests back it with memory. A provider
 * calls `save` the moment a refresh or login yields new tokens, because some
 * providers rotate refresh tokens and invalidate the previous one: a token kept
 * only in memory would be lost by a restart and the connection with it.
 */
import type { CrmTokens } from "./provider";

export interface ProviderAuth {
  /** The stored tokens, or undefined when the connection has none yet. */
  load(): Promise<CrmTokens | undefined>;
  /** Persists new tokens at once (a rotated refresh token replaces the old one). */
  save(tokens: CrmTokens): Promise<void>;
}

/** Tokens held in memory only: for tests and for logins that need no persistence. */
export function memoryAuth(initial?: CrmTokens): ProviderAuth & { saved: CrmTokens[] } {
  let current = initial ? { ...initial } : undefined;
  const saved: CrmTokens[] = [];
  return {
    saved,
    async load() {
      return current ? { ...current } : undefined;
    },
    async save(tokens: CrmTokens) {
      current = { ...tokens };
      saved.push({ ...tokens });
    },
  };
}
