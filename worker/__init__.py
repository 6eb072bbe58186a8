"""What runs on an instance: the worker that turns queued XML requests into XML responses."""
