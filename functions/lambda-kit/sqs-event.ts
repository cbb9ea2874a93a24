import * as z from 'zod';

/** The part of an SQS event the consumers rely on, checked instead of assumed. */
export const sqsEventSchema = z.object({
  Records: z.array(
    z.object({
      messageId: z.string().min(1),
      body: z.string(),
      attributes: z.object({ ApproximateReceiveCount: z.string().optional() }).partial().optional(),
      messageAttributes: z.record(z.string(), z.object({ stringValue: z.string().optional() })).optional(),
    }),
  ),
});
export type SqsEvent = z.infer<typeof sqsEventSchema>;
const nonEmptySqsEventSchema = sqsEventSchema.extend({ Records: sqsEventSchema.shape.Records.min(1) });

/** Parses an SQS event or throws, naming the consumer that got something else. */
export function parseSqsEvent(event: unknown, consumer: string, options: { nonEmpty?: boolean } = {}): SqsEvent {
  const parsed = (options.nonEmpty ? nonEmptySqsEventSchema : sqsEventSchema).safeParse(event);
  if (!parsed.success) throw new Error(`${consumer} received an event that is not an SQS batch: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

export type SqsRecord = SqsEvent['Records'][number];

/** One record's message read from its JSON body, or why it could not be read. */
export type RecordMessage<T> = { ok: true; messageId: string; message: T } | { ok: false; messageId: string; reason: string };

/**
 * Reads a record's body as JSON and checks it against the consumer's message schema. A body that is
 * not JSON, or is JSON of another shape, comes back with a reason naming what was expected and the
 * first issue (with its path), never as an exception: whether such a record is dropped, ignored or
 * left for the dead-letter queue is the consumer's choice, and it must not fail the other records.
 */
export function readRecordBody<T>(record: Pick<SqsRecord, 'messageId' | 'body'>, schema: z.ZodType<T>, expected: string): RecordMessage<T> {
  let json: unknown;
  try {
    json = JSON.parse(record.body);
  } catch (err) {
    return { ok: false, messageId: record.messageId, reason: `body is not JSON (${(err as Error).message}); expected ${expected}` };
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return { ok: true, messageId: record.messageId, message: parsed.data };
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  return { ok: false, messageId: record.messageId, reason: `body is not ${expected}: ${where}${issue?.message ?? 'invalid'}` };
}

/** The partial batch response that makes SQS deliver again (or dead-letter) exactly these records and delete the rest. */
export function batchResponse(failedMessageIds: Iterable<string>): { batchItemFailures: { itemIdentifier: string }[] } {
  return { batchItemFailures: [...failedMessageIds].map((itemIdentifier) => ({ itemIdentifier })) };
}
