/** The backfill planner Lambda's entry: the one place its settings and clients come from the container. */
import { liveExchangeDeps } from '../lambda-kit/container.ts';
import { createPlannerHandler, readPlannerConfig } from './planner-lambda.ts';

export const handler = createPlannerHandler(readPlannerConfig(process.env), liveExchangeDeps(process.env));
