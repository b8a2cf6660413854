"""The contract shared with the edge: messages, split messages, model manifest, delta and feature codecs, YOLO labels.

``durable_file`` lives here because it is a contract too: the endpoint's model slot and spool and the edge's
state and local store all write files the same crash-safe way, and the edge may import only ``wire`` and ``model``.
"""
