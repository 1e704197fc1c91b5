// SPDX-License-Identifier: GPL-3.0-or-later
// MQTT.js driven line by line for tests/integration/http/websocket_test.py.
//
//   node client.js '{"url": "ws://127.0.0.1:PORT/ws", "protocolVersion": 5,
//                    "username": "admin", "password": "...", "clientId": "...",
//                    "timeoutMs": 20000}'
//
// Commands arrive on stdin, one JSON object a line:
//   {"cmd": "subscribe", "topic": "t/#", "qos": 1}
//   {"cmd": "publish", "topic": "t/x", "payload": "hi", "qos": 1, "retain": false}
//   {"cmd": "end"}
// Every event is printed as one JSON line on stdout: connect, subscribed,
// published, message, error, close, end. The process exits 0 after "end",
// 1 on a connection error, 2 when timeoutMs passes first.
"use strict";

const mqtt = require("mqtt");
const readline = require("readline");

const opts = JSON.parse(process.argv[2] || "{}");
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const timer = setTimeout(() => {
  emit({ event: "timeout" });
  process.exit(2);
}, opts.timeoutMs || 20000);

const client = mqtt.connect(opts.url, {
  protocolVersion: opts.protocolVersion || 4,
  username: opts.username,
  password: opts.password,
  clientId: opts.clientId || "mqttjs-" + process.pid,
  clean: true,
  reconnectPeriod: 0,
  connectTimeout: 5000,
  keepalive: 30,
  wsOptions: opts.wsOptions || {},
});

client.on("connect", (connack) => {
  emit({ event: "connect", sessionPresent: !!connack.sessionPresent,
         reasonCode: connack.reasonCode || connack.returnCode || 0 });
});

client.on("message", (topic, payload, packet) => {
  emit({ event: "message", topic, payload: payload.toString("utf8"), qos: packet.qos,
         retain: !!packet.retain });
});

client.on("error", (err) => {
  emit({ event: "error", message: String(err && err.message), code: err && err.code });
  clearTimeout(timer);
  client.end(true, () => process.exit(1));
  setTimeout(() => process.exit(1), 1000);
});

client.on("close", () => emit({ event: "close" }));

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  const c = JSON.parse(line);
  if (c.cmd === "subscribe") {
    client.subscribe(c.topic, { qos: c.qos || 0 }, (err, granted) => {
      if (err) return emit({ event: "error", message: String(err.message) });
      emit({ event: "subscribed", granted: granted.map((g) => g.qos) });
    });
  } else if (c.cmd === "publish") {
    client.publish(c.topic, c.payload, { qos: c.qos || 0, retain: !!c.retain }, (err) => {
      if (err) return emit({ event: "error", message: String(err.message) });
      emit({ event: "published", topic: c.topic });
    });
  } else if (c.cmd === "end") {
    client.end(false, () => {
      emit({ event: "end" });
      clearTimeout(timer);
      process.exit(0);
    });
  }
});
