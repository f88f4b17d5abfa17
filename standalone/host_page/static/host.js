// Host side of the Alga iframe bridge (envelope {alga: true, version: "1", type, request_id?, payload}),
// as Alga's own hosts speak it (ee/server/src/lib/extensions/ui/iframeBridge.ts and the iframe
// components using it), plus the page's developer tools: tenant switcher, theme toggle, "call
// endpoint" form, debug console.
//   host -> iframe: bootstrap {session, theme_tokens, navigation}, theme {--alga-*: value}, apiproxy_response
//   iframe -> host: ready, resize {height}, navigate {path} (ignored), apiproxy {route, method, body (base64)}
(function () {
  'use strict';

  var VERSION = '1';
  var MIN_HEIGHT = 100;
  var MAX_HEIGHT = 4000;
  var MAX_EVENTS = 500;
  var METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
  var THEME_KEY = 'alga-host-theme';

  // ---- helpers -------------------------------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  function bytesToBase64(bytes) {
    var binary = '';
    for (var i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
  }

  function base64ToBytes(b64) {
    var binary = atob(b64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  // A route or path appended to /api/ext[-proxy]/{id}: absolute, no whitespace or backslash, and no
  // "." or ".." segment (also percent-encoded), which the URL parser would resolve into another route.
  function safeRoute(route) {
    if (typeof route !== 'string') return null;
    if (route.charAt(0) !== '/') route = '/' + route;
    if (route.length > 2048 || /[\s\\#]/.test(route)) return null;
    var segments = route.split('?')[0].split('/');
    for (var i = 0; i < segments.length; i++) {
      var s = segments[i].toLowerCase().replace(/%2e/g, '.');
      if (s === '.' || s === '..') return null;
    }
    return route;
  }

  // ---- theme ---------------------------------------------------------------------------------

  var themes = null;
  var themeListeners = [];

  function currentTheme() {
    return document.documentElement.getAttribute('data-theme') || 'light';
  }

  function applyTheme(name) {
    if (name === 'light') document.documentElement.removeAttribute('data-theme');
    else document.documentElement.setAttribute('data-theme', name);
    var toggle = $('theme-toggle');
    if (toggle) toggle.textContent = name === 'dark' ? 'Light theme' : 'Dark theme';
  }

  function setupTheme() {
    var stored = null;
    try { stored = localStorage.getItem(THEME_KEY); } catch (e) { /* storage disabled */ }
    if (stored === 'dark') applyTheme('dark');
    var toggle = $('theme-toggle');
    if (!toggle) return;
    toggle.hidden = false;
    toggle.addEventListener('click', function () {
      var next = currentTheme() === 'dark' ? 'light' : 'dark';
      applyTheme(next);
      try { localStorage.setItem(THEME_KEY, next); } catch (e) { /* storage disabled */ }
      themeListeners.forEach(function (fn) { fn(next); });
    });
  }

  // ---- tenant switcher -----------------------------------------------------------------------

  function setupTenantSwitcher() {
    var select = $('tenant-select');
    if (select) select.addEventListener('change', function () { select.form.submit(); });
  }

  // ---- debug console -------------------------------------------------------------------------

  function Console(list, state) {
    this.list = list;
    this.state = state;
  }

  Console.prototype.add = function (event, extraClass) {
    var list = this.list;
    var empty = list.querySelector('.events-empty');
    if (empty) empty.remove();
    var stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
    var row = document.createElement('li');
    row.className = 'event' + (extraClass ? ' ' + extraClass : '');
    var level = String(event.level || 'info');
    var time = new Date(Number(event.ts) || Date.now());
    var cells = [
      ['ts', time.toLocaleTimeString([], { hour12: false }) + '.' + String(time.getMilliseconds()).padStart(3, '0')],
      ['level level-' + level.replace(/[^a-z]/g, ''), level],
      ['stream', String(event.stream || '')],
      ['message', String(event.message || '') + (event.truncated ? ' …(truncated)' : '')]
    ];
    cells.forEach(function (cell) {
      var span = document.createElement('span');
      span.className = cell[0];
      span.textContent = cell[1];
      row.appendChild(span);
    });
    if (event.request) row.title = 'request ' + event.request + (event.install ? ', install ' + event.install : '');
    list.appendChild(row);
    while (list.children.length > MAX_EVENTS) list.firstElementChild.remove();
    if (stick) list.scrollTop = list.scrollHeight;
  };

  Console.prototype.bridge = function (level, message) {
    this.add({ level: level, stream: 'bridge', message: message }, 'bridge');
  };

  Console.prototype.setState = function (text, cls) {
    this.state.textContent = text;
    this.state.className = 'pill' + (cls ? ' ' + cls : '');
  };

  Console.prototype.follow = function (url) {
    var self = this;
    var source = new EventSource(url);
    source.onopen = function () { self.setState('live', 'live'); };
    source.onerror = function () {
      self.setState(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting', 'down');
    };
    source.onmessage = function (e) {
      try { self.add(JSON.parse(e.data)); } catch (err) { /* not an event */ }
    };
  };

  // ---- the bridge ----------------------------------------------------------------------------

  function Bridge(frame, config, console_) {
    this.frame = frame;
    this.config = config;
    this.console = console_;
    this.readySeen = false;
    // As Alga's DockerExtensionIframe: the src resolved against the page, plus ?parentOrigin=, which
    // the SDK's IframeBridge takes as the only origin it accepts messages from and posts to.
    var src = new URL(frame.getAttribute('data-src'), window.location.href);
    src.searchParams.set('parentOrigin', window.location.origin);
    this.src = src.toString();
    // The default sandbox (allow-same-origin, as Alga's hosts) keeps the src origin. The strict one
    // gives the frame an opaque origin: its messages arrive with origin "null" and no targetOrigin can
    // name it, so this page posts with "*", but only ever to this iframe's own contentWindow, and
    // accepts messages only from that window.
    var opaque = frame.hasAttribute('sandbox') && !frame.sandbox.contains('allow-same-origin');
    this.targetOrigin = opaque ? '*' : src.origin;
    this.expectedOrigin = opaque ? 'null' : src.origin;
  }

  // apiproxy_response goes to "*" in every mode, as Alga's host bridge posts it.
  Bridge.prototype.post = function (type, payload, requestId, targetOrigin) {
    var target = this.frame.contentWindow;
    if (!target) return;
    var message = { alga: true, version: VERSION, type: type, payload: payload };
    if (requestId !== undefined) message.request_id = requestId;
    target.postMessage(message, targetOrigin || this.targetOrigin);
  };

  Bridge.prototype.bootstrap = function () {
    this.post('bootstrap', {
      session: this.config.session,
      theme_tokens: themes[currentTheme()],
      navigation: { path: this.config.path }
    });
  };

  // Alga's knative host sends "theme" (payload: the token map) on "ready" and on every theme change;
  // the SDK's subscribeTheme() applies it.
  Bridge.prototype.theme = function () {
    this.post('theme', themes[currentTheme()]);
  };

  // Alga's host bridge checks the source window and the origin, and for resize and apiproxy nothing
  // else; ready and navigate need the envelope. The dev flag (EXT_UI_BRIDGE_ANY_ORIGIN) widens the
  // accepted origins, never the source check.
  Bridge.prototype.accepts = function (event) {
    if (!this.frame.contentWindow || event.source !== this.frame.contentWindow) return false;
    if (!this.config.any_origin && event.origin !== this.expectedOrigin) return false;
    return !!event.data && typeof event.data === 'object';
  };

  Bridge.prototype.onMessage = function (event) {
    if (!this.accepts(event)) return;
    var m = event.data;
    var enveloped = m.alga === true && m.version === VERSION;
    var payload = m.payload && typeof m.payload === 'object' ? m.payload : {};
    if (!enveloped && (m.type === 'resize' || m.type === 'apiproxy')) {
      this.console.bridge('warn', m.type + ' without the {alga: true, version: "1"} envelope ' +
        '(handled, as Alga does; the SDK always sends it)');
    }
    if (m.type === 'resize') {
      var height = Number(payload.height);
      if (isFinite(height)) {
        this.frame.style.height = Math.max(MIN_HEIGHT, Math.min(MAX_HEIGHT, Math.floor(height))) + 'px';
      }
    } else if (m.type === 'apiproxy') {
      this.apiproxy(m.request_id, payload);
    } else if (enveloped && m.type === 'ready') {
      this.readySeen = true;
      this.bootstrap();
      this.theme();
    } else if (enveloped && m.type === 'navigate') {
      // The hosts Alga uses ignore navigate; so does this one, so a UI cannot come to rely on it.
      this.console.bridge('info', 'navigate ' + JSON.stringify(payload.path) + ' ignored (as Alga\'s hosts do)');
    }
  };

  Bridge.prototype.onLoad = function () {
    if (!this.readySeen) this.bootstrap();
    this.readySeen = false;
  };

  // As Alga's iframeBridge.ts: no request_id, no reply; a method outside GET/POST/PUT/PATCH/DELETE
  // gets no reply either (the SDK times out); the body is base64, sent only for non-GET as
  // application/octet-stream; an HTTP error becomes "Proxy error <status>: <body>".
  Bridge.prototype.apiproxy = function (requestId, payload) {
    var self = this;
    if (!requestId) return;
    var method = typeof payload.method === 'string' && payload.method.trim() ? payload.method.toUpperCase() : 'POST';
    if (METHODS.indexOf(method) < 0) {
      this.console.bridge('error', 'apiproxy: unsupported method ' + JSON.stringify(payload.method) +
        '; no reply (as Alga\'s host bridge)');
      return;
    }
    function answer(result, level, text) {
      self.console.bridge(level, 'apiproxy ' + method + ' ' + payload.route + ' ' + text);
      self.post('apiproxy_response', result, requestId, '*');
    }
    var route = safeRoute(payload.route || '');
    if (route === null) return answer({ error: 'Invalid proxy route' }, 'error', 'refused (dot segment)');
    var body;
    if (payload.body) {
      try { body = base64ToBytes(payload.body); } catch (e) { return answer({ error: e.message }, 'error', 'bad body'); }
    }
    // No session here: the page names its tenant for the standalone gateway.
    var init = { method: method, headers: { 'x-alga-tenant': this.config.tenant } };
    if (body && method !== 'GET') {
      init.body = body;
      init.headers['content-type'] = 'application/octet-stream';
    }
    fetch('/api/ext-proxy/' + encodeURIComponent(this.config.extension_id) + route, init).then(function (res) {
      if (!res.ok) {
        return res.text().catch(function () { return res.statusText; }).then(function (text) {
          answer({ error: 'Proxy error ' + res.status + ': ' + text }, 'warn', '-> ' + res.status);
        });
      }
      return res.arrayBuffer().then(function (buf) {
        answer({ body: bytesToBase64(new Uint8Array(buf)) }, 'info', '-> ' + res.status);
      });
    }).catch(function (err) {
      answer({ error: String(err && err.message ? err.message : err) }, 'error', 'failed: ' + err);
    });
  };

  // ---- "call endpoint" form ------------------------------------------------------------------

  function setupCallForm(config) {
    var form = $('call-form');
    if (!form) return;  // a UI-only extension has no endpoints
    var methodEl = $('call-method');
    var pathEl = $('call-path');
    var bodyEl = $('call-body');

    Array.prototype.forEach.call(document.querySelectorAll('.endpoint'), function (button) {
      button.addEventListener('click', function () {
        methodEl.value = button.getAttribute('data-method');
        pathEl.value = button.getAttribute('data-path');
        pathEl.focus();
      });
    });

    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var path = safeRoute(pathEl.value.trim());
      if (path === null) {
        return showResult('invalid path', false, '', 'Use an absolute path without "." or ".." segments.');
      }
      var init = { method: methodEl.value, headers: { 'x-alga-tenant': config.tenant } };
      var text = bodyEl.value;
      if (text && methodEl.value !== 'GET') {
        init.body = text;
        try { JSON.parse(text); init.headers['content-type'] = 'application/json'; } catch (err) {
          init.headers['content-type'] = 'text/plain; charset=utf-8';
        }
      }
      var started = performance.now();
      showResult('…', null, '', '');
      fetch('/api/ext/' + encodeURIComponent(config.extension_id) + path, init).then(function (res) {
        var headers = [];
        res.headers.forEach(function (value, name) { headers.push(name + ': ' + value); });
        return res.text().then(function (body) {
          var timing = Math.round(performance.now() - started) + ' ms';
          showResult(res.status + ' ' + res.statusText, res.ok, timing, pretty(body), headers.join('\n'));
        });
      }).catch(function (err) {
        showResult('failed', false, '', String(err));
      });
    });
  }

  function pretty(text) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text || '(empty body)'; }
  }

  function showResult(status, ok, timing, body, headers) {
    $('call-result').hidden = false;
    var el = $('call-status');
    el.textContent = status;
    el.className = 'status' + (ok === true ? ' ok' : ok === false ? ' error' : '');
    $('call-timing').textContent = timing;
    $('call-body-out').textContent = body;
    $('call-headers').textContent = headers || '';
  }

  // ---- wiring --------------------------------------------------------------------------------

  setupTheme();
  setupTenantSwitcher();
  var configEl = $('host-config');
  if (!configEl) return;
  var config = JSON.parse(configEl.textContent);
  themes = config.themes;

  var debug = new Console($('debug-events'), $('debug-state'));
  $('debug-clear').addEventListener('click', function () { $('debug-events').textContent = ''; });
  debug.follow(config.events_url);

  var frame = $('ext-frame');
  var bridge = new Bridge(frame, config, debug);
  window.addEventListener('message', function (event) { bridge.onMessage(event); });
  frame.addEventListener('load', function () { bridge.onLoad(); });
  themeListeners.push(function () { bridge.theme(); });
  // Set only now, so neither the child's "ready" nor its "load" can come before the listeners.
  frame.src = bridge.src;
  setupCallForm(config);
})();
