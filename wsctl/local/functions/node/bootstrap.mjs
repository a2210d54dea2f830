// wsctl's Node.js runtime for the local Lambda emulator.
//
// Run as `node [flags] bootstrap.mjs` in the function's code folder, it talks to
// the emulator through the Lambda Runtime API (AWS_LAMBDA_RUNTIME_API) the way
// AWS's Node.js runtime interface client does: load the handler named by
// _HANDLER, then loop on GET /invocation/next, run the handler, POST the
// response or the error. Handler resolution, handler styles (async, callback
// with callbackWaitsForEmptyEventLoop, context.done/succeed/fail), the context
// object, the console format and the error documents follow that client.

import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import nodeModule from 'node:module';
import path from 'node:path';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import { pathToFileURL } from 'node:url';
import util from 'node:util';

const require = nodeModule.createRequire(import.meta.url);
const API_PREFIX = '/2018-06-01/runtime';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';
const REQUEST_ID = Symbol.for('aws.lambda.runtime.requestId');
const TENANT_ID = Symbol.for('aws.lambda.runtime.tenantId');
const HANDLER_STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HANDLER_HIGHWATERMARK = Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark');
const STREAM_RESPONSE = 'response';
// The runtime this environment stands for (nodejs24.x), not the local node: Node.js 24's runtime
// takes promise handlers only.
const RUNTIME_MAJOR = Number((process.env.AWS_EXECUTION_ENV || '').match(/^AWS_Lambda_nodejs(\d+)\.x$/)?.[1] || 0);
const PROMISE_ONLY = RUNTIME_MAJOR >= 24;

// -- errors ---------------------------------------------------------------------------------------

class ImportModuleError extends Error {}
class HandlerNotFound extends Error {}
class MalformedHandlerName extends Error {}
class UserCodeSyntaxError extends Error {}
class MalformedStreamingHandler extends Error {}
class CallbackHandlerDeprecated extends Error {
  constructor() {
    super('ERROR: AWS Lambda has removed support for callback-based function handlers starting with Node.js 24. ' +
      'You need to modify this function to use a supported handler signature to use Node.js 24 or later. For ' +
      'more information see https://docs.aws.amazon.com/lambda/latest/dg/nodejs-handler.html.');
  }
}
class NodeJsExit extends Error {
  constructor() {
    super('The Lambda runtime client detected an unexpected Node.js exit code. This is most commonly caused by ' +
      'a Promise that was never settled. For more information, see ' +
      'https://nodejs.org/docs/latest/api/process.html#exit-codes');
  }
}
class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
for (const kind of [ImportModuleError, HandlerNotFound, MalformedHandlerName, UserCodeSyntaxError,
  MalformedStreamingHandler, CallbackHandlerDeprecated, NodeJsExit, UnhandledPromiseRejection]) {
  kind.prototype.name = `Runtime.${kind.name}`;
}

function looksLikeError(value) {
  return value && typeof value.name === 'string' && typeof value.message === 'string' &&
    typeof value.stack === 'string' && value.name && value.message && value.stack;
}

