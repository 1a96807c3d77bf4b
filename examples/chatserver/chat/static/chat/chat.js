/* The page side of the chat example, shared by its three pages: the message
 * list, the connection badge and the form.  The websocket itself is opened by
 * each page's own script, with WS4Redis (ws4redis_mw/ws4redis.js). */
function ChatPage() {
    var list = document.getElementById("messages");
    var status = document.getElementById("status");
    var form = document.getElementById("send");
    var error = document.getElementById("error");
    var me = document.body.dataset.user;

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
    }

    // For the pages whose messages the server sends: POST the form to the page's view.
    function post(text, form) {
        return fetch(form.action, {method: "POST", body: new FormData(form), credentials: "same-origin"})
            .then(function (response) {
                if (response.ok) return;
                return response.json().catch(function () { return {}; }).then(function (body) {
                    throw new Error(body.error || "sending failed (" + response.status + ")");
                });
            });
    }

    function onsend(send) {
        form.addEventListener("submit", function (event) {
            event.preventDefault();
            var input = form.elements.text;
            var text = input.value.trim();
            if (!text) return;
            Promise.resolve(send(text, form)).then(function () {
                showError("");
                input.value = "";
                input.focus();
            }, function (e) { showError(e.message); });
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
        }
    };
}
