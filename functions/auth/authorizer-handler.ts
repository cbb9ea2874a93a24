/** The API authorizer Lambda's entry: the one place its settings and clients come from the container. */
import { createAuthorizerHandler, liveAuthorizerDeps, readAuthorizerConfig } from './authorizer-lambda.ts';

const config = readAuthorizerConfig(process.env);
export const handler = createAuthorizerHandler({ meterWithConfiguredKey: config.usageKeyId !== undefined }, liveAuthorizerDeps(config, process.env));
