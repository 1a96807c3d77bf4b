/* The page side of the chat example, shared by its three pages: the message
 * list, the connection badge and the form.  The websocket itself is opened by
 * each page's own script, with WS4Redis (ws4redis_mw/ws4redis.js).
 *
 * A POST that the server could not publish (503: Redis is away) is sent again
 * with backoff for up to a minute, the form saying "not sent, retrying…"
 * meanwhile; the text stays in the input until it has gone.  The recipient
 * picker (Direct, Groups) follows the conversation: it selects whoever wrote
 * last (or whom you wrote to last), unless you are typing, and remembers it
 * across reloads.  After a reconnect the server replays what the page missed
 * (the `recover` flag); when it could not (history expired, Redis lost its
 * data), a notice asks for a reload. */
function ChatPage() {
    var list = document.getElementById("messages");
    var status = document.getElementById("status");
    var form = document.getElementById("send");
    var error = document.getElementById("error");
    var notice = document.getElementById("notice");
    var me = document.body.dataset.user;
    var picker = form.elements.to && form.elements.to.tagName === "SELECT" ? form.elements.to : null;
    var remembered = "ws4redis-chat:" + location.pathname + ":" + (me || "") + ":to";
    /** Milliseconds a message that could not be published is retried for. */
    var RETRY_FOR = 60000;

    function pick(name) {
        if (!picker || !name) return;
        for (var i = 0; i < picker.options.length; i++) {
            if (picker.options[i].value === name) {
                picker.value = name;
                try { localStorage.setItem(remembered, name); } catch (e) { /* private mode */ }
                return;
            }
        }
    }
    if (picker) {
        try { pick(localStorage.getItem(remembered)); } catch (e) { /* private mode */ }
        picker.addEventListener("change", function () { pick(picker.value); });
    }

    function setStatus(state, text) {
        status.dataset.state = state;
        status.textContent = text;
    }

    function showError(text) {
        error.textContent = text;
        error.hidden = !text;
    }

    // Messages are JSON {sender, to, text}; anything else is shown as plain text.
    function show(raw) {
        var msg;
        try { msg = JSON.parse(raw); } catch (e) { msg = null; }
        if (!msg || typeof msg !== "object") msg = {text: String(raw)};
        var item = document.createElement("li");
        if (me && msg.sender === me) item.className = "mine";
        var meta = document.createElement("div");
        meta.className = "meta";
        var time = new Date().toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
        meta.textContent = (msg.sender || "someone") + (msg.to ? " → " + msg.to : "") + " · " + time;
        var text = document.createElement("div");
        text.className = "text";
        text.textContent = msg.text;
        item.append(meta, text);
        list.append(item);
        list.scrollTop = list.scrollHeight;
        // The last correspondent: who wrote (a person, on Direct), else where it went (a group).
        var other = msg.sender !== me && picker && Array.prototype.some.call(picker.options, function (o) { return o.value === msg.sender; })
            ? msg.sender : msg.to;
        if (!form.elements.text.value) pick(other);
    }

    // For the pages whose messages the server sends: POST the form's data to the page's view.
    // Rejects with an Error whose .retry says whether sending again may work.
    function post(text, data) {
        return fetch(form.action, {method: "POST", body: data, credentials: "same-origin"})
            .then(function (response) {
                if (response.ok) return;
                return response.json().catch(function () { return {}; }).then(function (body) {
                    var error = new Error(body.error || "sending failed (" + response.status + ")");
                    error.retry = response.status === 503 || response.status === 502;
                    throw error;
                });
            }, function (networkError) {
                var error = new Error("not sent: " + networkError.message);
                error.retry = true;
                throw error;
            });
    }

    function onsend(send) {
        var sending = false;
        form.addEventListener("submit", function (event) {
            event.preventDefault();
            var input = form.elements.text;
            var text = input.value.trim();
            if (!text || sending) return;
            if (picker) pick(picker.value);
            sending = true;
            input.readOnly = true;
            var data = new FormData(form), giveUp = Date.now() + RETRY_FOR, delay = 500;
            function done(message) {
                sending = false;
                input.readOnly = false;
                form.classList.remove("retrying");
                showError(message);
                if (!message) input.value = "";
                input.focus();
            }
            function attempt() {
                Promise.resolve(send(text, data)).then(function () { done(""); }, function (e) {
                    if (!e.retry || Date.now() > giveUp) {
                        done(e.retry ? "not sent: the server cannot publish right now; try again later" : e.message);
                        return;
                    }
                    form.classList.add("retrying");
                    showError("not sent, retrying…");
                    setTimeout(attempt, delay);
                    delay = Math.min(delay * 2, 4000);
                });
            }
            attempt();
        });
    }

    return {
        me: me,
        show: show,
        post: post,
        onsend: onsend,
        connecting: function () { if (status.dataset.state !== "reconnecting") setStatus("connecting", "connecting…"); },
        connected: function () { setStatus("online", "online"); },
        disconnected: function (evt, retry_ms) {
            if (retry_ms === null) setStatus("offline", "offline");
            else setStatus("reconnecting", "reconnecting…");
        },
        // Stays up once shown: a later good recovery does not bring the lost messages back.
        recovered: function (result) { if (!result.recovered) notice.hidden = false; }
    };
}
