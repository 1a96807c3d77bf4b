// TypeScript declarations for ws4redis.js, the browser client of ws4redis_mw
// (docs/js-client.md).  ws4redis.js is a UMD: a classic script defines the
// global `WS4Redis`, CommonJS gets it as module.exports; ws4redis.d.mts types
// the ES module ws4redis.mjs.  All times are in milliseconds.
/// <reference lib="dom" />

declare namespace WS4Redis {
    /** A channel's position in the server's history (the `recover` flag): `epoch` null for a channel with nothing published yet. */
    interface Position {
        epoch: string | null;
        offset: number;
    }

    /** Positions by channel name: `broadcast`, `user`, `session`, `group:<name>`. */
    type Positions = Record<string, Position>;

    /** What `on_recovery` is told after a reconnect: whether everything missed was replayed, and how much. */
    interface RecoveryResult {
        recovered: boolean;
        missed: number;
    }

    /** The look-alike of a CloseEvent for a connection dropped by the heartbeat check. */
    interface HeartbeatTimeout {
        code: 1006;
        reason: "heartbeat timeout";
        wasClean: boolean;
    }

    /** What may be sent: a string is a text frame; the rest go out as binary frames. */
    type Message = string | ArrayBuffer | Blob | ArrayBufferView;

    interface Options {
        /** Full ws:// or wss:// URL with the facility and the flags, e.g. "ws://host/ws/foobar?subscribe-broadcast". Required. */
        uri: string;
        /** Called before every connection attempt, the first one and each retry. */
        connecting?: () => void;
        /** Called when a connection opens, after any queued messages were sent. */
        connected?: () => void;
        /** Called for each incoming frame but heartbeat replies: a string, or an ArrayBuffer (see `decode_binary`). */
        receive_message?: (msg: string | ArrayBuffer) => void;
        /**
         * Called every time a socket closes or an attempt fails; `retry_ms` is the
         * delay before the next attempt, or null when the client will not reconnect.
         */
        disconnected?: (evt: CloseEvent | HeartbeatTimeout, retry_ms: number | null) => void;
        /** Sent every `heartbeat_interval` while connected; null (the default): no heartbeats. */
        heartbeat_msg?: string | null;
        /** Default 5000. */
        heartbeat_interval?: number;
        /** Heartbeats in a row without any frame back before the connection counts as dead. Default 3. */
        max_missed_heartbeats?: number;
        /** false: never reconnect automatically. Default true. */
        reconnect?: boolean;
        /** Base of the exponential backoff ("full jitter"). Default 500. */
        backoff_base?: number;
        /** Cap of the backoff. Default 30000. */
        backoff_max?: number;
        /** How long a connection must stay open before the backoff resets. Default 5000. */
        stable_after?: number;
        /** After a close with 1003, 1008 or 4000-4999: true stops reconnecting; false (the default) retries slowly. */
        stop_on_policy_close?: boolean;
        /** Most messages queued while disconnected; 0 turns queueing off. Default 1000. */
        queue_limit?: number;
        /** Decode binary frames as UTF-8 text (ArrayBuffer when not UTF-8). Default true. */
        decode_binary?: boolean;
        /** With the `recover` flag: called once the server said whether a reconnect got back everything published meanwhile. */
        on_recovery?: (result: RecoveryResult) => void;
    }

    interface Client {
        /** Sends, or queues while not connected; false when dropped (queue full, or the client is finished). Never throws for a closed connection. */
        send_message(msg: Message): boolean;
        /** Closes the client for good (default code 1000; browsers accept 1000 and 3000-4999). */
        close(code?: number, reason?: string): void;
        /** The current socket's readyState: 0 connecting, 1 open, 2 closing, 3 closed (also while waiting to reconnect). */
        get_state(): 0 | 1 | 2 | 3;
        /** With the `recover` flag, a copy of the positions the client knows; without it, null. */
        get_positions(): Positions | null;
    }

    /** `WS4Redis(options)` and `new WS4Redis(options)` are the same; the original client's second argument (jQuery) is ignored. */
    interface Factory {
        (options: Options, jquery?: unknown): Client;
        new (options: Options, jquery?: unknown): Client;
    }
}

declare const WS4Redis: WS4Redis.Factory;
export = WS4Redis;
export as namespace WS4Redis;
