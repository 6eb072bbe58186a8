"""`lab dashboard` against a lab of its own: the JSON API endpoint by endpoint, the token and
bind rules, and the page in a real headless Chromium (rows, chart, activity, redrive)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import Running, chromium, running_lab, start_dashboard, stop
from selenium.webdriver.common.by import By
from support import wait_until

from lab.chaos.report import Check, ScenarioReport, Tally
from lab.cli.chaos import keep
from lab.client.submit import Auth, JobSpec, build_xml
from lab.runtime.resources import LabEnv, clients_for
from lab.runtime.stack import CALLBACK_AUTH

pytestmark = pytest.mark.integration

INPUT = "s3://fleetlab-local/examples/clip.fakevideo"
TOKEN = "a-long-enough-test-token-0123456789"
ARTIFACTS = Path(__file__).resolve().parents[2] / ".lab" / "test-artifacts"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running_lab(tmp_path_factory.mktemp("dashboard")) as found:
        yield found


def lab_env(running: Running) -> LabEnv:
    return LabEnv.load(running.home)


def request_xml(env: LabEnv, request_id: str) -> bytes:
    """An analyze request answered by callback to the lab's receiver."""
    user, password = CALLBACK_AUTH.split(":")
    spec = JobSpec(
        service="analyze", input_url=INPUT, params=[("R", "-100")], response="callback",
        callback_url=f"{env.receiver_url}/callback", callback_auth=Auth(user, password),
        request_id=request_id,
    )  # fmt: skip
    return build_xml(spec)


def send(running: Running, queue: str, prefix: str) -> tuple[str, str]:
    """Send a fresh request to ``queue`` (request_queue_url or dead_letter_queue_url): its
    request id and SQS message id."""
    env = lab_env(running)
    request_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    reply = clients_for(env).sqs.send_message(
        QueueUrl=getattr(env, queue), MessageBody=request_xml(env, request_id).decode()
    )
    return request_id, reply["MessageId"]


def answered(running: Running, request_id: str) -> bool:
    status, journal = running.get("/api/journal")
    assert status == 200
    return any(request_id in e["body"] for e in journal["entries"])


# ------------------------------------------------------------------------------------------ API


def test_every_get_endpoint_answers(running: Running) -> None:
    expected = {
        "/api/overview": {"env", "queues", "scaler", "read_only", "error", "now"},
        "/api/queues/history": {"points"},
        "/api/instances": {"instances", "workers"},
        "/api/scaler": {"state", "decisions"},
        "/api/activity?limit=5": {"lines", "filters"},
        "/api/story?id=nothing-like-it": {"lines", "callbacks", "dead_letters", "message_ids"},
        "/api/dlq": {"messages"},
        "/api/journal": {"entries"},
        "/api/reports": {"chaos", "plots", "folder"},
    }
    for path, keys in expected.items():
        status, body = running.get(path)
        assert status == 200, (path, body)
        assert keys <= set(body), (path, body)
    overview = running.get("/api/overview")[1]
    assert overview["env"] == lab_env(running).env
    assert set(overview["queues"]) == {"request", "response", "dead_letter"}
    assert running.get("/api/queues/history")[1]["points"], "the history samples from the start"
    status, page = running.get("/")
    assert status == 200 and b'<canvas id="queue-chart"' in page


def test_reports_are_listed_and_served(running: Running) -> None:
    folder = running.home / "reports"
    folder.mkdir(exist_ok=True)
    plot = running.lab(
        "plan", "--days", "1", "--jobs-per-day", "500", "--plot", str(folder / "plan.png")
    )
    assert plot.returncode == 0, plot.stderr
    report = ScenarioReport("poison", Tally(6, 6, 0, 1, 0), [Check("nothing lost", True)],
                            [(0.5, "sent 6"), (9.0, "DLQ")], 12.0)  # fmt: skip
    keep(running.home, {"env": "local", "seed": 7, "scenarios": [report.as_dict()]})
    listed = running.get("/api/reports")[1]
    assert listed["plots"] == ["plan.png"]
    assert [s["name"] for s in listed["chaos"][0]["scenarios"]] == ["poison"]
    status, png = running.get("/reports/plan.png")
    assert status == 200 and png.startswith(b"\x89PNG")


def test_instances_endpoint_matches_lab_status(running: Running) -> None:
    status = json.loads(running.lab("status", "--json").stdout)
    api = running.get("/api/instances")[1]
    assert [i["id"] for i in api["instances"]] == [i["id"] for i in status["instances"]]
    assert [i["ec2_state"] for i in api["instances"]] == [
        i["ec2_state"] for i in status["instances"]
    ]


