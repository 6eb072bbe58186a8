"""Handling one job: parse and validate the request, run the service's binary, build and deliver
the response. Nothing here decides a message's fate in SQS; it returns an outcome that
``worker.consume`` settles."""
