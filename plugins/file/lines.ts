/** Streaming line I/O for the file plugin: memory stays flat however large the file is. */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';

/**
 * Yields the lines of a UTF-8 file without their "\n". It splits on "\n" only (readline would
 * also split on a lone "\r"), so a "\r" inside a quoted CSV field survives a rewrite unchanged.
 */
export async function* readLines(path: string): AsyncGenerator<string> {
  let rest = '';
  for await (const chunk of createReadStream(path, { encoding: 'utf8' }) as AsyncIterable<string>) {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop() ?? '';
    yield* parts;
  }
  if (rest !== '') yield rest;
}

/** Bytes (roughly) gathered before a write to the stream: one await per line would be slow. */
const chunkSize = 64 * 1024;

/** A file written through a stream that honours backpressure; its data is fsynced on close. */
export class FileWriter {
  private readonly stream: WriteStream;
  private failure: Error | undefined;
  private pending = '';

  /** A new file at `path`, which will begin with `text`. */
  constructor(
    readonly path: string,
    text = '',
  ) {
    this.pending = text;
    // 'wx': a temp name is random, so an existing file means something is badly wrong.
    this.stream = createWriteStream(path, { flags: 'wx', flush: true });
    // Without a listener an I/O error would crash the process; it is rethrown by the next call.
    this.stream.on('error', (e) => (this.failure = e));
  }

  /** Writes text; waits for the stream to drain when its buffer is full. */
  async write(text: string): Promise<void> {
    this.pending += text;
    if (this.pending.length >= chunkSize) await this.flush();
  }

  /** Appends the bytes of a file, after the text written so far. */
  async copyFrom(path: string): Promise<void> {
    await this.flush();
    for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
      if (this.failure) throw this.failure;
      if (!this.stream.write(chunk)) await once(this.stream, 'drain');
    }
  }

  /** Flushes and closes the file. */
  async close(): Promise<void> {
    await this.flush();
    this.stream.end();
    await finished(this.stream);
  }

  /** Closes the file without caring for its content (the caller deletes it). */
  async abort(): Promise<void> {
    if (this.stream.closed) return;
    this.stream.destroy();
    await once(this.stream, 'close');
  }

  private async flush(): Promise<void> {
    if (this.failure) throw this.failure;
    const text = this.pending;
    this.pending = '';
    if (text !== '' && !this.stream.write(text)) await once(this.stream, 'drain');
  }
}
