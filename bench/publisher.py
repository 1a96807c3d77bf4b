"""The publisher of the fan-out scenarios: its own process, so its CPU is nobody's figure.

    python bench/publisher.py '{"redis": URL, "channel": "broadcast:bench", "messages": 1000, "rate": 0}'
    python bench/publisher.py '{"layer": "pubsub", "redis": URL, "group": "bench", "messages": 100, "rate": 10}'

``rate`` 0 is a burst (Redis: pipelines of 100 PUBLISH); otherwise one
message every 1/rate s on a fixed schedule.  With ``layer`` it runs in the
Channels virtualenv and calls ``group_send`` (bench/channels_app is the
consumer).  Prints ``{"published", "start_ms", "end_ms"}``.
"""
import json
import sys
import time

PAD = "x" * 90


def payload(seq: int) -> str:
    return f"{seq} {time.time() * 1000.0:.3f} {PAD}"


def schedule(spec, send, flush=lambda: None):
    messages, rate = spec["messages"], spec.get("rate", 0)
    start = time.time()
    for seq in range(messages):
        if rate:
            delay = start + seq / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        send(payload(seq))
        if not rate and seq % 100 == 99:
            flush()
    flush()
    return start


def redis_publish(spec):
    import redis

    client = redis.Redis.from_url(spec["redis"])
    pipe = client.pipeline(transaction=False)
    if spec.get("rate", 0):
        return schedule(spec, lambda text: client.publish(spec["channel"], text))
    return schedule(spec, lambda text: pipe.publish(spec["channel"], text), pipe.execute)


def channels_publish(spec):
    import asyncio

    from channels.layers import get_channel_layer

    async def run():
        layer = get_channel_layer()
        messages, rate = spec["messages"], spec.get("rate", 0)
        start = time.time()
        for seq in range(messages):
            if rate:
                delay = start + seq / rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await layer.group_send(spec["group"], {"type": "bench.message", "text": payload(seq)})
        return start

    return asyncio.run(run())


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    start = channels_publish(spec) if spec.get("layer") else redis_publish(spec)
    print(json.dumps({"published": spec["messages"], "start_ms": start * 1000.0, "end_ms": time.time() * 1000.0}))
