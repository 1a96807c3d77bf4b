/*!
 * ws4redis.js -- browser client for ws4redis_mw (websockets <-> Redis pub/sub).
 * Dependency-free. Drop-in replacement for the jQuery-based ws4redis client.
 *
 * LOADING
 *   Classic script:  <script src="{% static 'ws4redis_mw/ws4redis.js' %}"></script>
 *                    defines the global `WS4Redis` (window.WS4Redis).
 *   ES module:       import WS4Redis from "/static/ws4redis_mw/ws4redis.mjs";
 *                    (also `import { WS4Redis } from ...`). ws4redis.mjs is a
 *                    three-line wrapper: `export` is a syntax error in a classic
 *                    script, so this file stays a UMD that always sets
 *                    globalThis.WS4Redis (and module.exports under CommonJS),
 *                    and the .mjs imports it for its side effect and re-exports
 *                    the global. Both routes give the very same function.
 *
 * USAGE
 *   var ws4redis = WS4Redis({uri: "ws://host/ws/foobar?subscribe-broadcast&publish-broadcast",
 *                            receive_message: function (msg) { ... },
 *                            heartbeat_msg: "--heartbeat--"});
 *   ws4redis.send_message("hello");  ws4redis.close();
 *   (`new WS4Redis(...)` and `WS4Redis(...)` are equivalent.)
 *
 * OPTIONS (all optional except uri; times are in milliseconds)
 *   uri                   string, required. Full ws:// or wss:// URL, including the facility
 *                         and query, e.g. "ws://host/ws/foobar?subscribe-broadcast&echo".
 *   connecting()          called before every connection attempt (first one and each retry).
 *   connected()           called when a connection opens, after the send queue was flushed.
 *   receive_message(msg)  called for every incoming frame except heartbeat replies.
 *                         msg is a string; see decode_binary for binary frames. With the
 *                         `recover` flag: called for each payload, never for the envelopes.
 *   disconnected(evt, retry_ms)
 *                         called whenever a socket closes or an attempt fails. evt is the
 *                         CloseEvent (or a look-alike {code: 1006, reason: "heartbeat timeout"});
 *                         retry_ms is the delay before the next attempt, or null if the
 *                         client will not reconnect.
 *   heartbeat_msg         string, default null (no heartbeats). If set, it is sent every
 *                         heartbeat_interval while connected; a frame equal to it is a reply
 *                         and is never passed to receive_message.
 *   heartbeat_interval    default 5000.
 *   max_missed_heartbeats default 3. When that many heartbeats went out in a row without any
 *                         frame coming back, the connection is considered dead: it is dropped
 *                         and a reconnect is scheduled. Any incoming frame counts as a sign of
 *                         life, not just the heartbeat reply.
 *   reconnect             default true. false: never reconnect automatically.
 *   backoff_base          default 500.   Delay before retry n (n = 0, 1, 2, ... consecutive
 *   backoff_max           default 30000. failures) is random in [0, min(backoff_max,
 *                                        backoff_base * 2^n)) ("full jitter").
 *   stable_after          default 5000. A connection that stays open this long, or that
 *                         receives any frame, resets the failure count n to 0.
 *   stop_on_policy_close  default false. A close with code 1003 (unsupported data), 1008
 *                         (policy violation) or 4000-4999 (application-defined) means the
 *                         server rejected us on purpose, so retrying fast would only hammer
 *                         it: the next attempt waits between backoff_max/2 and backoff_max.
 *                         true: stop reconnecting altogether after such a close.
 *                         4001 (session ended: logout, an expired session, a ban by
 *                         ws4redis_mw.disconnect) never reconnects, whatever this says: the
 *                         page has to be loaded again (the user logs in again).
 *   queue_limit           default 1000. Messages passed to send_message() while not connected
 *                         are queued (at most this many) and sent in order on the next open.
 *                         When full, new messages are refused (send_message returns false).
 *                         0 disables queueing.
 *   decode_binary         default true. Binary frames arrive as ArrayBuffer (binaryType is
 *                         "arraybuffer") and are decoded as UTF-8 to a string, so that
 *                         receive_message always sees strings as with the original client.
 *                         If the bytes are not valid UTF-8, the ArrayBuffer is passed as-is.
 *                         false: always pass binary frames as ArrayBuffer.
 *   on_recovery(result)   called with {recovered: true|false, missed: n} once the server has
 *                         said whether a reconnect got back what was published meanwhile
 *                         (only with the `recover` flag, see RECOVERY). Not called after the
 *                         first connection, unless the uri carried positions.
 *
 * RECOVERY (server setting WS4REDIS_HISTORY; docs/protocol.md has the wire format)
 *   Add the flag `recover` to the uri ("...?subscribe-broadcast&recover") and the client keeps
 *   each channel's position (epoch and offset) from the server's envelopes, and on every
 *   reconnect sends it back as `recover=<URL-encoded JSON>` so that the server replays what
 *   the page missed, in order, before the live messages. receive_message still gets only
 *   payloads: the envelopes never reach the page; a replayed message already seen (its offset
 *   not above the known one, same epoch) is dropped. on_recovery({recovered: false, ...}) means
 *   some messages may be lost for good (history expired, or the server's history lost
 *   continuity: a new epoch on a channel); the page should offer a reload. The uri may carry
 *   positions of its own, `recover=<URL-encoded JSON>` as get_positions() gives them, e.g. saved
 *   by a previous page. Against a server that does not answer with a recovery frame, frames
 *   are passed on as they come. Without the flag nothing of this happens.
 *
 * API (returned object)
 *   send_message(msg)     send a string (or ArrayBuffer/Blob/typed array). Returns true if
 *                         sent or queued, false if dropped (queue full, or after close()).
 *   close([code, reason]) close for good: no reconnect, queue discarded. code defaults to 1000.
 *   get_state()           readyState of the current socket (0..3), as in the original client.
 *   get_positions()       with the `recover` flag: a copy of the known positions,
 *                         {"<channel>": {epoch: "<epoch>" or null, offset: n}, ...}; else null.
 */
