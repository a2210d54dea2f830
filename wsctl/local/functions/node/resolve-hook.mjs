// ES module resolve hook for wsctl's Node.js runtime (registered by bootstrap.mjs).
//
// Lambda's code folder (/var/task) has nothing above it, and its Node.js runtime looks up a bare
// specifier the function's own packages lack in the NODE_PATH folders (the runtime's SDK), which
// plain Node ignores for `import`. Here: a bare specifier imported from the function's folder that
// Node's resolution finds outside it (a project's node_modules further up) counts as not found;
// a specifier not found is looked up in the NODE_PATH folders, in order. So the function's own copy
// of a package always wins, the emulator's SDK cache is the fallback, and nothing else is reached.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const NOT_FOUND = new Set(['ERR_MODULE_NOT_FOUND', 'MODULE_NOT_FOUND']);
let folders = [];
let root = null;

export async function initialize(data) {
  folders = (data && data.folders) || [];
  root = (data && data.root) || null;
}

function isBare(specifier) {
  return !(
    specifier.startsWith('./') ||
    specifier.startsWith('../') ||
    specifier.startsWith('/') ||
    specifier === '.' ||
    specifier === '..' ||
    specifier.startsWith('#') ||
    /^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(specifier) // file:, node:, data:, https: ...
  );
}

function inRoot(url) {
  if (!root || !url || !url.startsWith('file:')) return false;
  const file = fileURLToPath(url);
  return file === root || file.startsWith(root + path.sep);
}

// Found, but above the function's folder, for a module inside it.
function escapes(found, parentURL) {
  return inRoot(parentURL) && found.url.startsWith('file:') && !inRoot(found.url);
}

function notFound(specifier, parentURL) {
  const from = parentURL && parentURL.startsWith('file:') ? fileURLToPath(parentURL) : parentURL;
  const error = new Error(`Cannot find package '${specifier}' imported from ${from}`);
  error.code = 'ERR_MODULE_NOT_FOUND';
  return error;
}

// The package a bare specifier names: `@scope/name` or `name`, without a subpath.
function packageName(specifier) {
  const parts = specifier.split('/');
  return parts.slice(0, specifier.startsWith('@') ? 2 : 1).join('/');
}

// null when the folder has no such package: asked only when it is there, Node's resolver never
// fails in here (Node 20 reports a failed nested resolution in place of the hook's own error).
async function fromFolder(folder, specifier, context, nextResolve) {
  if (!fs.existsSync(path.join(folder, packageName(specifier)))) return null;
  if (path.basename(folder) === 'node_modules') {
    // Resolve as if imported from a module next to that node_modules folder:
    // ESM conditions ("import"), package exports, the works.
    const parentURL = pathToFileURL(path.join(path.dirname(folder), '[wsctl-node-path].mjs')).href;
    return nextResolve(specifier, { ...context, parentURL });
  }
  // A folder that holds packages directly (Lambda's /var/runtime): CommonJS lookup.
  const require = createRequire(path.join(folder, '[wsctl-node-path].js'));
  const file = require.resolve(specifier, { paths: [folder] });
  return nextResolve(pathToFileURL(file).href, context);
}

export async function resolve(specifier, context, nextResolve) {
  if (!isBare(specifier)) return nextResolve(specifier, context);
  let failure = null;
  try {
    const found = await nextResolve(specifier, context);
    if (!escapes(found, context.parentURL)) return found;
  } catch (error) {
    if (!NOT_FOUND.has(error?.code)) throw error;
    failure = error;
  }
  for (const folder of folders) {
    const found = await fromFolder(folder, specifier, context, nextResolve);
    if (found) return found;
  }
  throw failure || notFound(specifier, context.parentURL); // Node's own message when it has one
}
