/**
 * The page the inspector relay serves at `/`: it embeds the Stately inspector UI in a frame and forwards every
 * message from the relay's WebSocket into it, holding them until the frame says it is ready
 * (`@statelyai.connected`, the handshake of `@statelyai/inspect`'s browser receiver).
 */
export function bridgePage(inspectorUrl: string): string {
  const target = JSON.stringify(inspectorUrl).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Obra · Stately inspector</title>
<style>
  html, body { margin: 0; height: 100%; font: 13px system-ui, sans-serif; }
  #bar { position: fixed; right: 8px; bottom: 8px; background: #111827cc; color: #f9fafb; padding: 4px 8px; border-radius: 4px; }
  iframe { border: 0; width: 100%; height: 100%; display: block; }
</style>
</head>
<body>
<iframe id="inspector" title="Stately inspector"></iframe>
<div id="bar">connecting…</div>
<script>
  const frame = document.getElementById('inspector');
  const bar = document.getElementById('bar');
  const waiting = [];
  let ready = false;
  let received = 0;
  const deliver = (message) => frame.contentWindow.postMessage(message, '*');
  window.addEventListener('message', (event) => {
    if (event.source !== frame.contentWindow || !event.data || event.data.type !== '@statelyai.connected') return;
    ready = true;
    waiting.splice(0).forEach(deliver);
  });
  frame.src = ${target};
  const socket = new WebSocket('ws://' + location.host);
  socket.onopen = () => { bar.textContent = 'connected to Obra'; };
  socket.onclose = () => { bar.textContent = 'Obra closed the connection after ' + received + ' events (the inspector keeps what it got)'; };
  socket.onerror = () => { bar.textContent = 'cannot reach Obra at ' + location.host; };
  socket.onmessage = (event) => {
    received += 1;
    const message = JSON.parse(event.data);
    if (ready) deliver(message); else waiting.push(message);
    bar.textContent = 'connected to Obra · ' + received + ' events';
  };
</script>
</body>
</html>
`;
}
