// Type-checked in CI with `tsc --strict` (npm run typecheck): a typical use of the client.
import { TelebridgeClient, TelebridgeError, type Frame } from 'telebridge-client';

const client = new TelebridgeClient('ws://127.0.0.1:8080/ws/connect', {
  initialDelay: 250,
  token: 'abc.def.ghi',
  tokenIn: 'query',
});

client.on('state', (ev) => {
  const s: string = ev.state;
  console.log(`state ${s} (attempt ${ev.attempt})`);
});
client.on('refused', (r) => console.log(`refused: ${r.close} ${r.code} ${r.message}`));
client.on('telemetry_update', (f: Frame) => {
  const speed: unknown = f.data?.speed;
  console.log(f.room, f.seq, speed);
});

async function main(): Promise<void> {
  client.connect();
  await client.once('open');
  await client.subscribe(['vehicle:demo-001'], { max_rate: 2 });
  const past: Frame[] = await client.history('vehicle:demo-001', { max: 100 });
  console.log(`${past.length} frames of history`);
  try {
    await client.ackAlert('engine_overheat:demo-001', { by: 'alice', timeout: 2000 });
  } catch (e) {
    if (e instanceof TelebridgeError) console.log(e.code);
  }
  const control = new TelebridgeClient('ws://127.0.0.1:8080/ws/control/demo-00001/alice');
  control.connect();
  await control.once('open');
  try {
    const answer: unknown = await control.command('demo-00001', 'ping', undefined, { timeout: 6000 });
    console.log(answer);
    const pub = await control.publish('chat', { to: 'bob', text: 'hi' }, { retain: false });
    console.log(pub.topic);
  } catch (e) {
    if (e instanceof TelebridgeError) console.log(`refused: ${e.code}`);
  }
  control.close();
  const lag: number | null = client.stats.lagMs;
  console.log(lag);
  client.close();
}
void main();
