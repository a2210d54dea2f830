// ES module resolve hook for wsctl's Node.js runtime (registered by bootstrap.mjs).
//
// Node ignores NODE_PATH for `import`; Lambda's Node.js runtime does not: a bare
// specifier that the normal resolution (the importer's own node_modules, walking
// up) cannot find is looked up in the NODE_PATH folders, in order. So the
// function's own copy of a package always wins and the emulator's AWS SDK cache
// is only the fallback.

import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

let folders = [];

export async function initialize(data) {
  folders = (data && data.folders) || [];
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

async function fromFolder(folder, specifier, context, nextResolve) {
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
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    if (!folders.length || !isBare(specifier) ||
        (error?.code !== 'ERR_MODULE_NOT_FOUND' && error?.code !== 'MODULE_NOT_FOUND')) {
      throw error;
    }
    for (const folder of folders) {
      try {
        return await fromFolder(folder, specifier, context, nextResolve);
      } catch (again) {
        if (again?.code !== 'ERR_MODULE_NOT_FOUND' && again?.code !== 'MODULE_NOT_FOUND') {
          throw again;
        }
      }
    }
    throw error; // the original message: "Cannot find package 'x' imported from ..."
  }
}
