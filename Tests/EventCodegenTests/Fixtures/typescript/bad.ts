// Each statement below is wrong in one way; the test expects tsc to report exactly these errors, one per line.
import { io, Socket } from "socket.io-client";
import type { ClientToServerEvents, ServerToClientEvents } from "./events";

const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io("http://127.0.0.1:8080");

socket.emit("sheet:sync:request", { sheet_id: 42, priority: "high" }, (ack) => console.log(ack.job_id));
socket.emit("chat:message", { room: "lobby", text: "hello" });
socket.emit("sheet:sync:request", { sheet_id: "s1", priority: "urgent" }, (ack) => console.log(ack.job_id));
socket.emit("room:leave", { room: "lobby" }, () => console.log("no ack is declared"));
socket.emit("sheet:sync:progress", { job_id: "j1", stage: "done", percent: 100 });
socket.on("sheet:sync:progress", (progress, callback) => callback({ rendered: "yes" }));
socket.emitWithAck("chat:message", { room: "lobby" });
