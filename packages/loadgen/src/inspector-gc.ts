import WebSocket from 'ws';

/**
 * Asks Node processes started with `--inspect=127.0.0.1:PORT` for a full garbage
 * collection (the inspector's HeapProfiler.collectGarbage), so that resident
 * memory measured afterwards is what the process holds, not what V8 has yet to
 * collect: a young generation grown during a burst of connections is tens of MB
 * whatever the number of connections, and would otherwise read as per-connection cost.
 */
export async function collectGarbage(inspectorPorts: readonly number[]): Promise<void> {
  await Promise.all(inspectorPorts.map(async (port) => {
    const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string }>;
    const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl);
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    try {
      for (let id = 1; id <= 2; id++) { // twice: the first may only reach what the second frees
        await new Promise<void>((resolve) => {
          ws.once('message', () => resolve());
          ws.send(JSON.stringify({ id, method: 'HeapProfiler.collectGarbage' }));
        });
      }
    } finally {
      ws.close();
    }
  }));
}
