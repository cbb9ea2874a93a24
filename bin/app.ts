import { App, Tags, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readConfig, type CandlekeepConfig } from '../lib/config.ts';
import { CandlekeepStack } from '../lib/candlekeep-stack.ts';

const app = new App();

let config: CandlekeepConfig;
try {
  config = readConfig(app);
} catch (error) {
  // A config mistake is the user's to fix: print what is wrong, not a stack trace.
  console.error(`candlekeep: invalid CDK context (cdk.json or -c)\n${(error as Error).message}`);
  process.exit(1);
}
const { stage } = config;

// No `env`: the stack is environment-agnostic and deploys to whatever account/region the CLI uses.
new CandlekeepStack(app, `Candlekeep-${stage}`, {
  stage,
  description: `candlekeep market-data store (${stage})`,
});

Tags.of(app).add('project', 'candlekeep');
Tags.of(app).add('stage', stage);
// cdk-nag v3 is a policy-validation plugin: an AwsSolutions finding fails synth.
// Acknowledgements (Validations.of(x).acknowledge) sit beside the resources they concern.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
