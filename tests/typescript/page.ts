// A classic page: <script src=".../ws4redis.js"> defines the global WS4Redis.
// Each @ts-expect-error is a misuse the declarations must reject: if they were
// too loose (any), the directive itself would be an error and tsc would fail.

const shown: string[] = [];

const ws4redis = WS4Redis({
    uri: "wss://example.com/ws/news?subscribe-broadcast&publish-broadcast&recover",
    heartbeat_msg: "--heartbeat--",
    heartbeat_interval: 5000,
    max_missed_heartbeats: 3,
    reconnect: true,
    backoff_base: 500,
    backoff_max: 30000,
    stable_after: 5000,
    stop_on_policy_close: false,
    queue_limit: 1000,
    decode_binary: true,
    connecting: () => shown.push("connecting"),
    connected: () => shown.push("connected"),
    receive_message: (msg) => {
        shown.push(typeof msg === "string" ? msg : `${msg.byteLength} bytes`);
    },
    disconnected: (evt, delay) => {
        const retry: string = delay === null ? "for good" : `in ${delay.toFixed(0)} ms`;
        shown.push(`${evt.code} ${evt.reason} ${evt.wasClean} ${retry}`);
    },
    on_recovery: (result) => {
        if (!result.recovered) shown.push(`missed ${result.missed}, reload`);
    },
});

const sent: boolean = ws4redis.send_message("hello");
ws4redis.send_message(new Uint8Array([1, 2, 3]));
ws4redis.send_message(new ArrayBuffer(4));
ws4redis.send_message(new Blob(["x"]));
const state: 0 | 1 | 2 | 3 = ws4redis.get_state();
const positions: WS4Redis.Positions | null = ws4redis.get_positions();
if (positions !== null) {
    for (const [channel, position] of Object.entries(positions)) {
        shown.push(`${channel} ${position.epoch ?? "none"} ${position.offset}`);
    }
}
ws4redis.close();
ws4redis.close(4000, "bye");

const constructed: WS4Redis.Client = new WS4Redis({uri: "ws://localhost/ws/foobar?subscribe-user"}, {});
shown.push(String(sent), String(state), String(constructed.get_state()));

// @ts-expect-error uri is required
WS4Redis({receive_message: () => undefined});
// @ts-expect-error an unknown option is a typo
WS4Redis({uri: "ws://h/ws/f", heartbeat_ms: 1000});
// @ts-expect-error times are numbers of milliseconds
WS4Redis({uri: "ws://h/ws/f", backoff_max: "30s"});
// @ts-expect-error send_message takes a string or bytes
ws4redis.send_message({text: "hi"});
// @ts-expect-error the result of on_recovery has no such field
WS4Redis({uri: "ws://h/ws/f", on_recovery: (result) => result.lost});
// @ts-expect-error the delay may be null: the client will not reconnect
WS4Redis({uri: "ws://h/ws/f", disconnected: (_evt, delay) => delay.toFixed(0)});
// @ts-expect-error no such method
ws4redis.reconnect();
