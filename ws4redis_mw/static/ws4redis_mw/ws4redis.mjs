// ES module entry point for ws4redis.js. A classic script cannot contain `export`,
// so ws4redis.js is a UMD that sets globalThis.WS4Redis; this wrapper loads it for
// that side effect and re-exports the same function.
//   import WS4Redis from "/static/ws4redis_mw/ws4redis.mjs";
import "./ws4redis.js";

const WS4Redis = globalThis.WS4Redis;
export { WS4Redis };
export default WS4Redis;