// The document POSTed to /error and /init/error (the caller receives it as is).
function errorDocument(error) {
  try {
    if (util.types.isNativeError(error) || looksLikeError(error)) {
      return { errorType: error.name, errorMessage: error.message, trace: String(error.stack).split('\n') };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch {
    return {
      errorType: 'handled',
      errorMessage: 'callback called with Error argument, but there was a problem while retrieving one or more ' +
        'of its message, name, and stack',
    };
  }
}

function intoError(value) {
  return value instanceof Error ? value : new Error(value);
}

// An Error as the log shows it: errorType, errorMessage, code, own properties, stack lines.
function formattedError(error) {
  const replacer = (_key, value) => {
    if (!(value instanceof Error)) return value;
    const out = Object.assign({ errorType: value.name, errorMessage: value.message, code: value.code }, value);
    if (typeof value.stack === 'string') out.stack = value.stack.split('\n');
    return out;
  };
  try {
    return '\t' + JSON.stringify(error, replacer);
  } catch {
    return '\t' + JSON.stringify(errorDocument(error));
  }
}

// -- console --------------------------------------------------------------------------------------

const LEVELS = {
  TRACE: 1, DEBUG: 2, INFO: 3, WARN: 4, ERROR: 5, FATAL: 6,
};
const jsonLogs = (process.env.AWS_LAMBDA_LOG_FORMAT || '').toUpperCase() === 'JSON';

function jsonReplacer(_key, value) {
  if (!(value instanceof Error)) return value;
  return Object.assign({
    errorType: value?.constructor?.name ?? 'UnknownError',
    errorMessage: value.message,
    stackTrace: typeof value.stack === 'string' ? value.stack.split('\n') : value.stack,
  }, value);
}

function jsonLine(time, level, params) {
  const record = { timestamp: time, level, requestId: globalThis[REQUEST_ID] };
  if (globalThis[TENANT_ID] !== undefined) record.tenantId = globalThis[TENANT_ID];
  if (params.length === 1) {
    record.message = params[0];
    try {
      return JSON.stringify(record, jsonReplacer);
    } catch {
      record.message = util.format(params[0]);
      return JSON.stringify(record);
    }
  }
  record.message = util.format(...params);
  const error = params.find((param) => param instanceof Error);
  if (error) {
    record.errorType = error?.constructor?.name ?? 'UnknownError';
    record.errorMessage = error.message;
    record.stackTrace = typeof error.stack === 'string' ? error.stack.split('\n') : [];
  }
  return JSON.stringify(record);
}

// One line per call on stdout: the emulator reads it line by line.
function writeLog(level, params) {
  const time = new Date().toISOString();
  const line = jsonLogs
    ? jsonLine(time, level, params)
    : `${time}\t${globalThis[REQUEST_ID]}\t${level}\t${util.format(...params)}`;
  process.stdout.write(line.replace(/\n/g, '\r') + '\n');
}

function patchConsole() {
  const threshold = LEVELS[(process.env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase()] ?? LEVELS.TRACE;
  const method = (level) => (LEVELS[level] >= threshold ? (...params) => writeLog(level, params) : () => {});
  console.trace = method('TRACE');
  console.debug = method('DEBUG');
  console.info = method('INFO');
  console.log = console.info;
  console.warn = method('WARN');
  console.error = method('ERROR');
  console.fatal = (...params) => writeLog('FATAL', params);
}

// "Invoke Error", "Uncaught Exception", "Unhandled Promise Rejection" at ERROR.
function logError(title, error) {
  if (LEVELS.ERROR < (LEVELS[(process.env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase()] ?? LEVELS.TRACE)) return;
  if (jsonLogs) writeLog('ERROR', [intoError(error)]);
  else writeLog('ERROR', [title, formattedError(intoError(error))]);
}

// The AWS SDK warns, once per process, that it will stop supporting the Node.js running it. Here that
// is the local node (the banner says when it differs from the function's runtime), and Node prints
// warnings through console.error: an ERROR line, every cold start, about this machine. One WARN line
// instead. Every other warning is printed as Node prints it.
function quietSdkVersionWarnings() {
  const emitWarning = process.emitWarning;
  process.emitWarning = function (warning, ...rest) {
    const text = String(warning instanceof Error ? warning.message : warning);
    if (/^Node(VersionSupport|Deprecation)Warning: The AWS SDK for JavaScript/.test(text)) {
      console.warn(text.replace(/\s+/g, ' ').trim());
      return undefined;
    }
    return emitWarning.call(this, warning, ...rest);
  };
}

// Exit once what the console wrote is out (stdout pipes are asynchronous on some systems).
function exit(code) {
  if (process.stdout.writableLength > 0) {
    process.stdout.once('drain', () => process.exit(code));
    setTimeout(() => process.exit(code), 500).unref();
  } else {
    process.exit(code);
  }
}

function internal(message) {
  process.stderr.write(`[wsctl node runtime] ${message}\n`);
}

// -- Runtime API client ---------------------------------------------------------------------------

const [apiHost, apiPort] = (() => {
  const value = process.env.AWS_LAMBDA_RUNTIME_API || '';
  const at = value.lastIndexOf(':');
  return at < 0 ? [value, 80] : [value.slice(0, at), parseInt(value.slice(at + 1), 10)];
})();
// The Runtime API's client: one kept-alive socket, each request written whole and its answer read by
// Content-Length (the emulator's Runtime API always sends it). Every invocation is two of these
// exchanges, so no http.request: its machinery costs more than the exchange. The socket holds the
// process open only while a request is out: a callback handler's "event loop empty" must not wait on it.
const runtimeApi = {
  socket: null,
  buffer: Buffer.alloc(0),
  pending: null, // { resolve, reject, fresh }

  connect() {
    const socket = net.connect({ host: apiHost, port: apiPort });
    socket.setNoDelay(true);
    socket.on('data', (data) => this.received(socket, data));
    socket.on('error', (error) => this.lost(socket, error));
    socket.on('close', () => this.lost(socket, Object.assign(new Error('the Runtime API closed the connection'),
      { code: 'ECONNRESET' })));
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    return socket;
  },

  received(socket, data) {
    if (socket !== this.socket) return;
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, data]) : data;
    const end = this.buffer.indexOf('\r\n\r\n');
    if (end < 0 || !this.pending) return;
    const lines = this.buffer.toString('latin1', 0, end).split('\r\n');
    const headers = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = parseInt(headers['content-length'] || '0', 10);
    if (this.buffer.length < end + 4 + length) return;
    const body = this.buffer.subarray(end + 4, end + 4 + length);
    this.buffer = this.buffer.subarray(end + 4 + length);
    const { resolve } = this.pending;
    this.pending = null;
    socket.unref();
    resolve({ status: parseInt(lines[0].split(' ')[1], 10), headers, body });
  },

  lost(socket, error) {
    if (socket !== this.socket) return;
    this.socket = null;
    const pending = this.pending;
    this.pending = null;
    if (pending) pending.reject(error);
  },
};

function call(method, pathname, body, headers = {}, retried = false) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(body);
    let head = `${method} ${API_PREFIX}${pathname} HTTP/1.1\r\nHost: ${apiHost}:${apiPort}\r\n` +
      `Content-Length: ${payload.length}\r\n`;
    for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
    const reused = runtimeApi.socket !== null;
    const socket = runtimeApi.socket || runtimeApi.connect();
    socket.ref();
    runtimeApi.pending = {
      resolve,
      reject: (error) => {
        // A kept-alive connection the server closed while idle: try once on a new one.
        if (reused && error.code === 'ECONNRESET' && !retried) {
          call(method, pathname, body, headers, true).then(resolve, reject);
        } else {
          reject(error);
        }
      },
    };
    socket.write(payload.length ? Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), payload])
      : head + '\r\n', 'latin1');
  });
}

