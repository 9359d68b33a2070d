"""Zero-Latency: local, private, semantic search for a workspace's documents."""

__version__ = "0.1.0"
