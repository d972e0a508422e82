// A minimal Server-Sent Events client over fetch (Node 20+), for `weir flows --follow`,
// the bench and tests.
export interface SseEvent {
  event: string;
  data: string;
}

/** Yields events until the stream ends or `signal` aborts (then it returns quietly). */
export async function* readSse(url: string, signal?: AbortSignal, headers: Record<string, string> = {}): AsyncGenerator<SseEvent> {
  const res = await fetch(url, { headers: { ...headers, accept: 'text/event-stream' }, ...(signal ? { signal } : {}) });
  if (!res.ok || !res.body) {
    const text = await res.text().catch(() => '');
    throw new Error(`${url}: HTTP ${res.status}${text ? `: ${text}` : ''}`);
  }
  const decoder = new TextDecoder();
  let buf = '';
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (data.length > 0) yield { event, data: data.join('\n') };
      }
    }
  } catch (e) {
    if (signal?.aborted) return;
    throw e;
  } finally {
    reader.releaseLock();
  }
}