async function post(pathname, body, headers) {
  try {
    const answer = await call('POST', pathname, body, headers);
    // 400 (the invocation was already answered: a late error) and 413 (too large: the caller is told)
    // are expected; anything else is worth a line.
    if (answer.status >= 300 && answer.status !== 400 && answer.status !== 413) {
      internal(`POST ${pathname}: ${answer.status} ${answer.body.toString('utf8')}`);
    }
    return answer;
  } catch (error) {
    internal(`POST ${pathname} failed: ${error.message}`);
    exit(1);
    return new Promise(() => {});
  }
}

async function nextInvocation() {
  let answer;
  try {
    answer = await call('GET', '/invocation/next');
  } catch (error) {
    internal(`GET /invocation/next failed: ${error.message}`);
    exit(1);
    return new Promise(() => {});
  }
  if (answer.status !== 200) {
    internal(`GET /invocation/next: ${answer.status} ${answer.body.toString('utf8')}`);
    exit(1);
    return new Promise(() => {});
  }
  return answer;
}

function serialize(result) {
  return JSON.stringify(result === undefined ? null : result) ?? ''; // a function or a symbol: no body
}

function postResponse(id, body) {
  return post(`/invocation/${encodeURIComponent(id)}/response`, body, { 'Content-Type': 'application/json' });
}

