// The API handler of __NAME__: the component's `handler` export (WIT world `runner`), written
// with @alga-psa/extension-runtime. Only requests matching the manifest's api.endpoints reach it:
//   GET  /hello  a greeting with the request's context, and a line in the debug stream
//   POST /echo   the JSON body it was sent, parsed and sent back
/// <reference path="../dist/types/runner.d.ts" />
import { jsonResponse } from '@alga-psa/extension-runtime';
import type { ExecuteRequest, ExecuteResponse, Handler } from '@alga-psa/extension-runtime';
import { host } from './host';

const routes: Record<string, Handler> = {
  'GET /hello': async (_request, h) => {
    const ctx = await h.context.get();
    await h.logging.info(`hello from __NAME__ for tenant ${ctx.tenantId}`);
    return jsonResponse({ message: 'Hello from __NAME__', tenantId: ctx.tenantId, extensionId: ctx.extensionId });
  },
  'POST /echo': async (request) => {
    const text = request.http.body ? new TextDecoder().decode(request.http.body) : '';
    try {
      return jsonResponse({ received: text ? JSON.parse(text) : null });
    } catch {
      return jsonResponse({ error: 'the body is not JSON', received: text }, { status: 400 });
    }
  },
};

export async function handler(request: ExecuteRequest): Promise<ExecuteResponse> {
  const path = request.http.url.split('?', 1)[0];
  const route = routes[`${request.http.method.toUpperCase()} ${path}`];
  if (route === undefined) {
    return jsonResponse({ error: 'no such route', method: request.http.method, path }, { status: 404 });
  }
  try {
    return await route(request, host);
  } catch (e) {
    // A WIT `result` error arrives as an exception whose `payload` is the error case (e.g. "denied").
    const reason = e !== null && typeof e === 'object' && 'payload' in e ? (e as { payload: unknown }).payload : e;
    return jsonResponse({ error: String(reason) }, { status: 500 });
  }
}
