/** lz4js (plain JavaScript LZ4) ships no types; the one call the feather reader makes. */
declare module 'lz4js' {
  /** Decompresses an LZ4 frame (magic 0x184D2204); `maxSize` defaults to the bound the frame header gives. */
  export function decompress(src: Uint8Array, maxSize?: number): Uint8Array | number[];
  const lz4: { decompress: typeof decompress };
  export default lz4;
}
