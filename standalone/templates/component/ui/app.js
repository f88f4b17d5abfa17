// Buttons that call the handler (src/handler.ts) through the host: see bridge.js.
document.addEventListener('DOMContentLoaded', () => {
  const state = document.getElementById('state');
  const answer = document.getElementById('answer');

  const show = async (label, pending) => {
    state.textContent = `${label} ...`;
    state.className = 'muted';
    try {
      const text = await pending;
      try {
        answer.textContent = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        answer.textContent = text || '(empty response)';
      }
      state.textContent = `${label}: done`;
    } catch (error) {
      answer.textContent = String(error.message || error);
      state.textContent = `${label}: failed`;
      state.className = 'failed';
    }
    AlgaBridge.resize();
  };

  document.getElementById('hello').addEventListener('click', () => show('GET /hello', AlgaBridge.call('/hello')));
  document.getElementById('echo').addEventListener('click', () =>
    show('POST /echo', AlgaBridge.call('/echo', { method: 'POST', body: { sentAt: new Date().toISOString() } })));
  AlgaBridge.ready();
});