function postError(id, error) {
  const document = errorDocument(error);
  return post(`/invocation/${encodeURIComponent(id)}/error`, JSON.stringify(document),
    { 'Content-Type': 'application/json', [ERROR_TYPE_HEADER]: String(document.errorType) });
}

function postInitError(error) {
  const document = errorDocument(error);
  return post('/init/error', JSON.stringify(document),
    { 'Content-Type': 'application/json', [ERROR_TYPE_HEADER]: String(document.errorType) });
}

// -- process-level failures -----------------------------------------------------------------------

let failTarget = null; // null during init, then the id of the latest invocation (as the RIC does)
let failing = false;

function fatal(title, error, code) {
  logError(title, error);
  if (failing) return;
  failing = true;
  setTimeout(() => process.exit(code), 2000); // if the Runtime API never answers
  const posted = failTarget === null ? postInitError(error) : postError(failTarget, error);
  posted.finally(() => exit(code));
}

process.on('uncaughtException', (error) => fatal('Uncaught Exception', error, 129));
process.on('unhandledRejection', (reason, promise) => {
  fatal('Unhandled Promise Rejection', new UnhandledPromiseRejection(reason, promise), 128);
});

// When the event loop drains: the pending result of a callback handler, or the default outcome.
let onEmptyLoop = null;
process.on('beforeExit', () => {
  const action = onEmptyLoop;
  onEmptyLoop = null;
  if (action) action();
});

// -- loading the handler --------------------------------------------------------------------------

function hasTypeModule(folder, appRoot) {
  // The nearest package.json decides; a node_modules folder or the task root ends the search (Lambda's
  // /var/task has nothing above it that a function's code could have brought).
  for (;;) {
    if (folder.endsWith('/node_modules')) return false;
    const manifest = path.join(folder, 'package.json');
    if (fs.existsSync(manifest)) {
      try {
        return JSON.parse(fs.readFileSync(manifest, 'utf8'))?.type === 'module';
      } catch (error) {
        console.warn(`${manifest} cannot be read, it will be ignored for ES module detection purposes.`, error);
        return false;
      }
    }
    const parent = path.dirname(folder);
    if (parent === folder || folder === appRoot) return false;
    folder = parent;
  }
}

function requireIfExists(file) {
  return fs.existsSync(file) ? require(file) : undefined;
}

async function importIfExists(file) {
  return fs.existsSync(file) ? import(pathToFileURL(file).href) : undefined;
}

async function loadModule(appRoot, moduleRoot, name) {
  const base = path.resolve(appRoot, moduleRoot, name);
  const loaded = requireIfExists(base); // a file without extension
  if (loaded) return loaded;
  const esm = fs.existsSync(base + '.js') && hasTypeModule(path.dirname(base + '.js'), appRoot);
  if (!esm) {
    const cjs = requireIfExists(base + '.js');
    if (cjs) return cjs;
  }
  const other = (esm && await importIfExists(base + '.js')) || await importIfExists(base + '.mjs') ||
    requireIfExists(base + '.cjs');
  if (other) return other;
  // A handler in a package: require.resolve relative to the task root (and the module root).
  return require(require.resolve(name, { paths: [appRoot, path.join(appRoot, moduleRoot)] }));
}

function findExport(object, dotted) {
  return dotted.split('.').reduce((nested, key) => (nested ? nested[key] : undefined), object);
}

async function loadHandler(appRoot, fullHandler) {
  if (fullHandler.includes('..')) {
    throw new MalformedHandlerName(`'${fullHandler}' is not a valid handler name. Use absolute paths when ` +
      'specifying root directories in handler names.');
  }
  const handlerString = path.basename(fullHandler);
  const moduleRoot = fullHandler.substring(0, fullHandler.indexOf(handlerString));
  const match = handlerString.match(/^([^.]*)\.(.*)$/);
  if (!match) throw new MalformedHandlerName('Bad handler');
  const [, name, exportPath] = match;

  let userModule;
  try {
    userModule = await loadModule(appRoot, moduleRoot, name);
  } catch (error) {
    if (error instanceof SyntaxError) throw new UserCodeSyntaxError(error);
    if (error?.code === 'MODULE_NOT_FOUND') throw new ImportModuleError(error);
    throw error;
  }
  let handler = findExport(userModule, exportPath);
  if (!handler && userModule && typeof userModule === 'object' && 'default' in userModule) {
    handler = findExport(userModule.default, exportPath); // an ES module exporting a default object
  }
  if (!handler) throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  if (typeof handler !== 'function') throw new HandlerNotFound(`${fullHandler} is not a function`);
  return handler;
}

