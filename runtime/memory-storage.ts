/**
 * A Node-RED storage module that keeps everything in memory, for headless runs of a
 * flow file: the user's own flows.json is never touched. It implements settings too,
 * since Node-RED switches credential encryption off when a storage module lacks them.
 */
export function memoryStorage(): object {
  let flows: object[] = [];
  let credentials: object = {};
  let settings: object = {};
  let sessions: object = {};
  return {
    init: async () => undefined,
    getFlows: async () => flows,
    saveFlows: async (next: object[]) => {
      flows = next;
    },
    getCredentials: async () => credentials,
    saveCredentials: async (next: object) => {
      credentials = next;
    },
    getSettings: async () => settings,
    saveSettings: async (next: object) => {
      settings = next;
    },
    getSessions: async () => sessions,
    saveSessions: async (next: object) => {
      sessions = next;
    },
    getLibraryEntry: async () => [],
    saveLibraryEntry: async () => undefined,
  };
}
