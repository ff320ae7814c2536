// SocketGateway's own replacement for the protocol suites' node-imports.js (the suites are not committed here).
// It provides the globals the suites expect — fetch, WebSocket, chai — from Node 20 and Debian's packages:
//   fetch     Node's built-in fetch (the suites were written for node-fetch; the API they use is the same)
//   WebSocket Debian's node-ws, wrapped so that every event it raises (each incoming "message" in particular)
//             is dispatched in its own macrotask. ws raises all frames that arrive in one TCP read synchronously,
//             one after another; the suites chain `await waitFor(socket, "message")`, and the listener a promise
//             continuation adds after the first frame would miss the second. One macrotask per event restores the
//             timing a browser gives. setImmediate, not setTimeout(0): Node clamps a timeout to 1 ms, which would
//             move a frame behind an HTTP response that arrived after it (the upgrade tests notice).
//   chai      Debian's chai 4, plus a minimal `startsWith` / `startWith` assertion in place of chai-string.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const nodeModules = process.env.SOCKET_GATEWAY_NODE_MODULES || "/usr/share/nodejs";
const ws = require(`${nodeModules}/ws`);
const chai = require(`${nodeModules}/chai`);

class MacrotaskWebSocket extends ws.WebSocket {
  // ws calls emit() for every event it raises ("open", "message", "close", "error", ...). Each one is re-raised
  // in its own macrotask, in the original order; Node drains microtasks between setImmediate callbacks, so the
  // listener a promise continuation adds after one "message" is in place for the next one, and "close" still
  // comes after the messages that preceded it.
  emit(type, ...args) {
    const hadListeners = this.listenerCount(type) > 0;
    setImmediate(() => super.emit(type, ...args));
    return hadListeners;
  }
}

function startsWithPlugin(chaiApi, utils) {
  function assertStartsWith(prefix) {
    const actual = utils.flag(this, "object");
    this.assert(
      typeof actual === "string" && actual.startsWith(prefix),
      "expected #{this} to start with #{exp}",
      "expected #{this} not to start with #{exp}",
      prefix,
      actual
    );
  }
  chaiApi.Assertion.addMethod("startsWith", assertStartsWith);
  chaiApi.Assertion.addMethod("startWith", assertStartsWith);
}

chai.use(startsWithPlugin);

globalThis.fetch = fetch;
globalThis.WebSocket = MacrotaskWebSocket;
globalThis.chai = chai;
