// A stand-in for Alga's UI proxy route (server/src/app/runner/[[...path]]/route.ts with
// fetchStaticAsset and filterHopByHopHeaders of packages/product-ext-proxy/ee/runner-backend.ts),
// written for the tests from what that route does:
//   GET|HEAD /runner/<segments>?<query>  ->  <upstream>/<decoded segments joined by "/"><query>
//   request headers: only accept, accept-encoding, accept-language, if-modified-since, if-none-match,
//   range, user-agent; Node's fetch (undici), which follows redirects and DECODES gzip/br bodies;
//   the answer: the runner's status and every header but the hop-by-hop ones (so Content-Encoding
//   and Content-Length stay as the runner sent them), the decoded body streamed through.
// Usage: node alga_runner_proxy.mjs <upstream base URL>; prints the port it listens on (127.0.0.1).
import http from 'node:http';
import { Readable } from 'node:stream';

const upstream = process.argv[2].replace(/\/+$/, '');
const FORWARDED = new Set(['accept', 'accept-encoding', 'accept-language', 'if-modified-since',
  'if-none-match', 'range', 'user-agent']);
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te',
  'trailer', 'transfer-encoding', 'upgrade']);

function json(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

async function proxy(req, res) {
  const url = new URL(req.url, 'http://proxy.invalid');
  // The rest of the Alga app, for the tests: an empty page at / and its favicon.
  if (url.pathname === '/') return res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html>');
  if (url.pathname === '/favicon.ico') return res.writeHead(204).end();
  if (url.pathname !== '/runner' && !url.pathname.startsWith('/runner/')) return json(res, 404, { error: 'not_found' });
  if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method_not_allowed' });
  // Next hands the catch-all over percent-decoded (sha256%3A... arrives as sha256:...)
  const segments = url.pathname.slice('/runner'.length).split('/').filter(Boolean).map(decodeURIComponent);
  const target = `${upstream}/${segments.join('/')}`.replace(/\/+$/, '') + url.search;
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (FORWARDED.has(name)) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  let answer;
  try {
    answer = await fetch(target, { method: req.method, headers });
  } catch {
    return json(res, 502, { error: 'runner_unreachable' });
  }
  const out = {};
  answer.headers.forEach((value, name) => {
    if (!HOP_BY_HOP.has(name)) out[name] = value;
  });
  res.writeHead(answer.status, out);
  if (req.method === 'HEAD' || !answer.body) return res.end();
  Readable.fromWeb(answer.body).on('error', () => res.destroy()).pipe(res);
}

const server = http.createServer((req, res) => {
  proxy(req, res).catch(() => json(res, 502, { error: 'runner_proxy_error' }));
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