def test_bad_requests_get_clear_errors(running: Running) -> None:
    assert running.get("/api/activity?limit=lots")[0] == 400
    assert running.get("/api/activity?limit=0")[0] == 400
    assert running.get("/api/story?id=" + "x" * 200)[0] == 400
    assert running.get("/api/story?id=a%20b")[0] == 400
    assert running.get("/api/nope")[0] == 404
    assert running.get("/reports/../env.json")[0] in (400, 404)
    assert running.get("/reports/missing.png")[0] == 400
    status, body = running.post("/api/dlq/redrive", b'{"message_id": "m-1"}')
    assert status == 400 and "confirm" in body["error"]
    status, body = running.post("/api/dlq/redrive", b'{"confirm": true, "message_id": "none"}')
    assert status == 409 and body["code"] == "NOT_IN_DLQ"
    assert running.post("/api/dlq/redrive", b"message_id=m-1", kind="text/plain")[0] == 415
    assert running.post("/api/dlq/redrive", b"{not json")[0] == 400
    assert running.post("/api/dlq/redrive", b"[1, 2]")[0] == 400
    assert running.post("/api/other", b"{}")[0] == 404
    assert running.get("/api/overview", {"Host": "rebound.example:80"})[0] == 403
    # and it keeps serving
    assert running.get("/api/overview")[0] == 200


def test_activity_filters_and_story(running: Running) -> None:
    request_id, message_id = send(running, "request_queue_url", "api")
    wait_until(lambda: answered(running, request_id), 90, f"a callback for {request_id}", 0.5)

    def lines() -> list[dict[str, Any]]:
        body = running.get(f"/api/activity?request_id={request_id}&limit=100")[1]
        return list(body["lines"])

    found = wait_until(lambda: [x for x in lines() if x["event"] == "delivered"], 60, "delivered")
    assert all(x["request_id"] == request_id for x in lines())
    worker = found[0]["worker"]
    only = running.get(f"/api/activity?worker={worker}&event=delivered")[1]["lines"]
    assert only and all(x["worker"] == worker and x["event"] == "delivered" for x in only)
    story = running.get(f"/api/story?id={request_id}")[1]
    assert message_id in story["message_ids"]
    events = [x["event"] for x in story["lines"]]
    assert "delivered" in events and events.index("received") < events.index("delivered")
    assert story["callbacks"] and story["callbacks"][0]["message_id"] == message_id


def test_dlq_endpoint_and_cli_share_the_logic(running: Running) -> None:
    request_id, dead = send(running, "dead_letter_queue_url", "cli")
    listed = running.get("/api/dlq")[1]["messages"]
    assert dead in [m["message_id"] for m in listed]
    mine = next(m for m in listed if m["message_id"] == dead)
    assert mine["request_id"] == request_id and mine["receive_count"] >= 1
    cli = json.loads(running.lab("dlq", "list", "--json").stdout)
    assert dead in [m["message_id"] for m in cli]
    shown = running.lab("dlq", "show", dead)
    assert shown.returncode == 0 and request_id in shown.stdout
    missing = running.lab("dlq", "show", "no-such-message")
    assert missing.returncode == 1 and "not in the dead-letter queue" in missing.stderr
    assert running.lab("dlq", "redrive").returncode == 2
    moved = running.lab("dlq", "redrive", dead, "--json")
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["moved"] == [dead]
    wait_until(lambda: answered(running, request_id), 90, f"a callback for {request_id}", 0.5)
    assert dead not in [m["message_id"] for m in running.get("/api/dlq")[1]["messages"]]


def test_a_poisoned_request_shows_its_logged_reason(running: Running) -> None:
    env = lab_env(running)
    clients = clients_for(env)
    key = f"inputs/poison-{uuid.uuid4().hex[:8]}.fakevideo"
    clients.s3.put_object(Bucket=env.bucket, Key=key, Body=b"FAKEVIDEO duration=1 fault=crash\n")
    request_id = f"poison-{uuid.uuid4().hex[:8]}"
    spec = JobSpec("analyze", f"s3://{env.bucket}/{key}", request_id=request_id)
    clients.sqs.send_message(QueueUrl=env.request_queue_url, MessageBody=build_xml(spec).decode())

    def logged() -> list[dict[str, Any]]:
        found = running.get("/api/dlq")[1]["messages"]
        return [m for m in found if m["request_id"] == request_id and m["reason"]]

    letter = wait_until(logged, 150, f"{request_id} in the DLQ with its reason", 1.0)[0]
    assert letter["receive_count"] >= env.max_receive_count
    assert letter["worker"].startswith("i-")
    # From the first look, the worker's answer: its line ships before SQS may move the message
    # (before, a look could catch only the "last-receive" line: "took its last receive and
    # ended before answering", of a worker that had answered).
    assert letter["reason"].startswith("binary was killed by signal"), letter["reason"]
    assert letter["reason"].endswith("answered, and left for the dead-letter queue")
    shown = running.lab("dlq", "show", letter["message_id"])
    assert letter["reason"] in shown.stdout


