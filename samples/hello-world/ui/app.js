// Shows the `tenant` and `extensionId` query parameters the host adds to the iframe URL.
// External file on purpose: the runner serves UI pages with CSP `script-src 'self'`.
(function () {
  'use strict';

  function show(id, value) {
    var el = document.getElementById(id);
    if (!el || !value) return;
    el.textContent = value;
    el.classList.remove('muted');
  }

  document.addEventListener('DOMContentLoaded', function () {
    var params = new URLSearchParams(window.location.search);
    show('tenant', params.get('tenant'));
    show('extension-id', params.get('extensionId'));
  });
})();
