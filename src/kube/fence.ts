import type { Dispatcher } from "undici";

// A write guarded by a fence (a Lease still fresh enough, for example) is checked when the HTTP
// client opens its stream, not when the caller hands the request over: in between it may wait for a
// connection, a TLS handshake or a free HTTP/2 stream, and a process paused there (SIGSTOP, a frozen
// VM) would send it on resume, however long ago its leadership ended. What is left is the
// synchronous stretch from this check to the socket write; only the API server could close that.

/** A write not sent because its fence said no. Nothing reached the API server. */
export class FencedError extends Error {
  override readonly name = "FencedError";
  constructor(method: string, path: string) {
    super(`${method} ${path}: not sent, this replica may no longer write`);
  }
}

/**
 * An undici interceptor that asks `mayWrite` as the request starts on a connection, and aborts it
 * with a FencedError instead when the answer is no. Every other handler call passes through.
 */
export function fenceInterceptor(mayWrite: () => boolean, method: string, path: string): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (opts, handler) =>
    dispatch(
      opts,
      new Proxy(handler, {
        get(target, key) {
          if (key === "onRequestStart") {
            return (controller: Dispatcher.DispatchController, context: unknown) =>
              mayWrite() ? target.onRequestStart?.(controller, context) : controller.abort(new FencedError(method, path));
          }
          const value: unknown = Reflect.get(target, key, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      }),
    );
}
