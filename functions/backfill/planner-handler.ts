/** The backfill planner Lambda's entry: the one place its settings and clients come from the container. */
import { createPlannerHandler, livePlannerDeps, readPlannerConfig } from './planner-lambda.ts';

export const handler = createPlannerHandler(readPlannerConfig(process.env), livePlannerDeps(process.env));