def test_redrive_all_moves_every_dead_letter_back(running: Running) -> None:
    sent = [send(running, "dead_letter_queue_url", "all") for _ in range(2)]
    moved = running.lab("dlq", "redrive", "--all", "--json")
    assert moved.returncode == 0, moved.stderr
    done = json.loads(moved.stdout)
    if lab_env(running).env == "localstack":  # LocalStack has SQS's own move task; moto has not
        assert done["method"] == "StartMessageMoveTask" and done["task_handle"]
    else:
        assert done["method"] == "lab-move" and set(done["moved"]) >= {m for _, m in sent}
    for request_id, _ in sent:
        wait_until(lambda r=request_id: answered(running, r), 120, f"a callback for {request_id}")


# ------------------------------------------------------------------------------ token and bind


def test_token_is_checked_on_every_request(running: Running, tmp_path: Path) -> None:
    proc, port = start_dashboard(running.env, tmp_path / "token.log", "--token", TOKEN)
    url = f"http://127.0.0.1:{port}"
    guarded = Running(running.home, running.env, url, proc)
    try:
        for path in ("/", "/static/app.js", "/api/overview", "/api/dlq"):
            assert guarded.get(path)[0] == 401, path
            assert guarded.get(path, {"Authorization": "Bearer wrong-token-0123456789"})[0] == 401
        assert guarded.get("/api/overview", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert guarded.get("/api/overview", {"Cookie": f"fleetlab_token={TOKEN}"})[0] == 200
        assert guarded.post("/api/dlq/redrive", b'{"all": true, "confirm": true}')[0] == 401
        assert guarded.get(f"/?token={TOKEN}")[0] == 200
    finally:
        stop(proc)


def test_binding_beyond_loopback_needs_a_token(running: Running) -> None:
    refused = running.lab("dashboard", "--host", "0.0.0.0", "--port", "0", timeout=30)
    assert refused.returncode == 1
    assert "needs a token" in refused.stderr
    short = running.lab("dashboard", "--host", "0.0.0.0", "--token", "short", timeout=30)
    assert short.returncode == 1 and "16 characters" in short.stderr


# ---------------------------------------------------------------------------------- the browser


def test_page_in_a_real_browser(running: Running, tmp_path: Path) -> None:
    browser = chromium(tmp_path / "chromium-profile")
    try:
        browser.get(running.url + "/")
        assert browser.title == "fleetlab dashboard"

        status = json.loads(running.lab("status", "--json").stdout)
        wanted = sorted(i["id"] for i in status["instances"])

        def rows() -> list[str]:
            found = browser.find_elements(By.CSS_SELECTOR, "#instances tr[data-instance-id]")
            return sorted(r.get_attribute("data-instance-id") for r in found)

        wait_until(lambda: rows() == wanted, 30, f"instance rows {wanted}", 0.3)

        chart = browser.find_element(By.ID, "queue-chart")
        wait_until(lambda: int(chart.get_attribute("data-points") or 0) > 0, 30, "chart points")
        assert chart.size["height"] > 100

        request_id, _ = send(running, "request_queue_url", "page")
        selector = f'#activity tr[data-request-id="{request_id}"]'
        wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, selector), 90, "activity row")
        browser.find_element(By.CSS_SELECTOR, f'{selector} a[title="{request_id}"]').click()
        steps = "#story ol.timeline li"
        wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, steps), 30, "the story")
        assert request_id in browser.find_element(By.ID, "story").text

        dead_id, dead = send(running, "dead_letter_queue_url", "dead")
        button = f'button[data-redrive="{dead}"]'
        wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, button), 30, "the DLQ row")
        browser.find_element(By.CSS_SELECTOR, button).click()
        confirm = browser.find_element(By.ID, "confirm-yes")
        wait_until(confirm.is_displayed, 10, "the confirmation")
        assert dead in browser.find_element(By.ID, "confirm-text").text
        confirm.click()
        result = browser.find_element(By.ID, "redrive-result")
        wait_until(lambda: "redriven" in result.text, 30, "the redrive's result")
        wait_until(lambda: answered(running, dead_id), 90, f"a callback for {dead_id}", 0.5)
        journal = "#journal tr[data-message-id]"
        wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, journal)) >= 2, 30, "journal")

        # Kept beside the repo's lab state (.lab/ is ignored by git), where pytest's rotation of
        # its temporary folders does not remove it; CI can upload it from there.
        shot = ARTIFACTS / f"dashboard-{lab_env(running).env}.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(shot))
        print(f"\ndashboard screenshot: {shot}")
        assert shot.stat().st_size > 10_000
    finally:
        browser.quit()
