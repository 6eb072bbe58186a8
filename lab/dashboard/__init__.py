"""`lab dashboard`: a live web page over the fleet, and the JSON API it reads.

- ``api``: what each ``/api/...`` endpoint answers, read through the lab's own readers;
- ``history``: the queue depths and scaler decisions sampled while the dashboard runs;
- ``server``: the HTTP server (stdlib), its token check and its routes;
- ``static/``: the page, its script, its style and its hand-written chart; nothing from a CDN.
"""
