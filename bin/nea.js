#!/usr/bin/env node
// The `nea` command. Compiled TypeScript lives in dist/ (built by `npm ci`).
import('../dist/cli/main.js')
  .then((m) => m.main(process.argv.slice(2)))
  .then((code) => { process.exitCode = code; })
  .catch((e) => {
    if (e && e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/cli/main.js')) {
      console.error('nea: not built yet: run `npm ci` (or `npm run build`) in the repository first');
    } else {
      console.error(`nea: ${e instanceof Error ? e.message : String(e)}`);
    }
    process.exitCode = 1;
  });
