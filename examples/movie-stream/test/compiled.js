// @ts-check
// The tests exercise the compiled app (`npm run build` compiles it to dist/), as `node` runs it.
const fs = require('node:fs');
const path = require('node:path');

const DIST = path.join(__dirname, '..', 'dist', 'src');

/**
 * Requires a compiled module of the app by its path under src/, with `.js`.
 * @param {string} relativePath
 * @returns {any}
 */
function loadCompiled(relativePath) {
  const file = path.join(DIST, relativePath);
  if (!fs.existsSync(file)) {
    throw new Error(`${path.relative(process.cwd(), file)} is missing: build the example first (npm run build)`);
  }
  return require(file);
}

module.exports = { loadCompiled };
