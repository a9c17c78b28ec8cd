"""Multi-worker algorithms: what crosses the wire between workers."""
