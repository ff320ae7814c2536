// A small Socket.IO v5 client (Engine.IO v4 over WebSocket), written for this demo page.
//
// What it does: the Engine.IO handshake ("0{...}"), answers the server's pings ("2" -> "3") and notices when they
// stop, connects to one namespace with an auth payload ("40{...}"), receives events ("42[...]"), emits events,
// asks for acknowledgements ("42<id>[...]" answered by "43<id>[...]"), handles CONNECT_ERROR ("44{...}") and
// reconnects with exponential backoff and a fresh auth payload each time.
// What it leaves out: HTTP long-polling, binary attachments, acks the server asks for. The official
// socket.io-client does all of that; this one stays short enough to read in one sitting.
//
//   const socket = new SocketIOClient(location.origin, { auth: async () => ({ token }) });
//   socket.on("sheet:sync:progress", (payload) => ...);
//   socket.on("status", ({ state, detail }) => ...);   // connecting | connected | reconnecting | unauthorized | closed
//   const answer = await socket.emitWithAck("sheet:sync:request", { sheet_id: "customers" });
//   socket.connect();

const ENGINE_OPEN = "0";
const ENGINE_CLOSE = "1";
const ENGINE_PING = "2";
const ENGINE_PONG = "3";
const ENGINE_MESSAGE = "4";

const SIO_CONNECT = "0";
const SIO_DISCONNECT = "1";
const SIO_EVENT = "2";
const SIO_ACK = "3";
const SIO_CONNECT_ERROR = "4";

export class SocketIOClient {
  /**
   * @param {string} origin  e.g. "http://127.0.0.1:8001"
   * @param {object} options
   * @param {() => (object|Promise<object>)} [options.auth]  the CONNECT payload, asked for before every attempt
   * @param {string} [options.path]  the Engine.IO path (default "/socket.io/")
   * @param {string} [options.namespace]  default "/"
   * @param {number} [options.reconnectDelay]  first retry delay in ms (default 500), doubled up to reconnectDelayMax
   * @param {number} [options.reconnectDelayMax]  default 5000
   */
  constructor(origin, options = {}) {
    const url = new URL(options.path ?? "/socket.io/", origin);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.search = "?EIO=4&transport=websocket";
    this.url = url.toString();
    this.namespace = options.namespace ?? "/";
    this.auth = options.auth ?? (() => ({}));
    this.reconnectDelay = options.reconnectDelay ?? 500;
    this.reconnectDelayMax = options.reconnectDelayMax ?? 5000;
    this.handlers = new Map();
    this.ws = null;
    this.id = null;
    this.state = "closed";
    this.attempt = 0;
    this.wanted = false;
    this.pingDeadline = null;
    this.retryTimer = null;
    this.nextAckId = 0;
    this.pendingAcks = new Map(); // ack id -> { resolve, reject }
  }

