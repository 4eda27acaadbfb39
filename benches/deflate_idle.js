// Opens CONNS idle connections (with or without permessage-deflate negotiated), waits, then
// prints "open N ext" and keeps them until killed: for benches/deflate_idle.sh.
//   NODE_PATH=/usr/share/nodejs node benches/deflate_idle.js URL CONNS DEFLATE(0|1)
const WebSocket = require('ws');
const [url, conns, deflate] = process.argv.slice(2);
let open = 0, ext = '';
const sockets = [];
function one() {
  const ws = new WebSocket(url, { perMessageDeflate: deflate === '1' });
  ws.on('open', () => {
    open++; ext = ws.extensions || 'none';
    if (open === Number(conns)) console.log('open ' + open + ' ' + ext);
    else if (sockets.length < Number(conns)) one();
  });
  ws.on('error', (e) => { console.error(e.message); process.exit(1); });
  sockets.push(ws);
}
for (let i = 0; i < 50; i++) one();
