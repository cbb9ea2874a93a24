/** The parts of a CloudFormation template a local run reads and writes. */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export interface CfnResource {
  Type: string;
  Properties?: Record<string, Json>;
  DependsOn?: string | string[];
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
  Metadata?: Record<string, Json>;
  Condition?: string;
}
export interface CfnTemplate {
  Description?: string;
  Parameters?: Record<string, Json>;
  Rules?: Record<string, Json>;
  Conditions?: Record<string, Json>;
  Resources: Record<string, CfnResource>;
  Outputs?: Record<string, { Value: Json; Description?: string; Export?: Json }>;
  [key: string]: unknown;
}
