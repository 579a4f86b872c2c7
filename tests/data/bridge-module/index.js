'use strict';
// A team's own scaffolder module, written as for Backstage: the bridge tests
// load it with ACTION_BRIDGE_EXTRA_MODULES (its @backstage packages resolve
// through NODE_PATH=bridge/node_modules). Its action exercises the whole
// action context: files, logs, outputs, checkpoint, signal, each, secrets.

const fs = require('node:fs/promises');
const path = require('node:path');
const { createBackendModule } = require('@backstage/backend-plugin-api');
const { createTemplateAction, scaffolderActionsExtensionPoint } = require('@backstage/plugin-scaffolder-node');
const {
  createTemplateFilter,
  createTemplateGlobalFunction,
  createTemplateGlobalValue,
  scaffolderAutocompleteExtensionPoint,
  scaffolderTemplatingExtensionPoint,
} = require('@backstage/plugin-scaffolder-node/alpha');

const exists = file => fs.access(file).then(() => true, () => false);

const workAction = createTemplateAction({
  id: 'test:bridge:work',
  description: 'Writes a file, records a checkpoint, and can wait for its signal or fail once',
  supportsDryRun: true,
  schema: {
    input: {
      type: 'object',
      required: ['name'],
      properties: {
        name: { type: 'string', description: 'Name of the file to write' },
        counterFile: { type: 'string', description: 'Appended to each time the checkpointed work really runs' },
        failOnceMarker: { type: 'string', description: 'Fail after the checkpoint unless this file exists (then create it)' },
        waitUnless: { type: 'string', description: 'Wait for the signal unless this file exists' },
        abortedFile: { type: 'string', description: 'Written when the signal fires' },
      },
    },
    output: {
      type: 'object',
      properties: {
        resourceId: { type: 'string' },
        file: { type: 'string' },
      },
    },
  },
  async handler(ctx) {
    const { name, counterFile, failOnceMarker, waitUnless, abortedFile } = ctx.input;
    ctx.logger.info(`working on ${name}`);
    const resource = await ctx.checkpoint({
      key: `create-${name}`,
      fn: async () => {
        if (counterFile) await fs.appendFile(counterFile, `${name}\n`);
        ctx.logger.info(`created resource for ${name}`);
        return { id: `resource-${name}` };
      },
    });
    const tmp = await ctx.createTemporaryDirectory();
    await fs.writeFile(path.join(tmp, 'scratch'), 'scratch');
    const file = `${name}.txt`;
    await fs.writeFile(
      path.join(ctx.workspacePath, file),
      JSON.stringify(
        {
          taskId: ctx.task.id,
          stepId: ctx.step?.id,
          isDryRun: ctx.isDryRun,
          each: ctx.each ?? null,
          user: ctx.user?.ref ?? null,
          template: ctx.templateInfo?.entityRef ?? null,
          secret: ctx.secrets?.deployToken ?? null,
          before: await fs.readFile(path.join(ctx.workspacePath, 'before.txt'), 'utf8').catch(() => null),
        },
        null,
        2,
      ),
    );
    ctx.output('resourceId', resource.id);
    ctx.output('file', file);
    if (failOnceMarker && !(await exists(failOnceMarker))) {
      await fs.writeFile(failOnceMarker, 'failed once');
      throw new Error(`failing once after the checkpoint of ${name}`);
    }
    if (waitUnless && !(await exists(waitUnless))) {
      ctx.logger.info('waiting for the signal');
      await new Promise(resolve => {
        if (ctx.signal?.aborted) return resolve();
        ctx.signal?.addEventListener('abort', resolve, { once: true });
      });
      if (abortedFile) await fs.writeFile(abortedFile, 'aborted');
      throw new Error('aborted by the signal');
    }
    ctx.logger.warn(`done with ${name}`);
  },
});

module.exports = createBackendModule({
  pluginId: 'scaffolder',
  moduleId: 'bridge-test',
  register(env) {
    env.registerInit({
      deps: {
        scaffolder: scaffolderActionsExtensionPoint,
        autocomplete: scaffolderAutocompleteExtensionPoint,
        templating: scaffolderTemplatingExtensionPoint,
      },
      async init({ scaffolder, autocomplete, templating }) {
        scaffolder.addActions(workAction);
        templating.addTemplateFilters([
          createTemplateFilter({
            id: 'shout',
            description: 'Upper-cases its input and appends its argument',
            filter: (input, suffix) => `${String(input).toUpperCase()}${suffix ?? '!'}`,
          }),
        ]);
        templating.addTemplateGlobals([
          createTemplateGlobalFunction({ id: 'greet', fn: name => `hello ${name}` }),
          createTemplateGlobalValue({ id: 'teamName', value: 'platform' }),
        ]);
        autocomplete.addAutocompleteProvider({
          id: 'bridge-test',
          async handler({ resource, token, context }) {
            if (resource !== 'teams') throw new Error(`Invalid resource: ${resource}`);
            const prefix = context.prefix ?? '';
            return {
              results: ['alpha', 'beta'].map(t => ({ id: `${prefix}${t}`, title: `Team ${t} (${token.length} token characters)` })),
            };
          },
        });
      },
    });
  },
});
