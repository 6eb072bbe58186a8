"""Consuming the request queue: receive, hold, settle; the loop and the heartbeat beside it.

Only this package does queue I/O on request messages: the loop receives and settles, the
heartbeat extends visibility. Nothing here runs a binary (that is ``worker.handle``)."""
