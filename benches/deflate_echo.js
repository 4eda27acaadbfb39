// Closed-loop echo load for benches/deflate_echo.sh: CONNS connections, each sending the corpus
// message, waiting for its echo, and sending again, for SECONDS. Prints the echo count.
//   NODE_PATH=/usr/share/nodejs node benches/deflate_echo.js URL FILE CONNS SECONDS DEFLATE(0|1)
const fs = require('fs');
const WebSocket = require('ws');
const [url, file, conns, seconds, deflate] = process.argv.slice(2);
const msg = fs.readFileSync(file, 'utf8');
let echoes = 0, open = 0, running = true;
const sockets = [];
for (let i = 0; i < Number(conns); i++) {
  const ws = new WebSocket(url, { perMessageDeflate: deflate === '1' ? { threshold: 0 } : false });
  ws.on('open', () => { open++; if (open === Number(conns)) start(); });
  ws.on('message', () => { echoes++; if (running) ws.send(msg); });
  ws.on('error', (e) => { console.error(e.message); process.exit(1); });
  sockets.push(ws);
}
function start() {
  console.log('open ' + (sockets[0].extensions || 'none'));
  for (const ws of sockets) ws.send(msg);
  setTimeout(() => {
    running = false;
    console.log('echoes ' + echoes);
    for (const ws of sockets) ws.terminate();
    process.exit(0);
  }, Number(seconds) * 1000);
}
