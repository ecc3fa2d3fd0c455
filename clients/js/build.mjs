// build.mjs — derives the CommonJS entry and the dashboard's copy from the one source file,
// telebridge-client.js (an ES module). `node build.mjs` writes them; `node build.mjs --check`
// exits 1 when either is out of date (run by the package tests, so CI catches a forgotten build).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const src = fs.readFileSync(path.join(here, 'telebridge-client.js'), 'utf8');

/** The ES module as a CommonJS module: `export` keywords dropped, names put on module.exports. */
export function toCommonJs(esm) {
  const names = [];
  const body = esm.replace(/^export (const|class|function) (\w+)/gm, (_, kind, name) => { names.push(name); return `${kind} ${name}`; });
  if (/^export /m.test(body)) throw new Error('build.mjs: an export form it does not know; extend toCommonJs');
  return `// GENERATED from telebridge-client.js by build.mjs; edit that file, then run \`npm run build\`.\n'use strict';\n${body}\nmodule.exports = { ${names.join(', ')} };\n`;
}

const outputs = {
  [path.join(here, 'telebridge-client.cjs')]: toCommonJs(src),
  [path.join(here, '..', '..', 'dashboard', 'telebridge-client.js')]:
    `// COPY of clients/js/telebridge-client.js (npm run build there); served by the bridge from static_dir.\n${src}`,
};

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const [file, text] of Object.entries(outputs)) {
    const cur = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
    if (cur === text) continue;
    if (check) { console.error(`out of date: ${path.relative(here, file)} (run npm run build in clients/js)`); stale++; }
    else fs.writeFileSync(file, text);
  }
  process.exit(stale ? 1 : 0);
}
