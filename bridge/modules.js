'use strict';
// The scaffolder modules this bridge loads when ACTION_BRIDGE_MODULES is not
// set: the official modules of a stock Backstage installation. Add a team's
// own module here (and to package.json) like in a Backstage backend.
module.exports = [
  '@backstage/plugin-scaffolder-backend-module-azure',
  '@backstage/plugin-scaffolder-backend-module-bitbucket-cloud',
  '@backstage/plugin-scaffolder-backend-module-bitbucket-server',
  '@backstage/plugin-scaffolder-backend-module-cookiecutter',
  '@backstage/plugin-scaffolder-backend-module-gerrit',
  '@backstage/plugin-scaffolder-backend-module-gitea',
  '@backstage/plugin-scaffolder-backend-module-github',
  '@backstage/plugin-scaffolder-backend-module-gitlab',
  '@backstage/plugin-scaffolder-backend-module-notifications',
  '@backstage/plugin-scaffolder-backend-module-rails',
];
