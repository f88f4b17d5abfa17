// Shows what the host tells the page: the iframe URL's tenant and extensionId, and the host
// path from the bootstrap message (bridge.js applies the theme by itself).
document.addEventListener('DOMContentLoaded', () => {
  const show = (id, value) => {
    if (!value) return;
    const element = document.getElementById(id);
    element.textContent = value;
    element.classList.remove('muted');
  };
  const query = new URLSearchParams(window.location.search);
  show('tenant', query.get('tenant'));
  show('extension', query.get('extensionId'));
  AlgaBridge.on('bootstrap', (payload) => {
    show('path', payload.navigation && payload.navigation.path);
    AlgaBridge.resize();
  });
  AlgaBridge.ready();
});
