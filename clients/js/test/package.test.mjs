// Tests of the package as an installer sees it: both entries resolve through "exports" and
// export the same names, the generated files are up to date, `npm pack` ships exactly the
// runtime files, and the types hold under `tsc --strict` (the example compiles; a wrong
// option type does not). The TypeScript checks need `npm ci` (typescript is a devDependency).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esm from 'telebridge-client';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const run = (cmd, args) => spawnSync(cmd, args, { cwd: dir, encoding: 'utf8', timeout: 120000 });

test('ESM and CommonJS entries export the same API', () => {
  const cjs = require('telebridge-client');
  assert.deepEqual(Object.keys(cjs).sort(), Object.keys(esm).sort());
  for (const name of ['TelebridgeClient', 'TelebridgeError', 'STATES']) assert.ok(cjs[name], name);
  assert.equal(require.resolve('telebridge-client'), path.join(dir, 'telebridge-client.cjs'));
  const c = new cjs.TelebridgeClient('ws://127.0.0.1:1/ws', { WebSocket: class {} });
  assert.equal(c.state, 'idle');
});

test('generated files (CommonJS entry, dashboard copy) match the source', () => {
  const r = run(process.execPath, ['build.mjs', '--check']);
  assert.equal(r.status, 0, r.stderr);
});

test('npm pack ships the entries, the types and the README, nothing else', () => {
  const r = run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts']);
  assert.equal(r.status, 0, r.stderr);
  const files = JSON.parse(r.stdout)[0].files.map((f) => f.path).sort();
  assert.deepEqual(files, ['README.md', 'package.json', 'telebridge-client.cjs', 'telebridge-client.d.ts', 'telebridge-client.js']);
});

const tsc = path.join(dir, 'node_modules', 'typescript', 'bin', 'tsc');
test('tsc --strict: the example type-checks, a wrong option type is an error', { skip: !fs.existsSync(tsc) && 'typescript not installed: run npm ci in clients/js' }, () => {
  const ok = run(process.execPath, [tsc, '-p', 'example/tsconfig.json']);
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  const bad = run(process.execPath, [tsc, '-p', 'example/tsconfig.bad.json']);
  assert.notEqual(bad.status, 0, 'bad-option.ts must not compile');
  assert.match(bad.stdout, /bad-option\.ts.*TS2322/);
});