// -- response streaming (buffered: the emulator delivers the response whole) -----------------------

class ResponseStream extends Writable {
  constructor(options) {
    super(options);
    this.chunks = [];
    this.contentType = 'application/octet-stream';
  }

  setContentType(value) {
    this.contentType = value;
  }

  _write(chunk, encoding, callback) {
    this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, encoding));
    callback();
  }
}

function installGlobal() {
  const noGlobal = process.env.AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA;
  if (noGlobal === '1' || noGlobal === 'true') return;
  globalThis.awslambda = {
    streamifyResponse(handler, options) {
      handler[HANDLER_STREAMING] = STREAM_RESPONSE;
      if (typeof options?.highWaterMark === 'number') handler[HANDLER_HIGHWATERMARK] = options.highWaterMark;
      return handler;
    },
    HttpResponseStream: {
      from(stream, prelude) {
        stream.setContentType('application/vnd.awslambda.http-integration-response');
        stream.write(JSON.stringify(prelude));
        stream.write(Buffer.alloc(8));
        return stream;
      },
    },
  };
}

// -- the invoke loop ------------------------------------------------------------------------------

function header(headers, name) {
  const value = headers[name];
  return value === undefined || value === '' ? undefined : value;
}

function parseHeaderJson(value, name) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (error) {
    throw new Error(`Cannot parse ${name} as json: ${error.toString()}`);
  }
}

function scheduleNext() {
  setImmediate(() => {
    runOnce().catch((error) => {
      internal(`unexpected error: ${error?.stack || error}`);
      fatal('Uncaught Exception', error, 129);
    });
  });
}

let userHandler;
let handlerIsAsync = false;

async function runOnce() {
  if (failing) return;
  const { headers, body } = await nextInvocation();
  const id = header(headers, 'lambda-runtime-aws-request-id');
  globalThis[REQUEST_ID] = id;
  globalThis[TENANT_ID] = header(headers, 'lambda-runtime-aws-tenant-id');
  failTarget = id;
  const trace = header(headers, 'lambda-runtime-trace-id');
  if (trace) process.env._X_AMZN_TRACE_ID = trace;
  else delete process.env._X_AMZN_TRACE_ID;
  if (userHandler[HANDLER_STREAMING] === STREAM_RESPONSE) return runStreaming(id, headers, body);

  let finished = false; // only the first callback/done/succeed/fail counts
  let waitForEmptyLoop = true;
  const sendError = (error) => {
    logError('Invoke Error', error);
    postError(id, error).then(scheduleNext);
  };
  const sendResult = (result) => {
    let serialized;
    try {
      serialized = serialize(result);
    } catch {
      sendError(new Error('Unable to stringify response body'));
      return;
    }
    postResponse(id, serialized).then(scheduleNext);
  };
  const once = (act) => (...args) => {
    if (finished) return;
    finished = true;
    onEmptyLoop = null;
    act(...args);
  };
  const callback = once((error, result) => {
    if (error !== undefined && error !== null) sendError(error);
    else if (!waitForEmptyLoop) sendResult(result);
    else onEmptyLoop = () => setImmediate(() => sendResult(result));
  });
  const done = once((error, result) => {
    if (error !== undefined && error !== null) sendError(error);
    else sendResult(result);
  });
  const deadline = Number(header(headers, 'lambda-runtime-deadline-ms'));
  const succeed = (result) => done(null, result);
  const fail = (error) => done(error === undefined || error === null ? 'handled' : error, null);
  // Node.js 24's runtime removed the callback style's context members with the callback itself.
  const context = PROMISE_ONLY ? {} : {
    get callbackWaitsForEmptyEventLoop() {
      return waitForEmptyLoop;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waitForEmptyLoop = value;
    },
    succeed,
    fail,
    done,
  };

  let returnedPromise = false;
  // The loop drained and nobody answered: a pending promise is an error, a callback handler's is null.
  onEmptyLoop = () => {
    if (finished) return;
    finished = true;
    if (handlerIsAsync || returnedPromise) {
      const error = new NodeJsExit();
      logError('Invoke Error', error);
      postError(id, error).then(scheduleNext);
    } else {
      postResponse(id, 'null').then(scheduleNext);
    }
  };
  try {
    Object.assign(context, {
      functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
      clientContext: parseHeaderJson(header(headers, 'lambda-runtime-client-context'), 'ClientContext'),
      identity: parseHeaderJson(header(headers, 'lambda-runtime-cognito-identity'), 'CognitoIdentity'),
      invokedFunctionArn: header(headers, 'lambda-runtime-invoked-function-arn'),
      awsRequestId: id,
      tenantId: header(headers, 'lambda-runtime-aws-tenant-id'),
      getRemainingTimeInMillis: () => deadline - Date.now(),
    });
    const result = userHandler(JSON.parse(body.toString('utf8')), context, callback);
    if (result && typeof result.then === 'function') {
      returnedPromise = true;
      result.then(succeed, fail);
    }
  } catch (error) {
    callback(error);
  }
}

