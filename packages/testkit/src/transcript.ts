import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';

/**
 * The recorded dm 0.8.1 transcript (packages/server/test/fixtures/dm-0.8.1-transcript.md): what
 * the original client printed for each command and every request it sent, exactly. Replay
 * tests send these requests to our servers (one server, or every node of a cluster).
 */
export const DM_081_TRANSCRIPT = resolve(import.meta.dirname, '../../server/test/fixtures/dm-0.8.1-transcript.md');

export interface RecordedRequest {
  /** The dm command line that sent it (`dm push origin`). */
  readonly command: string;
  /** The Basic auth user (`admin`, or `bob` for the remote `origin`). */
  readonly user: string;
  /** The request body as the client sent it (ids digit for digit). */
  readonly body: string;
  /** What the command printed (the lines before its requests). */
  readonly printed: readonly string[];
}

/** Every request of the transcript, in order, with the command that sent it and what it printed. */
export async function loadTranscript(file = DM_081_TRANSCRIPT): Promise<RecordedRequest[]> {
  const text = await readFile(file, 'utf8');
  const out: RecordedRequest[] = [];
  let command = '';
  let printed: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('### ')) {
      command = line.slice(4);
      printed = [];
    } else if (line.startsWith('    | ')) {
      printed.push(line.slice(6));
    } else {
      const m = /^ {4}-> POST \/rpc auth=([^:]+):\S+\s+(.*)$/.exec(line);
      if (m) out.push({ command, user: m[1]!, body: m[2]!, printed });
    }
  }
  return out;
}
