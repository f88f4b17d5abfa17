// Wires the component's `alga:extension/*` imports into the SDK's HostBindings.
// @alga-psa/extension-runtime ships the types and helpers only; every extension adapts
// the WIT imports itself. The differences handled here:
//   * a WIT `result` error is thrown, with the enum case (e.g. "missing") in `e.payload`;
//   * storage.get returns an entry record (the SDK wants the value bytes, or null);
//   * u64 revisions are BigInt (the SDK uses number);
//   * scheduler payload / field-errors are JSON text in the WIT (objects in the SDK).
import type { HostBindings } from '@alga-psa/extension-runtime';
import { getContext } from 'alga:extension/context';
import { get as getSecret, listKeys } from 'alga:extension/secrets';
import { fetch as httpFetch } from 'alga:extension/http';
import { get as storageGet, put as storagePut, delete as storageDelete, listEntries } from 'alga:extension/storage';
import { logInfo, logWarn, logError } from 'alga:extension/logging';
import { callRoute } from 'alga:extension/ui-proxy';
import { getUser } from 'alga:extension/user';
import {
  listSchedules, getSchedule, createSchedule, updateSchedule, deleteSchedule, getEndpoints,
} from 'alga:extension/scheduler';
import type { ScheduleInfo } from 'alga:extension/types';

function errorCase(e: unknown): unknown {
  return e !== null && typeof e === 'object' && 'payload' in e ? (e as { payload: unknown }).payload : undefined;
}

const parseJson = (text: string | undefined): any => (text === undefined ? undefined : JSON.parse(text));
const toJson = (value: unknown): string | undefined => (value == null ? undefined : JSON.stringify(value));
const schedule = (s: ScheduleInfo) => ({ ...s, payload: parseJson(s.payload) });

export const host: HostBindings = {
  context: {
    get: async () => getContext(),
  },
  secrets: {
    get: async (key) => getSecret(key),
    list: async () => listKeys(),
  },
  http: {
    fetch: async (request) => {
      const response = httpFetch({ ...request, body: request.body ?? undefined });
      return { ...response, body: response.body ?? null };
    },
  },
  storage: {
    get: async (namespace, key) => {
      try {
        return storageGet(namespace, key).value;
      } catch (e) {
        if (errorCase(e) === 'missing') return null;
        throw e;
      }
    },
    put: async ({ namespace, key, value, revision }) => {
      storagePut({ namespace, key, value, revision: revision == null ? undefined : BigInt(revision) });
    },
    delete: async (namespace, key) => {
      storageDelete(namespace, key);
    },
    list: async (namespace) =>
      listEntries(namespace, undefined).map((e) => ({
        key: e.key,
        value: e.value,
        revision: e.revision === undefined ? null : Number(e.revision),
      })),
  },
  logging: {
    info: async (message) => logInfo(message),
    warn: async (message) => logWarn(message),
    error: async (message) => logError(message),
  },
  uiProxy: {
    callRoute: async (route, payload) => callRoute(route, payload ?? undefined),
  },
  scheduler: {
    list: async () => listSchedules().map(schedule),
    get: async (id) => {
      const s = getSchedule(id);
      return s === undefined ? null : schedule(s);
    },
    create: async (input) => {
      const result = createSchedule({ ...input, payload: toJson(input.payload) });
      return { ...result, fieldErrors: parseJson(result.fieldErrors) };
    },
    update: async (id, input) => {
      const result = updateSchedule(id, {
        endpoint: input.endpoint,
        cron: input.cron,
        timezone: input.timezone,
        enabled: input.enabled,
        name: input.name ?? undefined,
        payload: toJson(input.payload),
      });
      return { ...result, fieldErrors: parseJson(result.fieldErrors) };
    },
    delete: async (id) => deleteSchedule(id),
    getEndpoints: async () => getEndpoints(),
  },
  user: {
    getUser: async () => getUser(),
  },
};
