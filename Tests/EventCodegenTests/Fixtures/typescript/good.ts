// Compiles against the both-ways catalog's export: every direction, with and without acks, as a page would use it.
import { io, Socket } from "socket.io-client";
import type {
  BothWaysClientEventName,
  BothWaysEventName,
  ClientToServerEvents,
  ServerToClientEvents,
  SheetSyncRequestAck,
} from "./events";

const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io("http://127.0.0.1:8080");

// Server → client; an event with an ack hands the listener a callback that takes the typed answer.
socket.on("chat:message", (message) => {
  const author: string = message.author.user_id;
  const name: string | null | undefined = message.author.display_name;
  console.log(author, name, message.room, message.text, message.sent_at);
});
socket.on("sheet:sync:progress", (progress, callback) => {
  const stage: "queued" | "running" | "done" = progress.stage;
  console.log(stage, progress.percent, progress.job_id);
  callback({ rendered: true, lag_ms: 12 });
});
socket.on("server:ping", (ping, callback) => {
  console.log(ping.at);
  callback({});
});

// Client → server; an event with an ack needs the callback, and emitWithAck resolves to the typed answer.
socket.emit("room:leave", { room: "lobby" });
socket.emit("typing", {});
socket.emit("chat:message", { room: "lobby", text: "hello" }, (ack) => {
  const id: string = ack.message_id;
  console.log(id, ack.accepted_at);
});
socket.emit("sheet:sync:request", { sheet_id: "s1", priority: "high", columns: null }, (ack) => {
  console.log(ack.job_id, ack.stage);
});

async function requestSync(sheetID: string): Promise<string> {
  const ack: SheetSyncRequestAck = await socket.emitWithAck("sheet:sync:request", {
    sheet_id: sheetID,
    priority: "normal",
    columns: ["A", "B"],
  });
  if (ack.rejected) {
    const retryAfter: number | null | undefined = ack.rejected.retry_after;
    throw new Error(`${ack.rejected.reason}, retry after ${retryAfter ?? "?"} s`);
  }
  return ack.job_id;
}

const sent: BothWaysClientEventName[] = ["chat:message", "room:leave", "sheet:sync:request", "typing"];
const received: BothWaysEventName[] = ["chat:message", "server:ping", "sheet:sync:progress"];
console.log(requestSync, sent, received);