  /** Registers a handler for an event name, or for "status", "connect", "disconnect", "connect_error". */
  on(event, handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, []);
    this.handlers.get(event).push(handler);
    return this;
  }

  /** Opens the connection (and keeps reconnecting until disconnect() is called). */
  connect() {
    this.wanted = true;
    this.attempt = 0;
    clearTimeout(this.retryTimer);
    this.open();
  }

  /** Closes the connection for good. */
  disconnect() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    clearTimeout(this.pingDeadline);
    if (this.ws) {
      this.sendRaw(ENGINE_MESSAGE + SIO_DISCONNECT + this.nsp());
      this.ws.close(1000);
      this.ws = null;
    }
    this.failPendingAcks("signed out");
    this.setState("closed", "signed out");
  }

  /** Emits an event with JSON arguments; dropped (returns false) while not connected. */
  emit(event, ...args) {
    if (this.state !== "connected") return false;
    return this.sendRaw(ENGINE_MESSAGE + SIO_EVENT + this.nsp() + JSON.stringify([event, ...args]));
  }

  /**
   * Emits an event asking for an acknowledgement; resolves to the ack's first argument, as socket.io-client's
   * emitWithAck does. Rejects when not connected or when the connection ends before the answer.
   */
  emitWithAck(event, ...args) {
    return new Promise((resolve, reject) => {
      if (this.state !== "connected") return reject(new Error("not connected"));
      const id = this.nextAckId++;
      this.pendingAcks.set(id, { resolve, reject });
      if (!this.sendRaw(ENGINE_MESSAGE + SIO_EVENT + this.nsp() + id + JSON.stringify([event, ...args]))) {
        this.pendingAcks.delete(id);
        reject(new Error("not connected"));
      }
    });
  }

  // --- internals ---------------------------------------------------------------------------------------------

  nsp() {
    return this.namespace === "/" ? "" : this.namespace + ",";
  }

  fire(event, ...args) {
    for (const handler of this.handlers.get(event) ?? []) {
      try {
        handler(...args);
      } catch (error) {
        console.error(`handler for ${event} failed`, error);
      }
    }
  }

  setState(state, detail = "") {
    this.state = state;
    this.fire("status", { state, detail, attempt: this.attempt });
  }

  sendRaw(text) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(text);
    return true;
  }

  async open() {
    if (!this.wanted) return;
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting", this.attempt === 0 ? "" : `attempt ${this.attempt}`);
    let auth;
    try {
      auth = await this.auth();
    } catch (error) {
      this.scheduleRetry(`could not prepare the auth payload: ${error.message ?? error}`);
      return;
    }
    if (!this.wanted) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onmessage = (message) => {
      if (typeof message.data === "string") this.onPacket(message.data, auth);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearTimeout(this.pingDeadline);
      this.failPendingAcks("connection lost");
      const wasConnected = this.state === "connected";
      if (wasConnected) this.fire("disconnect", event.reason || `transport closed (code ${event.code})`);
      if (this.state !== "unauthorized") this.scheduleRetry(wasConnected ? "connection lost" : "could not connect");
    };
  }

  onPacket(text, auth) {
    const type = text[0];
    const body = text.slice(1);
    if (type === ENGINE_OPEN) {
      const handshake = JSON.parse(body);
      this.pingWindow = handshake.pingInterval + handshake.pingTimeout;
      this.armPingDeadline();
      this.sendRaw(ENGINE_MESSAGE + SIO_CONNECT + this.nsp() + JSON.stringify(auth ?? {}));
    } else if (type === ENGINE_PING) {
      this.armPingDeadline();
      this.sendRaw(ENGINE_PONG);
    } else if (type === ENGINE_CLOSE) {
      this.ws?.close();
    } else if (type === ENGINE_MESSAGE) {
      this.onSocketIOPacket(body);
    }
  }

  onSocketIOPacket(text) {
    const type = text[0];
    let rest = text.slice(1);
    // Skip a binary-attachment count ("51-") and a namespace ("/admin,"); this client uses one namespace.
    if (rest.startsWith("/")) rest = rest.slice(rest.indexOf(",") + 1);
    // An ack id: the digits before the JSON.
    const ackId = rest.match(/^\d*/)[0];
    const json = rest.slice(ackId.length);
    if (type === SIO_CONNECT) {
      this.id = JSON.parse(json).sid;
      this.attempt = 0;
      this.setState("connected", this.id);
      this.fire("connect", this.id);
    } else if (type === SIO_CONNECT_ERROR) {
      const error = json ? JSON.parse(json) : { message: "refused" };
      this.setState("unauthorized", error.message);
      this.fire("connect_error", error);
      this.ws?.close();
    } else if (type === SIO_DISCONNECT) {
      this.fire("disconnect", "the server disconnected this client");
      this.ws?.close();
    } else if (type === SIO_EVENT) {
      const [event, ...args] = JSON.parse(json);
      this.fire(event, ...args);
    } else if (type === SIO_ACK) {
      const pending = this.pendingAcks.get(Number(ackId));
      this.pendingAcks.delete(Number(ackId));
      pending?.resolve(JSON.parse(json)[0]);
    }
  }

  failPendingAcks(reason) {
    for (const { reject } of this.pendingAcks.values()) reject(new Error(reason));
    this.pendingAcks.clear();
  }

  // The server pings every pingInterval; if nothing comes within pingInterval + pingTimeout the link is dead.
  armPingDeadline() {
    clearTimeout(this.pingDeadline);
    this.pingDeadline = setTimeout(() => this.ws?.close(4000, "ping timeout"), this.pingWindow);
  }

  scheduleRetry(reason) {
    if (!this.wanted) return;
    this.attempt += 1;
    const base = Math.min(this.reconnectDelayMax, this.reconnectDelay * 2 ** (this.attempt - 1));
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.setState("reconnecting", `${reason}; retry ${this.attempt} in ${(delay / 1000).toFixed(1)} s`);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.open(), delay);
  }
}
