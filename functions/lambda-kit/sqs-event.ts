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
