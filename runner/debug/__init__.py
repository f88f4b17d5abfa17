"""The extension debug stream: in-process rings and subscriptions (stream.py), Redis Streams (publisher.py)."""
