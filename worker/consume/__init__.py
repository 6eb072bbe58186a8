"""Consuming the request queue: receive, hold, hand back, settle; the loop and the heartbeat.

Only this package does queue I/O on request messages: the loop receives, its settle step alone
deletes and hands back (``settle.py``), the heartbeat only extends visibility. Nothing here runs
a binary (that is ``worker.handle``, on a job thread)."""
