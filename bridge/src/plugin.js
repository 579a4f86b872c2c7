'use strict';
// The stand-in scaffolder plugin: it owns the scaffolder's extension points,
// collects what modules register there, and serves it over HTTP
// (docs/action-bridge.md). It runs actions; it has no task broker, database
// or templates of its own.

const crypto = require('node:crypto');
const fs = require('node:fs/promises');
const os = require('node:os');
const path = require('node:path');
const express = require('express');
const { coreServices, createBackendPlugin } = require('@backstage/backend-plugin-api');
const { scaffolderActionsExtensionPoint } = require('@backstage/plugin-scaffolder-node');
const {
  scaffolderAutocompleteExtensionPoint,
  scaffolderTaskBrokerExtensionPoint,
  scaffolderTemplatingExtensionPoint,
  scaffolderWorkspaceProviderExtensionPoint,
} = require('@backstage/plugin-scaffolder-node/alpha');
const { runAction } = require('./run');

const PROTOCOL = 'v1';

function bridgePlugin({ token, bodyLimit, modules }) {
  return createBackendPlugin({
    pluginId: 'scaffolder',
    register(env) {
      const actions = new Map();
      const filters = new Map();
      const globals = new Map();
      const autocomplete = new Map();
      const unsupported = [];

      env.registerExtensionPoint(scaffolderActionsExtensionPoint, {
        addActions(...added) {
          for (const action of added) {
            if (actions.has(action.id)) {
              throw new Error(`Duplicate action id '${action.id}' registered by two modules`);
            }
            actions.set(action.id, action);
          }
        },
      });
      env.registerExtensionPoint(scaffolderTemplatingExtensionPoint, {
        addTemplateFilters(added) {
          for (const [id, filter] of entries(added)) filters.set(id, filter);
        },
        addTemplateGlobals(added) {
          for (const [id, global] of entries(added)) globals.set(id, global);
        },
      });
      env.registerExtensionPoint(scaffolderAutocompleteExtensionPoint, {
        addAutocompleteProvider({ id, handler }) {
          autocomplete.set(id, handler);
        },
      });
      // The engine keeps tasks and workspaces itself: a module that replaces
      // them cannot work here, and says so at start-up.
      env.registerExtensionPoint(scaffolderTaskBrokerExtensionPoint, {
        setTaskBroker() {
          unsupported.push('scaffolderTaskBrokerExtensionPoint.setTaskBroker');
        },
      });
      env.registerExtensionPoint(scaffolderWorkspaceProviderExtensionPoint, {
        addProviders() {
          unsupported.push('scaffolderWorkspaceProviderExtensionPoint.addProviders');
        },
      });

      env.registerInit({
        deps: {
          logger: coreServices.logger,
          httpRouter: coreServices.httpRouter,
        },
        async init({ logger, httpRouter }) {
          for (const what of unsupported) {
            logger.warn(`${what} is not supported by the action bridge (the engine owns tasks and workspaces); ignored`);
          }
          logger.info(
            `action bridge: ${actions.size} actions, ${filters.size} template filters, ${globals.size} template globals, ` +
              `${autocomplete.size} autocomplete providers from ${modules.length} modules`,
          );
          httpRouter.addAuthPolicy({ path: '/bridge', allow: 'unauthenticated' });
          httpRouter.use(
            router({ token, bodyLimit, logger, actions, filters, globals, autocomplete, modules }),
          );
        },
      });
    },
  });
}

function entries(added) {
  if (Array.isArray(added)) {
    return added.map(created => [created.id, created]);
  }
  return Object.entries(added || {});
}

