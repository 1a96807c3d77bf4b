// TypeScript declarations for ws4redis.mjs, the ES module of ws4redis.js: the
// same factory and types as ws4redis.d.ts, as the default and a named export.
//   import WS4Redis from "/static/ws4redis_mw/ws4redis.mjs";
import WS4Redis = require("./ws4redis.js");

export type Options = WS4Redis.Options;
export type Client = WS4Redis.Client;
export type Position = WS4Redis.Position;
export type Positions = WS4Redis.Positions;
export type RecoveryResult = WS4Redis.RecoveryResult;
export type HeartbeatTimeout = WS4Redis.HeartbeatTimeout;
export type Message = WS4Redis.Message;
export { WS4Redis };
export default WS4Redis;