async function runStreaming(id, headers, body) {
  const highWaterMark = userHandler[HANDLER_HIGHWATERMARK];
  const stream = new ResponseStream(typeof highWaterMark === 'number' ? { highWaterMark } : undefined);
  const deadline = Number(header(headers, 'lambda-runtime-deadline-ms'));
  const context = {
    callbackWaitsForEmptyEventLoop: true,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    invokedFunctionArn: header(headers, 'lambda-runtime-invoked-function-arn'),
    awsRequestId: id,
    getRemainingTimeInMillis: () => deadline - Date.now(),
  };
  onEmptyLoop = () => scheduleNext();
  const fail = (error) => {
    onEmptyLoop = null;
    logError('Invoke Error', error);
    postError(id, error).then(scheduleNext);
  };
  try {
    const pending = userHandler(JSON.parse(body.toString('utf8')), stream, context);
    if (!pending || typeof pending.then !== 'function') {
      fail(new Error('Streaming does not support non-async handlers.'));
      return;
    }
    const result = await pending;
    if (result !== undefined) console.warn('Streaming handlers ignore return values.');
    if (!stream.writableEnded) {
      fail(new Error('Response stream is not finished.'));
      return;
    }
    if (!stream.writableFinished) await new Promise((resolve) => stream.once('finish', resolve));
    onEmptyLoop = null;
    await post(`/invocation/${encodeURIComponent(id)}/response`, Buffer.concat(stream.chunks), {
      'Content-Type': stream.contentType,
      'Lambda-Runtime-Function-Response-Mode': 'streaming',
    });
    scheduleNext();
  } catch (error) {
    fail(error);
  }
}

// -- AWS host names --------------------------------------------------------------------------------

// Connections to AWS host names go to the emulator (the API's own execute-api name to its gateway,
// every other one to its front door), whatever port was asked for: the SDK v2, which ignores
// AWS_ENDPOINT_URL_*, or code with a hard-coded endpoint, still reaches only this machine. TLS still
// checks the name (the emulator presents a certificate for it). The rules are JSON
// [[regex, host, port], ...], first match wins (wsctl/local/awsnames.py); Python's bootstrap applies
// the same ones.
function mapHosts(spec) {
  const rules = spec ? JSON.parse(spec).map(([pattern, host, port]) => [new RegExp(pattern), host, port]) : [];
  if (!rules.length) return;
  const target = (host) => {
    const name = String(host || '').toLowerCase().replace(/\.$/, '');
    const rule = rules.find(([pattern]) => pattern.test(name));
    return rule && { host: rule[1], port: rule[2] };
  };
  // tls.connect(options[, cb]) | (port[, host][, options][, cb]); net.connect likewise, or (path[, cb]).
  const redirect = (connect, secure) => function (...args) {
    let options = args.find((arg) => arg && typeof arg === 'object');
    if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
      const host = typeof args[1] === 'string' ? args[1] : 'localhost';
      options = { ...(options || {}), port: Number(args[0]), host };
    } else if (!options) {
      return connect.apply(this, args);
    }
    const found = target(options.host || (secure && options.servername));
    if (!found) return connect.apply(this, args);
    const moved = { ...options, host: found.host, port: found.port };
    if (secure) moved.servername = options.servername || options.host;
    return connect.call(this, moved, ...args.filter((arg) => typeof arg === 'function'));
  };
  tls.connect = redirect(tls.connect, true);
  net.connect = redirect(net.connect, false);
  net.createConnection = net.connect;
  http.Agent.prototype.createConnection = net.createConnection; // http's agent kept the original
}

