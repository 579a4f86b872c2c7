'use strict';
// The test policy: what each user gets is read from POLICY_FILE at every
// decision, `{"<user entity ref>": "<mode>", "*": "<mode>"}`, so a test
// switches policies without restarting Backstage. Modes:
//
//   allow        every permission ALLOW
//   deny         every permission DENY
//   conditional  scaffolder-template permissions: CONDITIONAL, not HAS_TAG secret
//                scaffolder.action.execute: CONDITIONAL, debug:log, or
//                  debug:wait with seconds 0 (HAS_ACTION_ID, HAS_NUMBER_PROPERTY)
//                scaffolder.task.read/cancel: CONDITIONAL, IS_TASK_OWNER (the user)
//                everything else ALLOW
//   no-create    scaffolder.task.create DENY, everything else ALLOW

const fs = require('node:fs');

function decide(mode, permission, userRef) {
  const ALLOW = { result: 'ALLOW' };
  const DENY = { result: 'DENY' };
  const conditional = (resourceType, conditions) => ({
    result: 'CONDITIONAL',
    pluginId: 'scaffolder',
    resourceType,
    conditions,
  });
  switch (mode) {
    case 'allow':
      return ALLOW;
    case 'deny':
      return DENY;
    case 'no-create':
      return permission.name === 'scaffolder.task.create' ? DENY : ALLOW;
    case 'conditional':
      switch (permission.name) {
        case 'scaffolder.template.parameter.read':
        case 'scaffolder.template.step.read':
          return conditional('scaffolder-template', {
            not: { rule: 'HAS_TAG', resourceType: 'scaffolder-template', params: { tag: 'secret' } },
          });
        case 'scaffolder.action.execute':
          return conditional('scaffolder-action', {
            anyOf: [
              { rule: 'HAS_ACTION_ID', resourceType: 'scaffolder-action', params: { actionId: 'debug:log' } },
              {
                allOf: [
                  { rule: 'HAS_ACTION_ID', resourceType: 'scaffolder-action', params: { actionId: 'debug:wait' } },
                  {
                    rule: 'HAS_NUMBER_PROPERTY',
                    resourceType: 'scaffolder-action',
                    params: { key: 'seconds', value: 0 },
                  },
                ],
              },
            ],
          });
        case 'scaffolder.task.read':
        case 'scaffolder.task.cancel':
          return conditional('scaffolder-task', {
            rule: 'IS_TASK_OWNER',
            resourceType: 'scaffolder-task',
            params: { createdBy: [userRef] },
          });
        default:
          return ALLOW;
      }
    default:
      return DENY;
  }
}

function policyModule(ref) {
  const { createBackendModule } = ref('@backstage/backend-plugin-api');
  const { policyExtensionPoint } = ref('@backstage/plugin-permission-node/alpha');
  return createBackendModule({
    pluginId: 'permission',
    moduleId: 'scaffolder-test-policy',
    register(reg) {
      reg.registerInit({
        deps: { policy: policyExtensionPoint },
        async init({ policy }) {
          policy.setPolicy({
            async handle(request, user) {
              const userRef = user?.info?.userEntityRef ?? 'none';
              const modes = JSON.parse(fs.readFileSync(process.env.POLICY_FILE, 'utf8'));
              const mode = modes[userRef] ?? modes['*'] ?? 'deny';
              const decision = decide(mode, request.permission, userRef);
              console.log(
                `policy: ${userRef} ${request.permission.name} (${mode}) -> ${decision.result}`,
              );
              return decision;
            },
          });
        },
      });
    },
  });
}

module.exports = { policyModule, decide };
