// API handler of the sdk-handler sample, written with @alga-psa/extension-runtime.
//   GET  /hello    greeting with the request's context (and a log line)
//   POST /counter  increments a counter kept in extension storage
//   GET  /counter  reads it (0 when it was never set)
/// <reference path="./types/runner.d.ts" />
import { jsonResponse } from '@alga-psa/extension-runtime';
import type { ExecuteRequest, ExecuteResponse, Handler, HostBindings } from '@alga-psa/extension-runtime';
import { host } from './host';

const COUNTER_NAMESPACE = 'counter';
const COUNTER_KEY = 'value';

async function readCounter(h: HostBindings): Promise<number> {
  const raw = await h.storage.get(COUNTER_NAMESPACE, COUNTER_KEY);
  if (raw === null) return 0;
  const value = JSON.parse(new TextDecoder().decode(raw));
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

const app: Handler = async (request, h) => {
  const method = request.http.method.toUpperCase();
  const url = request.http.url;
  const path = url.split('?', 1)[0];

  if (path === '/hello' && method === 'GET') {
    const ctx = await h.context.get();
    await h.logging.info(`hello from sdk-handler for ${ctx.tenantId}`);
    return jsonResponse({
      message: 'Hello from the SDK handler',
      tenantId: ctx.tenantId,
      extensionId: ctx.extensionId,
      method,
      url,
    });
  }

  if (path === '/counter' && method === 'GET') {
    return jsonResponse({ count: await readCounter(h) });
  }

  if (path === '/counter' && method === 'POST') {
    const count = (await readCounter(h)) + 1;
    await h.storage.put({
      namespace: COUNTER_NAMESPACE,
      key: COUNTER_KEY,
      value: new TextEncoder().encode(JSON.stringify(count)),
    });
    return jsonResponse({ count });
  }

  return jsonResponse({ error: 'not found', method, path }, { status: 404 });
};

// The function the component exports (world `runner`, export `handler`).
export async function handler(request: ExecuteRequest): Promise<ExecuteResponse> {
  try {
    return await app(request, host);
  } catch (e) {
    const error = e !== null && typeof e === 'object' && 'payload' in e ? String((e as { payload: unknown }).payload) : String(e);
    return jsonResponse({ error }, { status: 500 });
  }
}
