// A page that imports the ES module ws4redis.mjs: default and named exports are the same factory.
import WS4Redis, { WS4Redis as Named, type Client, type Options, type RecoveryResult } from "../../ws4redis_mw/static/ws4redis_mw/ws4redis.mjs";

const options: Options = {
    uri: "ws://localhost/ws/chat?subscribe-broadcast&publish-broadcast",
    receive_message: (msg: string | ArrayBuffer) => console.log(msg),
    on_recovery: (result: RecoveryResult) => console.log(result.recovered, result.missed),
};
const client: Client = WS4Redis(options);
const same: Client = new Named(options);
client.send_message("hi");
same.close(1000);

// @ts-expect-error the factory takes options, not a URL
WS4Redis("ws://localhost/ws/chat");