function router({ token, bodyLimit, logger, actions, filters, globals, autocomplete, modules }) {
  const r = express.Router();
  const expected = Buffer.from(`Bearer ${token}`);
  const base = `/bridge/${PROTOCOL}`;

  r.get(`${base}/health`, (_req, res) => {
    res.json({ status: 'ok', protocol: PROTOCOL, actions: actions.size, modules });
  });

  r.use(base, (req, res, next) => {
    const got = Buffer.from(req.headers.authorization || '');
    if (got.length !== expected.length || !crypto.timingSafeEqual(got, expected)) {
      return error(res, 401, 'AuthenticationError', 'Missing or wrong bridge token');
    }
    return next();
  });

  r.get(`${base}/actions`, (_req, res) => {
    res.json({
      actions: [...actions.values()].map(a => ({
        id: a.id,
        description: a.description,
        examples: a.examples ?? [],
        schema: { input: a.schema?.input ?? {}, output: a.schema?.output },
        supportsDryRun: Boolean(a.supportsDryRun),
      })),
    });
  });

  r.get(`${base}/templating`, (_req, res) => {
    res.json({
      filters: [...filters.keys()],
      globals: [...globals.entries()].map(([id, g]) => describeGlobal(id, g)),
    });
  });

  r.post(`${base}/templating/filters/:id`, express.json({ limit: '16mb' }), async (req, res) => {
    const filter = filters.get(req.params.id);
    if (!filter) return error(res, 404, 'NotFoundError', `No template filter '${req.params.id}' in this bridge`);
    try {
      const fn = typeof filter === 'function' ? filter : filter.filter;
      const args = Array.isArray(req.body?.args) ? req.body.args : [];
      res.json({ value: await fn(req.body?.input, ...args) ?? null });
    } catch (e) {
      error(res, 400, e?.name || 'Error', String(e?.message ?? e));
    }
  });

  r.post(`${base}/templating/globals/:id`, express.json({ limit: '16mb' }), async (req, res) => {
    const global = globals.get(req.params.id);
    if (!global) return error(res, 404, 'NotFoundError', `No template global '${req.params.id}' in this bridge`);
    try {
      const fn = typeof global === 'function' ? global : global.fn;
      if (typeof fn !== 'function') return res.json({ value: global.value ?? global ?? null });
      const args = Array.isArray(req.body?.args) ? req.body.args : [];
      res.json({ value: await fn(...args) ?? null });
    } catch (e) {
      error(res, 400, e?.name || 'Error', String(e?.message ?? e));
    }
  });

  r.post(`${base}/autocomplete/:provider/:resource`, express.json({ limit: '1mb' }), async (req, res) => {
    const handler = autocomplete.get(req.params.provider);
    if (!handler) {
      return error(res, 404, 'NotFoundError', `Autocomplete provider '${req.params.provider}' is not registered in this bridge`);
    }
    try {
      const result = await handler({
        resource: req.params.resource,
        token: String(req.body?.token ?? ''),
        context: req.body?.context ?? {},
      });
      res.json(result);
    } catch (e) {
      error(res, 400, e?.name || 'Error', String(e?.message ?? e));
    }
  });

  r.post(`${base}/actions/:id/run`, express.json({ limit: bodyLimit }), (req, res) => {
    const action = actions.get(req.params.id);
    if (!action) {
      return error(res, 404, 'NotFoundError', `Template action with ID '${req.params.id}' is not registered in this bridge`);
    }
    const body = req.body;
    if (!body || typeof body !== 'object' || typeof body.taskId !== 'string' || typeof body.stepId !== 'string') {
      return error(res, 400, 'InputError', 'A run request needs taskId, stepId, input and workspace (docs/action-bridge.md)');
    }
    runAction({ action, body, req, res, logger: logger.child({ action: action.id, task: body.taskId }) });
  });

  return r;
}

function describeGlobal(id, g) {
  const isFn = typeof g === 'function' || typeof g?.fn === 'function';
  return isFn ? { id, kind: 'function' } : { id, kind: 'value', value: g?.value ?? g ?? null };
}

function error(res, status, name, message) {
  res.status(status).json({ error: { name, message } });
}

module.exports = { bridgePlugin };
