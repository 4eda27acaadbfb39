#!/usr/bin/env python3
"""Writes the JSON corpus of the compression benchmarks: benches/corpus/json-{200,1024,16384}.json.

Each file is one message of the kind pub/sub servers carry: a market-data tick (200 B), a chat
event with user and metadata (1 KiB), and a feed page of such events (16 KiB). Deterministic (a
fixed seed), so every run and every peer sees the same bytes:

    python3 benches/json_corpus.py            # writes the three files
"""
import json
import os
import random

SIZES = [200, 1024, 16384]
WORDS = ("the market opened higher as traders weighed new data on inflation and jobs while "
         "chat users asked about the release schedule and shared links to the changelog").split()


def tick(rng, i):
    return {"type": "tick", "symbol": rng.choice(["BTC-USD", "ETH-USD", "AAPL", "MSFT", "EURUSD"]),
            "seq": 1_000_000 + i, "bid": round(rng.uniform(90, 110), 2),
            "ask": round(rng.uniform(90, 110), 2), "ts": 1_733_300_000_000 + i * 17}


def chat(rng, i):
    return {"type": "message", "id": f"msg_{rng.getrandbits(48):012x}", "room": "lobby",
            "user": {"id": 10_000 + rng.randrange(5000), "name": f"user{rng.randrange(5000)}",
                     "avatar": f"https://cdn.example.com/a/{rng.getrandbits(32):08x}.png"},
            "text": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(8, 30))),
            "reactions": {"+1": rng.randrange(20), "heart": rng.randrange(5)},
            "ts": 1_733_300_000_000 + i * 1000}


def message(size, rng):
    """One JSON message of exactly `size` bytes (padded in a trailing field)."""
    if size <= 256:
        body = tick(rng, 0)
    elif size <= 2048:
        body = chat(rng, 0)
        body["thread"] = [chat(rng, j)["text"] for j in range(3)]
    else:
        body = {"type": "page", "items": [], "next": None}
        i = 0
        while len(json.dumps(body)) < size - 600:
            body["items"].append(chat(rng, i))
            i += 1
    body["pad"] = ""
    text = json.dumps(body, separators=(",", ":"))
    if len(text) > size:
        raise SystemExit(f"corpus message over {size} bytes: {len(text)}")
    body["pad"] = "x" * (size - len(text))
    text = json.dumps(body, separators=(",", ":"))
    assert len(text) == size
    return text


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for size in SIZES:
        with open(os.path.join(out, f"json-{size}.json"), "w") as f:
            f.write(message(size, random.Random(size)))


if __name__ == "__main__":
    main()
