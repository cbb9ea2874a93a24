/**
 * The AWS side of a local run, taken from the synthesized CDK stack rather than from a second list:
 *
 *   const synth = await synthesizeCandlekeep();                   // synthesize.ts: the stack `cdk deploy` deploys
 *   const local = localTemplate(synth, { services, inboxes: true }); // local-template.ts
 *   const deployment = await deployLocalTemplate(cfn, 'Candlekeep-dev', local); // cloudformation.ts
 *
 * LocalStack without a Docker engine cannot run Lambda, so the functions (and what only exists for
 * them: roles, log groups, permissions, the API Gateway in front of them) are taken out of the
 * template; everything else (queues with their redrive policies, the secret, the bus and its rule,
 * schedule groups and schedules, alarm topic and key when LocalStack offers SNS/KMS) is deployed
 * through LocalStack's CloudFormation. References to removed resources become placeholder ARNs.
 * The removed functions are then described (`localFunctions`) so a local process can run their
 * handlers with the environment, batch settings and schedules the template gives them (functions.ts).
 */
export * from './shapes.ts';
export * from './synthesize.ts';
export * from './local-template.ts';
export * from './references.ts';
export * from './cloudformation.ts';
export * from './deployment.ts';
export * from './functions.ts';
