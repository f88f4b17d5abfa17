// The iframe side of Alga's host bridge (window.postMessage). Every message is an envelope
// {alga: true, version: "1", type, payload, request_id?}:
//   iframe -> host: ready, resize {height}, apiproxy {route, method, body?: base64} + request_id
//   host -> iframe: bootstrap {navigation?, theme_tokens?}, theme {"--css-var": value},
//                   apiproxy_response {body?: base64} | {error} with the same request_id
// `apiproxy` reaches this extension's own handler (the manifest's api.endpoints) through the host,
// which adds the tenant and the user: the UI never needs a URL or a token of its own.
const AlgaBridge = (() => {
  const VERSION = '1';
  const TIMEOUT_MS = 15000; // what Alga's iframe SDK waits for an answer
  const waiting = new Map();
  const listeners = { bootstrap: [], theme: [] };

  const send = (type, payload = {}, requestId) => {
    const envelope = { alga: true, version: VERSION, type, payload };
    if (requestId) envelope.request_id = requestId;
    // The sandboxed frame may have an opaque origin: target "*", and answers are checked by source.
    window.parent.postMessage(envelope, '*');
  };

  const toBase64 = (text) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));
  const fromBase64 = (b64) => new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));

  const applyTheme = (tokens) => {
    for (const [name, value] of Object.entries(tokens || {})) {
      if (typeof value === 'string' || typeof value === 'number') {
        document.documentElement.style.setProperty(name.startsWith('--') ? name : `--${name}`, String(value));
      }
    }
  };

  window.addEventListener('message', (event) => {
    const message = event.data;
    if (event.source !== window.parent || !message || message.alga !== true || message.version !== VERSION) return;
    if (message.type === 'apiproxy_response') {
      const entry = waiting.get(message.request_id);
      if (!entry) return;
      waiting.delete(message.request_id);
      clearTimeout(entry.timer);
      const { body, error } = message.payload || {};
      if (error) entry.reject(new Error(typeof error === 'string' ? error : JSON.stringify(error)));
      else entry.resolve(body ? fromBase64(body) : '');
    } else if (message.type === 'bootstrap') {
      applyTheme((message.payload || {}).theme_tokens);
      listeners.bootstrap.forEach((fn) => fn(message.payload || {}));
    } else if (message.type === 'theme') {
      applyTheme(message.payload);
      listeners.theme.forEach((fn) => fn(message.payload || {}));
    }
  });

  return {
    /** Tell the host the page is up (it hides its loading overlay) and report the height. */
    ready() {
      send('ready');
      this.resize();
    },
    resize() {
      send('resize', { height: document.documentElement.scrollHeight });
    },
    on(type, fn) {
      listeners[type].push(fn);
    },
    /** Call this extension's handler: resolves with the response text, rejects with the host's error. */
    call(route, { method = 'GET', body } = {}) {
      const requestId = crypto.randomUUID ? crypto.randomUUID() : `req-${Date.now()}-${Math.random()}`;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(requestId);
          reject(new Error(`no answer from the host after ${TIMEOUT_MS / 1000} s`));
        }, TIMEOUT_MS);
        waiting.set(requestId, { resolve, reject, timer });
        const payload = { route, method };
        if (body !== undefined) payload.body = toBase64(typeof body === 'string' ? body : JSON.stringify(body));
        send('apiproxy', payload, requestId);
      });
    },
  };
})();
