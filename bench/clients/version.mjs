// @ts-check
import { readFileSync } from 'node:fs';

/**
 * The installed version of a bench dependency (read from its package.json directly:
 * some packages do not export it).
 * @param {string} name
 */
export function installedVersion(name) {
  const url = new URL(`../node_modules/${name}/package.json`, import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')).version;
}