(function (root, factory) {
	'use strict';
	var WS4Redis = factory();
	if (typeof module === 'object' && module && module.exports) {
		module.exports = WS4Redis;
	}
	root.WS4Redis = WS4Redis;
}(typeof globalThis !== 'undefined' ? globalThis : typeof self !== 'undefined' ? self : this, function () {
	'use strict';

	var OPEN = 1, CLOSED = 3;
	var DEFAULTS = {
		uri: null, connecting: null, connected: null, receive_message: null, disconnected: null,
		heartbeat_msg: null, heartbeat_interval: 5000, max_missed_heartbeats: 3,
		reconnect: true, backoff_base: 500, backoff_max: 30000, stable_after: 5000,
		stop_on_policy_close: false, queue_limit: 1000, decode_binary: true, on_recovery: null
	};
	var RECOVER = 'recover';

	var SESSION_ENDED = 4001;

	function is_policy_close(code) {
		return code === 1003 || code === 1008 || (code >= 4000 && code <= 4999);
	}

	function noop() {}

	function call(fn) {
		if (typeof fn !== 'function') return;
		try {
			return fn.apply(null, Array.prototype.slice.call(arguments, 1));
		} catch (err) {
			// A throwing callback must not break the connection state machine.
			setTimeout(function () { throw err; }, 0);
		}
	}

	// The uri's `recover` flag: null without it, else {prefix: the uri without the flag, ready
	// for one more query parameter, positions: the ones it carried, or null}.
	function recover_flag(uri) {
		var q = uri.indexOf('?'), prefix, value = null, found = false;
		if (q < 0) return null;
		prefix = uri.slice(0, q + 1);
		uri.slice(q + 1).split('&').forEach(function (part) {
			var eq = part.indexOf('='), name = eq < 0 ? part : part.slice(0, eq);
			if (name === RECOVER) {
				found = true;
				if (eq >= 0 && part.length > eq + 1) value = part.slice(eq + 1);
			} else if (part) {
				prefix += part + '&';
			}
		});
		if (!found) return null;
		var positions = null;
		if (value !== null) {
			positions = {};
			var given = JSON.parse(decodeURIComponent(value)), channel;
			for (channel in given) {
				positions[channel] = {epoch: given[channel].epoch || null, offset: given[channel].offset || 0};
			}
		}
		return {prefix: prefix, positions: positions};
	}

	// The positions as the server wants them back: a channel with no publication yet has epoch "".
	function recover_uri(prefix, positions) {
		var wire = {}, channel, any = false;
		for (channel in positions) {
			wire[channel] = {epoch: positions[channel].epoch || '', offset: positions[channel].offset};
			any = true;
		}
		return prefix + RECOVER + (any ? '=' + encodeURIComponent(JSON.stringify(wire)) : '');
	}

	function base64_bytes(text) {
		var binary = atob(text), bytes = new Uint8Array(binary.length);
		for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
		return bytes.buffer;
	}

	function WS4Redis(options) {
		if (!(this instanceof WS4Redis)) return new WS4Redis(options);
		var opts = {}, key;
		for (key in DEFAULTS) opts[key] = DEFAULTS[key];
		for (key in options || {}) opts[key] = options[key];
		if (!opts.uri) throw new Error('No Websocket URI in options');

		var ws = null;              // current WebSocket, or null while waiting to reconnect
		var queue = [];             // messages waiting for an open socket
		var failures = 0;           // consecutive failures, drives the backoff
		var closed = false;         // set by close(): the client is finished
		var retry_timer = null, stable_timer = null, heartbeat_timer = null;
		var missed_heartbeats = 0;
		var decoder = typeof TextDecoder === 'function' ? new TextDecoder('utf-8', {fatal: true}) : null;
		// Recovery (the uri's `recover` flag), see RECOVERY above. `positions` maps each channel
		// with history to {epoch, offset}: the last publication passed on, or the position the
		// server gave. `enveloped` is null until the current socket's first frame said whether
		// the server speaks the recovery protocol (a recovery frame) or not (anything else).
		var recovery = recover_flag(opts.uri);
		var positions = recovery && recovery.positions || {};
		var asked = recovery !== null && recovery.positions !== null;  // report the first recovery too
		var enveloped = null;

		function connect(first) {
			retry_timer = null;
			call(opts.connecting);
			if (closed) return;  // connecting() may have called close()
			var sock;
			try {
				sock = new WebSocket(recovery ? recover_uri(recovery.prefix, positions) : opts.uri);
			} catch (err) {
				if (first) throw err;  // e.g. malformed URI: report it to the caller
				return closed_with({code: 1006, reason: String(err), wasClean: false});
			}
			sock.binaryType = 'arraybuffer';
			enveloped = null;
			sock.onopen = function () { if (sock === ws) on_open(); };
			sock.onmessage = function (evt) { if (sock === ws) on_message(evt); };
			sock.onclose = function (evt) { if (sock === ws) closed_with(evt); };
			// An error is always followed by a close event, handled there. The no-op
			// handler keeps EventEmitter-based stand-ins (node's `ws`) from throwing.
			sock.onerror = noop;
			ws = sock;
		}

		function on_open() {
			missed_heartbeats = 0;
			stable_timer = setTimeout(function () { failures = 0; }, opts.stable_after);
			if (opts.heartbeat_msg) {
				heartbeat_timer = setInterval(send_heartbeat, opts.heartbeat_interval);
			}
			while (queue.length && ws && ws.readyState === OPEN) {
				ws.send(queue.shift());
			}
			call(opts.connected);
		}

		function on_message(evt) {
			var data = evt.data;
			missed_heartbeats = 0;
			failures = 0;
			if (data instanceof ArrayBuffer) data = decode(data);
			if (opts.heartbeat_msg && data === opts.heartbeat_msg) return;
			if (recovery) return on_envelope(data);
			call(opts.receive_message, data);
		}

		function decode(data) {
			if (opts.decode_binary && decoder) {
				try { return decoder.decode(data); } catch (err) { /* not UTF-8: keep the bytes */ }
			}
			return data;
		}

		// A frame of an opted-in socket: one JSON object with a "type", once the first frame
		// (the recovery frame) has shown that the server speaks the protocol.
		function on_envelope(data) {
			var env = null;
			if (enveloped !== false && typeof data === 'string') {
				try { env = JSON.parse(data); } catch (err) { /* not an envelope */ }
				if (!env || typeof env !== 'object' || typeof env.type !== 'string') env = null;
			}
			if (enveloped === null) enveloped = env !== null && env.type === 'recovery';
			if (!enveloped) return call(opts.receive_message, data);
			if (env === null) return;  // not from a server that keeps to the protocol
			if (env.type === 'recovery') on_recovery_frame(env);
			else if (env.type === 'message') on_publication(env);
			// Other types are for later versions: never passed on as payloads.
		}

		function on_recovery_frame(env) {
			var next = {}, channels = env.channels || {}, channel, known, given;
			// Channels absent from the frame have no history (any longer): forget them, or
			// the next reconnect would ask for them and be told "not recovered".
			for (channel in channels) {
				known = positions[channel];
				given = channels[channel];
				// A recovered channel keeps its known position: the replay that follows moves
				// it on (taking the server's current one would drop the replay as duplicates).
				next[channel] = given.recovered && known ? known : {epoch: given.epoch || null, offset: given.offset || 0};
			}
			positions = next;
			if (asked) call(opts.on_recovery, {recovered: env.recovered !== false, missed: env.missed || 0});
			asked = true;  // every later connection is a reconnect
		}

		function on_publication(env) {
			var known = positions[env.channel];
			if (typeof env.epoch === 'string' && env.epoch && typeof env.offset === 'number') {
				if (known && known.epoch === env.epoch && env.offset <= known.offset) return;  // seen already
				var lost = known && known.epoch !== null && known.epoch !== env.epoch;
				positions[env.channel] = {epoch: env.epoch, offset: env.offset};
				// A new epoch: the server's history broke off (e.g. Redis lost its data).
				if (lost) call(opts.on_recovery, {recovered: false, missed: 0});
			}
			if (typeof env.data === 'string') call(opts.receive_message, env.data);
			else if (typeof env.data_base64 === 'string') call(opts.receive_message, decode(base64_bytes(env.data_base64)));
		}

		function send_heartbeat() {
			if (!ws || ws.readyState !== OPEN) return;
			if (missed_heartbeats >= opts.max_missed_heartbeats) {
				if (typeof console !== 'undefined') console.warn('ws4redis: too many missed heartbeats, reconnecting');
				return drop({code: 1006, reason: 'heartbeat timeout', wasClean: false});
			}
			missed_heartbeats++;
			ws.send(opts.heartbeat_msg);
		}

		// Abandon the current socket without waiting for a close handshake a dead peer
		// will never answer, and carry on as if it had closed with `evt`.
		function drop(evt) {
			var sock = ws;
			ws = null;
			if (sock) {
				sock.onopen = sock.onmessage = sock.onclose = null;
				sock.onerror = noop;
				try { sock.close(); } catch (err) { /* already closing */ }
			}
			closed_with(evt);
		}

		// The current socket is gone (or an attempt failed): clean up, report, maybe retry.
		function closed_with(evt) {
			ws = null;
			clearTimeout(stable_timer);
			clearInterval(heartbeat_timer);
			stable_timer = heartbeat_timer = null;
			var delay = null;
			if (!closed && opts.reconnect) {
				if (evt.code === SESSION_ENDED) {
					delay = null;  // the credentials are gone: a retry would only get an anonymous socket or a 403
				} else if (!is_policy_close(evt.code)) {
					// full jitter: uniform in [0, min(cap, base * 2^failures))
					delay = Math.random() * Math.min(opts.backoff_max, opts.backoff_base * Math.pow(2, failures));
				} else if (!opts.stop_on_policy_close) {
					delay = opts.backoff_max * (0.5 + Math.random() / 2);
				}
				failures++;
				if (is_policy_close(evt.code) && typeof console !== 'undefined') {
					console.warn('ws4redis: server closed with ' + evt.code + ' (' + evt.reason + '), ' +
						(delay === null ? 'not reconnecting' : 'retrying in ' + Math.round(delay) + ' ms'));
				}
			}
			if (delay !== null) {
				retry_timer = setTimeout(function () { connect(false); }, delay);
			} else {
				closed = true;  // nothing will ever send the queue now
				queue = [];
			}
			call(opts.disconnected, evt, delay);
		}

		this.send_message = function (message) {
			if (closed) return false;
			if (ws && ws.readyState === OPEN && queue.length === 0) {
				ws.send(message);
				return true;
			}
			if (queue.length >= opts.queue_limit) return false;
			queue.push(message);
			return true;
		};

		this.close = function (code, reason) {
			if (closed) return;
			if (ws) {
				// Throws on an invalid code, before any state changed. The close event
				// follows later and reaches disconnected(evt, null): closed_with() sees
				// `closed` and does not reconnect.
				ws.close(code === undefined ? 1000 : code, reason);
			}
			closed = true;
			queue = [];
			clearTimeout(retry_timer);
			clearInterval(heartbeat_timer);
			retry_timer = heartbeat_timer = null;
		};

		this.get_state = function () {
			return ws ? ws.readyState : CLOSED;
		};

		this.get_positions = function () {
			if (!recovery) return null;
			var copy = {}, channel;
			for (channel in positions) copy[channel] = {epoch: positions[channel].epoch, offset: positions[channel].offset};
			return copy;
		};

		connect(true);
	}

	return WS4Redis;
}));
