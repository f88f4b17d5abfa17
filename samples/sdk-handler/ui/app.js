// Child side of the Alga iframe bridge (postMessage, envelope {alga: true, version: "1", type, ...}).
//   child -> host: ready, apiproxy {request_id, payload: {route, method, body?}}, resize
//   host -> child: bootstrap {payload: {navigation?, theme_tokens?}}, theme {payload: {--alga-*: value}},
//                  apiproxy_response {request_id, payload: {body? (base64), error?}}
// The host may sandbox the iframe without allow-same-origin (an opaque origin), so messages go to
// the parent with target "*" and incoming ones are checked by source.
(function () {
  'use strict';

  var VERSION = '1';
  var TIMEOUT_MS = 15000;
  var pending = Object.create(null);
  var counter = 0;

  function post(type, payload, extra) {
    var message = { alga: true, version: VERSION, type: type, payload: payload || {} };
    if (extra) {
      Object.keys(extra).forEach(function (key) { message[key] = extra[key]; });
    }
    window.parent.postMessage(message, '*');
  }

  function reportHeight() {
    post('resize', { height: document.documentElement.scrollHeight });
  }

  function newRequestId() {
    counter += 1;
    var random = Math.random().toString(36).slice(2, 10);
    return 'req-' + Date.now().toString(36) + '-' + counter + '-' + random;
  }

  function encodeBase64(text) {
    var bytes = new TextEncoder().encode(text);
    var binary = '';
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary);
  }

  function decodeBase64(b64) {
    var binary = atob(b64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return new TextDecoder().decode(bytes);
  }

  function setStatus(text, isError) {
    var el = document.getElementById('handler-status');
    el.textContent = text;
    el.classList.toggle('muted', !isError && text === 'Idle');
    el.classList.toggle('error', !!isError);
  }

  function render(text, isError) {
    var out = document.getElementById('handler-result');
    out.textContent = text;
    out.classList.toggle('error', !!isError);
    reportHeight();
  }

  // Sends an apiproxy request; resolves with {body: <decoded text>} or rejects with an error.
  function callApi(route, method, bodyText) {
    return new Promise(function (resolve, reject) {
      var requestId = newRequestId();
      var payload = { route: route, method: method };
      if (bodyText !== undefined) payload.body = encodeBase64(bodyText);
      var timer = window.setTimeout(function () {
        delete pending[requestId];
        reject(new Error('no answer from the host after ' + TIMEOUT_MS / 1000 + ' s'));
      }, TIMEOUT_MS);
      pending[requestId] = { resolve: resolve, reject: reject, timer: timer };
      post('apiproxy', payload, { request_id: requestId });
    });
  }

  function showResponse(label, promise) {
    setStatus(label + '…', false);
    promise.then(function (result) {
      var text = result.body;
      try {
        text = JSON.stringify(JSON.parse(text), null, 2);
      } catch (e) {
        // not JSON: show the text as it came
      }
      setStatus(label + ': done', false);
      render(text === '' ? '(empty response)' : text, false);
    }, function (err) {
      setStatus(label + ': failed', true);
      render(String(err && err.message ? err.message : err), true);
    });
  }

  function onApiResponse(message) {
    var entry = pending[message.request_id];
    if (!entry) return;
    delete pending[message.request_id];
    window.clearTimeout(entry.timer);
    var payload = message.payload || {};
    if (payload.error) {
      entry.reject(new Error(typeof payload.error === 'string' ? payload.error : JSON.stringify(payload.error)));
      return;
    }
    try {
      entry.resolve({ body: payload.body ? decodeBase64(payload.body) : '' });
    } catch (e) {
      entry.reject(new Error('could not decode the response body: ' + e));
    }
  }

  function onBootstrap(payload) {
    var navigation = payload && payload.navigation;
    if (navigation && typeof navigation.path === 'string') {
      var nav = document.getElementById('nav-path');
      nav.textContent = navigation.path;
      nav.classList.remove('muted');
    }
    applyTheme(payload && payload.theme_tokens);
    reportHeight();
  }

  function applyTheme(tokens) {
    if (!tokens || typeof tokens !== 'object') return;
    var root = document.documentElement;
    Object.keys(tokens).forEach(function (name) {
      var value = tokens[name];
      if (typeof value !== 'string' && typeof value !== 'number') return;
      root.style.setProperty(name.indexOf('--') === 0 ? name : '--' + name, String(value));
    });
  }

  window.addEventListener('message', function (event) {
    if (event.source !== window.parent) return;
    var message = event.data;
    if (!message || message.alga !== true || message.version !== VERSION) return;
    if (message.type === 'apiproxy_response') onApiResponse(message);
    else if (message.type === 'bootstrap') onBootstrap(message.payload || {});
    else if (message.type === 'theme') applyTheme(message.payload);
  });

  document.addEventListener('DOMContentLoaded', function () {
    document.getElementById('call-handler').addEventListener('click', function () {
      showResponse('GET /hello', callApi('/hello', 'GET'));
    });
    document.getElementById('increment').addEventListener('click', function () {
      showResponse('POST /counter', callApi('/counter', 'POST', '{}'));
    });
    post('ready', {});
    reportHeight();
  });
})();
