import type { APIGatewayProxyResult } from 'aws-lambda';
import { redactingReplacer } from '../lambda-kit/redact.ts';
import { toCsv, type CsvValue } from './csv.ts';
import { PROBLEM_CONTENT_TYPE, type HttpProblem } from './problem.ts';

export type ApiResponse = APIGatewayProxyResult;

/** A JSON body a route wrote itself (e.g. around rows PostgreSQL wrote as JSON): sent as it is. */
export class JsonText {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): ApiResponse {
  const text = body instanceof JsonText ? body.text : JSON.stringify(body);
  return { statusCode: status, headers: { 'Content-Type': 'application/json', ...headers }, body: text };
}

export function csv(columns: readonly string[], rows: Iterable<readonly CsvValue[]>, headers: Record<string, string> = {}): ApiResponse {
  return {
    statusCode: 200,
    headers: { 'Content-Type': 'text/csv; charset=utf-8', ...headers },
    body: toCsv(columns, rows),
  };
}

export function noContent(headers: Record<string, string> = {}): ApiResponse {
  return { statusCode: 204, headers, body: '' };
}

export function problem(p: HttpProblem, requestId?: string): ApiResponse {
  return {
    statusCode: p.status,
    headers: { 'Content-Type': PROBLEM_CONTENT_TYPE, ...p.headers },
    // A detail may quote an error message; whatever secret it carries stays out of the answer.
    body: JSON.stringify(p.toProblem(requestId), redactingReplacer),
  };
}
