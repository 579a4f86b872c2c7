'use strict';
// One action run: the Backstage action context built from the engine's
// request, its effects streamed back as NDJSON records (docs/action-bridge.md).

const fs = require('node:fs/promises');
const os = require('node:os');
const path = require('node:path');
const { Readable } = require('node:stream');
const { pipeline } = require('node:stream/promises');
const tar = require('tar');

async function runAction({ action, body, req, res, logger }) {
  const controller = new AbortController();
  let finished = false;
  // The engine aborts a step (cancel, timeout, shutdown) by closing the
  // connection: the action's signal fires.
  res.on('close', () => {
    if (!finished) {
      logger.info(`engine closed the run of ${action.id}; aborting it`);
      controller.abort(new Error('The step was cancelled by the scaffolder'));
    }
  });
  res.status(200);
  res.setHeader('Content-Type', 'application/x-ndjson');
  res.flushHeaders();
  const send = record => {
    if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify(record)}\n`);
  };

  const temporaryDirs = [];
  let workspacePath;
  let shipped = false;
  try {
    const workspace = body.workspace ?? {};
    if (workspace.mode === 'shared') {
      if (typeof workspace.path !== 'string' || !path.isAbsolute(workspace.path)) {
        throw Object.assign(new Error('workspace.path must be an absolute path'), { name: 'InputError' });
      }
      await fs.access(workspace.path);
      workspacePath = workspace.path;
    } else if (workspace.mode === 'shipped') {
      shipped = true;
      workspacePath = await fs.mkdtemp(path.join(os.tmpdir(), 'bridge-ws-'));
      temporaryDirs.push(workspacePath);
      await unpack(Buffer.from(String(workspace.tar ?? ''), 'base64'), workspacePath);
    } else {
      throw Object.assign(new Error("workspace.mode must be 'shared' or 'shipped'"), { name: 'InputError' });
    }

    const checkpoints = { ...(body.checkpoints ?? {}) };
    const stepLogger = makeLogger(send);
    const ctx = {
      input: body.input ?? {},
      workspacePath,
      logger: stepLogger,
      secrets: body.secrets ?? {},
      user: body.user ?? {},
      templateInfo: body.templateInfo,
      isDryRun: Boolean(body.isDryRun),
      signal: controller.signal,
      each: body.each ?? undefined,
      task: { id: body.taskId },
      step: { id: body.stepId, name: body.stepName },
      output(name, value) {
        send({ type: 'output', name, value: value === undefined ? null : value });
      },
      async createTemporaryDirectory() {
        const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bridge-tmp-'));
        temporaryDirs.push(dir);
        return dir;
      },
      async checkpoint({ key, fn }) {
        const earlier = checkpoints[key];
        if (earlier?.status === 'success') return earlier.value;
        if (earlier?.status === 'failed') throw new Error(earlier.reason);
        try {
          const value = await fn();
          const state = { status: 'success', value: value === undefined ? null : value };
          checkpoints[key] = state;
          send({ type: 'checkpoint', key, state });
          return value;
        } catch (e) {
          const state = { status: 'failed', reason: String(e?.message ?? e) };
          checkpoints[key] = state;
          send({ type: 'checkpoint', key, state });
          throw e;
        }
      },
      async getInitiatorCredentials() {
        throw new Error(
          'getInitiatorCredentials is not available in the action bridge: the scaffolder passes the caller token as secrets.backstageToken',
        );
      },
    };
    await action.handler(ctx);
    if (shipped) send({ type: 'workspace', tar: (await pack(workspacePath)).toString('base64') });
    finished = true;
    send({ type: 'end', ok: true });
  } catch (e) {
    finished = true;
    if (!controller.signal.aborted) {
      logger.warn(`action ${action.id} failed: ${e?.message ?? e}`);
    }
    send({ type: 'end', ok: false, error: { name: e?.name || 'Error', message: String(e?.message ?? e) } });
  } finally {
    res.end();
    await Promise.all(temporaryDirs.map(dir => fs.rm(dir, { recursive: true, force: true }).catch(() => {})));
  }
}

// A LoggerService whose lines become the step's log in the engine.
function makeLogger(send, fields = {}) {
  const line = level => (message, meta) =>
    send({ type: 'log', level, message: String(message), ...(meta || Object.keys(fields).length ? { meta: { ...fields, ...(meta ?? {}) } } : {}) });
  return {
    error: line('error'),
    warn: line('warn'),
    info: line('info'),
    debug: line('debug'),
    child: extra => makeLogger(send, { ...fields, ...extra }),
  };
}

async function unpack(buffer, dir) {
  if (buffer.length === 0) return;
  await pipeline(Readable.from(buffer), tar.x({ cwd: dir, strict: true }));
}

async function pack(dir) {
  const names = await fs.readdir(dir);
  if (names.length === 0) return Buffer.alloc(0);
  const chunks = [];
  for await (const chunk of tar.c({ cwd: dir, portable: true }, names)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

module.exports = { runAction };
