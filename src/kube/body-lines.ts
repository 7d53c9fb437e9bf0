// Reading a streamed HTTP body line by line: watch events (one JSON object per line) and Prometheus
// text, which is megabytes on kube-apiserver and is never needed whole.

/**
 * The newline-terminated lines of a body, decoded as UTF-8 across chunk boundaries (a character split
 * between two chunks stays whole). A last line without its newline is a cut-off stream and is dropped.
 */
export async function* bodyLines(body: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of body) {
    const text = rest + decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let newline = text.indexOf("\n"); newline >= 0; newline = text.indexOf("\n", start)) {
      yield text.slice(start, newline);
      start = newline + 1;
    }
    rest = text.slice(start);
  }
}
