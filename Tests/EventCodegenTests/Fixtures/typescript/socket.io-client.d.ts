// A minimal stand-in for socket.io-client's type declarations, so the TypeScript check runs offline. It declares
// only what the check uses, typed the way socket.io-client 4.x types its `Socket<ListenEvents, EmitEvents>`:
// - an events map's value is the listener's type (`EventsMap`, `EventNames`);
// - `on(ev, listener)` takes that listener; `emit(ev, ...args)` takes the listener's parameters (`EventParams`),
//   so an event whose listener ends with an ack callback needs that callback;
// - `emitWithAck(ev, ...args)` takes the parameters before the last (the callback) and resolves to the callback's
//   first parameter.
declare module "socket.io-client" {
  export interface EventsMap {
    [event: string]: any;
  }

  export interface DefaultEventsMap {
    [event: string]: (...args: any[]) => void;
  }

  export type EventNames<Map extends EventsMap> = keyof Map & (string | symbol);

  export type EventParams<Map extends EventsMap, Ev extends EventNames<Map>> = Parameters<Map[Ev]>;

  /** The arguments before the ack callback. */
  type ArgumentsBeforeCallback<Args extends any[]> = Args extends [...infer Before, infer _Callback] ? Before : any[];

  /** What the ack callback (the last argument) receives first. */
  type CallbackValue<Args extends any[]> = Args extends [...infer _Before, (value: infer Value) => any] ? Value : any;

  export class Socket<ListenEvents extends EventsMap = DefaultEventsMap, EmitEvents extends EventsMap = ListenEvents> {
    on<Ev extends EventNames<ListenEvents>>(ev: Ev, listener: ListenEvents[Ev]): this;
    emit<Ev extends EventNames<EmitEvents>>(ev: Ev, ...args: EventParams<EmitEvents, Ev>): this;
    emitWithAck<Ev extends EventNames<EmitEvents>>(
      ev: Ev,
      ...args: ArgumentsBeforeCallback<EventParams<EmitEvents, Ev>>
    ): Promise<CallbackValue<EventParams<EmitEvents, Ev>>>;
  }

  export function io(uri: string): Socket;
}
