import { Writable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';

/** S3's smallest part but the last is 5 MiB; 8 MiB parts reach 80 GB within its 10,000 parts. */
export const PART_BYTES = 8 * 1024 * 1024;
const MAX_PARTS = 10_000;
const MIN_PART_BYTES = 5 * 1024 * 1024;

export interface S3UploadOptions {
  s3: S3Client;
  bucket: string;
  key: string;
  contentType: string;
  /** Bytes per part, at least 5 MiB (S3 refuses smaller parts but the last). Default 8 MiB. */
  partBytes?: number;
}

/**
 * A writable stream into one S3 object by multipart upload: bytes gather into a part, and a write
 * that fills one waits until S3 has it, so at most one part is held whatever the file's size. A
 * file smaller than a part is one PutObject. Destroyed before it finished, it aborts the upload,
 * so no half-written object appears and no parts are left to bill.
 */
export class S3Upload extends Writable {
  readonly #opts: Required<S3UploadOptions>;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #uploadId: string | undefined;
  #parts: { ETag: string; PartNumber: number }[] = [];
  #completed = false;
  /** Bytes accepted so far (the object's size once finished). */
  bytes = 0;

  constructor(opts: S3UploadOptions) {
    super({ highWaterMark: 256 * 1024 });
    this.#opts = { partBytes: PART_BYTES, ...opts };
    if (this.#opts.partBytes < MIN_PART_BYTES) throw new Error(`partBytes must be at least ${MIN_PART_BYTES} (S3's smallest part)`);
  }

  override _write(chunk: Buffer | string, encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    this.#chunks.push(buf);
    this.#buffered += buf.length;
    this.bytes += buf.length;
    if (this.#buffered < this.#opts.partBytes) {
      callback();
      return;
    }
    this.#flushPart().then(() => callback(), callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.#finish().then(() => callback(), callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const uploadId = this.#uploadId;
    if (uploadId === undefined || this.#completed) {
      callback(err);
      return;
    }
    this.#chunks = [];
    // The abort's own failure must not hide why the upload stopped; the bucket's lifecycle rule
    // removes parts left by an abort that did not get through.
    this.#sdk()
      .then(({ AbortMultipartUploadCommand }) => this.#opts.s3.send(new AbortMultipartUploadCommand({ Bucket: this.#opts.bucket, Key: this.#opts.key, UploadId: uploadId })))
      .then(
        () => callback(err),
        () => callback(err),
      );
  }

  #sdk() {
    return import('@aws-sdk/client-s3');
  }

  #take(): Buffer {
    const body = Buffer.concat(this.#chunks, this.#buffered);
    this.#chunks = [];
    this.#buffered = 0;
    return body;
  }

  async #flushPart(): Promise<void> {
    const { s3, bucket, key, contentType } = this.#opts;
    const { CreateMultipartUploadCommand, UploadPartCommand } = await this.#sdk();
    this.#uploadId ??= (await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: contentType }))).UploadId;
    if (!this.#uploadId) throw new Error(`S3 started no multipart upload for s3://${bucket}/${key}`);
    const PartNumber = this.#parts.length + 1;
    if (PartNumber > MAX_PARTS) throw new Error(`the file outgrew S3's ${MAX_PARTS} parts of ${this.#opts.partBytes} bytes`);
    const res = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: this.#uploadId, PartNumber, Body: this.#take() }));
    if (!res.ETag) throw new Error(`S3 returned no ETag for part ${PartNumber} of s3://${bucket}/${key}`);
    this.#parts.push({ ETag: res.ETag, PartNumber });
  }

  async #finish(): Promise<void> {
    const { s3, bucket, key, contentType } = this.#opts;
    const { CompleteMultipartUploadCommand, PutObjectCommand } = await this.#sdk();
    if (this.#uploadId === undefined) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, ContentType: contentType, Body: this.#take() }));
      this.#completed = true;
      return;
    }
    if (this.#buffered > 0) await this.#flushPart();
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: this.#uploadId, MultipartUpload: { Parts: this.#parts } }));
    this.#completed = true;
  }
}
