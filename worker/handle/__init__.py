"""Handling one job: validate the request once, claim it, run the service's binary, judge how it
ended, build and deliver the response. Nothing here acts on the message in SQS: the pipeline
returns an ``Outcome`` that decides it, and ``worker.consume`` settles it."""