// -- start ----------------------------------------------------------------------------------------

// Lambda's code folder is /var/task, with nothing above it: a function resolves packages in its own
// folder, then in its runtime's SDK (NODE_PATH), never in a node_modules folder above its code
// (a project's, on this machine). CommonJS through the lookup paths, ES modules through the hook.
function confineTo(root) {
  const inside = (file) => file === root || file.startsWith(root + path.sep);
  const lookupPaths = nodeModule._nodeModulePaths;
  nodeModule._nodeModulePaths = function (from) {
    const paths = lookupPaths.call(this, from);
    return inside(path.resolve(from)) ? paths.filter((folder) => inside(path.dirname(folder))) : paths;
  };
}

async function start() {
  mapHosts(process.env._WSCTL_HOST_MAP || '');
  delete process.env._WSCTL_HOST_MAP;
  quietSdkVersionWarnings();
  patchConsole();
  const appRoot = fs.realpathSync(process.cwd());
  confineTo(appRoot);
  const folders = (process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean);
  if (typeof nodeModule.register === 'function') { // Node 20.6+
    nodeModule.register(new URL('./resolve-hook.mjs', import.meta.url), import.meta.url,
      { data: { folders, root: appRoot } });
  }
  installGlobal();
  try {
    userHandler = await loadHandler(appRoot, process.env._HANDLER || '');
    handlerIsAsync = userHandler.constructor?.name === 'AsyncFunction';
    if (userHandler[HANDLER_STREAMING] !== undefined && userHandler[HANDLER_STREAMING] !== false &&
        userHandler[HANDLER_STREAMING] !== null && userHandler[HANDLER_STREAMING] !== STREAM_RESPONSE) {
      throw new MalformedStreamingHandler('Only response streaming is supported.');
    }
    if (PROMISE_ONLY && userHandler.length >= 3 && userHandler[HANDLER_STREAMING] !== STREAM_RESPONSE) {
      throw new CallbackHandlerDeprecated(); // as Node.js 24's runtime: the declared parameters decide
    }
  } catch (error) {
    logError(PROMISE_ONLY ? 'Init Error' : 'Uncaught Exception', error);
    if (failing) return; // already reporting an unhandled rejection from the module's top level
    failing = true;
    setTimeout(() => process.exit(1), 2000);
    await postInitError(error);
    exit(1);
    return;
  }
  if (failing) return; // an unhandled rejection or uncaught exception during init is being reported
  if (!PROMISE_ONLY && process.env.AWS_LAMBDA_NODEJS_DISABLE_CALLBACK_WARNING === undefined &&
      userHandler.length === 3 && !handlerIsAsync && userHandler[HANDLER_STREAMING] !== STREAM_RESPONSE) {
    console.warn('AWS Lambda plans to remove support for callback-based function handlers starting with Node.js ' +
      '24. You will need to update this function to use an async handler to use Node.js 24 or later. For more ' +
      'information and to provide feedback on this change, see ' +
      'https://github.com/aws/aws-lambda-nodejs-runtime-interface-client/issues/137. To disable this warning, ' +
      'set the AWS_LAMBDA_NODEJS_DISABLE_CALLBACK_WARNING environment variable.');
  }
  scheduleNext();
}

await start();
