"""Entry point of a worker process: ``fleetlab-worker`` (or ``python -m worker``)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from types import FrameType

from worker.aws import Clients
from worker.config import WorkerConfig, load_worker_config
from worker.consume.heartbeat import Beat, Heartbeat
from worker.consume.inbox import Inbox
from worker.consume.loop import Worker
from worker.consume.notice import NoticeWatcher, abandon_if_late, read
from worker.consume.offload import DeleteBodies
from worker.consume.queue import RequestQueue
from worker.errors import FleetlabError
from worker.handle.deliver import Deliverer
from worker.handle.job import JobContext
from worker.handle.pipeline import Pipeline
from worker.handle.request import prepare as prepare_request_schema
from worker.handle.service_file import load_registry
from worker.net.http import SafeHttp
from worker.net.imds import Metadata, MetadataError
from worker.state.activity import ActivityLog, CloudWatchSink, EventName
from worker.state.claims import Claims
from worker.state.status import StatusReporter
from worker.state.store import S3JsonStore


def watch_notices(config: WorkerConfig, worker: Worker) -> NoticeWatcher | None:
    """On an instance, a watcher of its spot notices: an interruption drains the worker (as a
    SIGTERM does) and abandons each running job that would not finish before the reclaim."""
    if config.metadata_url is None:
        return None
    try:
        metadata = Metadata(config.metadata_url)
    except MetadataError as exc:
        worker.log.event("error", status="NO_METADATA", detail=str(exc))
        return None

    def interrupted(at: float) -> None:
        remaining = at - time.time()
        worker.log.event("interruption", detail=f"reclaimed in {remaining:.1f}s")
        now = time.monotonic()  # the inbox's clock
        abandon_if_late(worker.inbox, worker.stats, remaining, now, config.notice_margin_s)
        os.kill(os.getpid(), signal.SIGTERM)  # stop receiving, hand back the rest: the drain

    def rebalance() -> None:
        worker.log.event("rebalance", detail="rebalance recommended: taking no long jobs")
        worker.pipeline.rebalancing.set()

    return NoticeWatcher(lambda: read(metadata), config.notice_poll_s, interrupted, rebalance)


def build(config: WorkerConfig) -> tuple[Worker, StatusReporter, NoticeWatcher | None]:
    """Wire a worker from its configuration."""
    prepare_request_schema()  # on this thread, before any job thread parses a request
    clients = Clients(config.aws, read_timeout_s=config.wait_time_s + 10)
    store = S3JsonStore(clients.s3, config.bucket)
    queue = RequestQueue(
        clients.sqs,
        config.request_queue_url,
        config.response_queue_url,
        on_deleted=DeleteBodies(clients.s3, config.bucket) if config.delete_offloaded else None,
    )
    http = SafeHttp(config.url_policy)
    sink = CloudWatchSink(clients.logs, config.log_group, config.worker_id)
    log = ActivityLog(
        config.worker_id, config.work_dir / "activity.log", sink, flush_s=config.log_flush_s
    )
    inbox = Inbox()
    pipeline = Pipeline(
        config=config,
        claims=Claims(store, config.worker_id),
        deliverer=Deliverer(http, queue, config.retry, config.limits),
        registry=load_registry(config.services_file, config.services_dir),
        job=JobContext(config=config, http=http, s3=clients.s3),
        log=log,
        inbox=inbox,
    )
    beat = Beat(config.heartbeat_interval_s, config.visibility_timeout_s)

    def on_event(event: EventName, message_id: str) -> None:
        log.event(event, message_id=message_id)

    heartbeat = Heartbeat(inbox, queue, beat, on_event=on_event)
    worker = Worker(config, queue, pipeline, inbox, heartbeat, log)
    watcher = watch_notices(config, worker)
    status = StatusReporter(
        store,
        config.worker_id,
        inbox,
        worker.stats,
        clients.counter.snapshot,
        config.status_interval_s,
        config.code_version,
        draining=worker.stop.is_set,
        # Told to drain by the scaler: the same path as a SIGTERM from the instance's shutdown.
        on_drain=lambda: os.kill(os.getpid(), signal.SIGTERM),
        # Under a spot notice: the scaler counts this instance as leaving and replaces it.
        interruption=lambda: watcher.seen.interruption_at if watcher else None,
        slots=worker.servers,
    )
    return worker, status, watcher


def main() -> int:
    """Run one worker until SIGTERM/SIGINT; exit 0 after a clean drain, 2 on bad configuration."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_worker_config()
        config.work_dir.mkdir(parents=True, exist_ok=True)
        worker, status, watcher = build(config)
    except FleetlabError as exc:
        print(f"fleetlab-worker: {exc}", file=sys.stderr)
        return 2

    def drain(signum: int, _frame: FrameType | None) -> None:
        # Draining has begun; a second SIGTERM (group-wide, then forwarded by the supervisor)
        # must not kill the worker on its way out, when Python has reset its handlers.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        worker.stop.set()  # a long poll in flight ends by itself: cut, it could swallow a message

    signal.signal(signal.SIGTERM, drain)
    signal.signal(signal.SIGINT, drain)
    if watcher is not None:
        watcher.check()  # restarted on an instance under notice: receive nothing at all
        watcher.start()
    status.start()
    try:
        worker.run()
    finally:
        if watcher is not None:
            watcher.close()
        # Every line shipped before "stopped" is written: a drained instance is terminated as
        # soon as the scaler reads "stopped", and its local log goes with it.
        worker.log.close()
        status.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
