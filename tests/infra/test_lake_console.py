"""The lake console (SeaweedFS's admin UI) in headless Chromium, used as a person would.

Real bars land in a private bucket on the shared stack through the project's
own commands (`stocklake up`, `produce historical --source csv`, `land
historical --until-idle`); then the browser logs in with the generated
password, is refused with a wrong one, finds the bucket's size, walks
raw/historical/year=2020/month=12/day=01/ and previews and downloads a landed
object. Playwright drives Debian's /usr/bin/chromium (infra/system_deps.sh):
nothing is downloaded. Screenshots go to the test's tmp folder (its path is
printed; run with -s to see it).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.s3_server import S3Server, console_login, s3_client
from stocklake.settings import Settings
from tests.browser import chromium
from tests.private_stack import cli

pytestmark = pytest.mark.services

SYMBOLS = ("AAPL", "AMZN", "GOOGL")
# 2020-11-02 .. 2020-12-31: 42 trading days a symbol, in two month= partitions.
START, END, DAYS = "2020-11-01", "2021-01-01", 42
DAY = "raw/historical/year=2020/month=12/day=01/"
SIZE_WAIT_S = 45


def exact(text: str) -> re.Pattern[str]:
    """A link or cell whose whole text is `text` (day=01 must not match day=011)."""
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def run(env: dict[str, str], *args: str) -> dict:
    result = cli(env, *args)
    assert result.returncode == 0, f"stocklake {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return json.loads(result.stdout) if "--json" in args else {}


@pytest.fixture(scope="module")
def console(stack: Settings) -> Settings:
    """The shared stack's settings, when its S3 is the embedded SeaweedFS (the console's)."""
    if stack.s3_server != "seaweedfs" or not S3Server(stack).has_console:
        pytest.skip("the lake console is the embedded SeaweedFS's (S3_SERVER=seaweedfs)")
    return stack


@pytest.fixture(scope="module")
def landed(console: Settings) -> Iterator[str]:
    """A private bucket holding the bundled real bars, landed by the project's commands."""
    tag = uuid.uuid4().hex[:10]
    bucket = f"console-{tag}"
    env = {
        **os.environ,
        "LAKE_BUCKET": bucket,
        "TOPIC_HISTORICAL": f"console-{tag}.bars",
        "TOPIC_REALTIME": f"console-{tag}.ticks",
    }
    try:
        run(env, "up")  # reuses the running stack; provisions the bucket, zones, topics
        produced = run(
            env, "produce", "historical", "--source", "csv", "--symbols", ",".join(SYMBOLS),
            "--start", START, "--end", END, "--json",
        )  # fmt: skip
        assert produced["records"] == DAYS * len(SYMBOLS) and not produced["failed"], produced
        summary = run(
            env, "land", "historical", "--until-idle", "2", "--group-id", f"console-{tag}",
            "--json",
        )  # fmt: skip
        assert summary["landed"] == DAYS * len(SYMBOLS), summary
        yield bucket
    finally:
        _delete_topics(console, [env["TOPIC_HISTORICAL"], env["TOPIC_REALTIME"]])
        _delete_bucket(console, bucket)


def _delete_topics(settings: Settings, topics: list[str]) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        existing = set(admin.list_topics())
        admin.delete_topics([t for t in topics if t in existing])
    finally:
        admin.close()


def _delete_bucket(settings: Settings, bucket: str) -> None:
    s3 = s3_client(settings, attempts=4)
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        return
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser):
    # Reduced motion: Bootstrap then shows its dialogs without a fade (clean screenshots).
    context = browser.new_context(
        viewport={"width": 1600, "height": 900}, accept_downloads=True, reduced_motion="reduce"
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lake-console-screenshots")
    print(f"\nlake console screenshots: {folder}")
    return folder


def sign_in(page, settings: Settings, user: str, password: str) -> None:
    page.goto(settings.lake_console_url)
    page.wait_for_url("**/login*")  # every page asks for the login first
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def test_console_refuses_a_wrong_password(console: Settings, page, shots: Path):
    user, password = console_login(console)
    sign_in(page, console, user, password + "x")
    page.screenshot(path=shots / "0-wrong-password.png")
    assert "/login" in page.url
    assert page.get_by_text("Invalid credentials").is_visible()
    # Still not signed in: a console page sends the browser back to the login.
    page.goto(f"{console.lake_console_url}/object-store/buckets")
    assert "/login" in page.url
    assert page.locator("#password").is_visible()


def test_console_browses_landed_partitions(console: Settings, landed: str, page, shots: Path):
    bucket = landed
    s3 = s3_client(console)
    objects = s3.list_objects_v2(Bucket=bucket, Prefix=DAY)["Contents"]
    assert objects, f"nothing landed under {DAY}"

    user, password = console_login(console)
    sign_in(page, console, user, password)
    assert page.url.rstrip("/").endswith("/admin"), page.url
    page.get_by_text("Object Store Buckets").first.wait_for()
    page.screenshot(path=shots / "1-dashboard.png", full_page=True)

    # The bucket list, then the file browser from the bucket down through the partitions.
    page.locator("a.nav-link", has_text=exact("Buckets")).click()
    page.wait_for_url("**/object-store/buckets")
    page.locator("tbody a", has_text=exact(bucket)).click()
    page.wait_for_url(re.compile(r"/files\?path=/buckets/"))
    folders = ["raw", "historical", "year=2020", "month=12", "day=01"]
    for folder in folders:
        listed = page.locator("tbody tr", has=page.locator("a", has_text=exact(folder)))
        assert "Directory" in listed.inner_text()
        link = listed.locator("a", has_text=exact(folder))
        if folder == "year=2020":
            page.screenshot(path=shots / "2-raw-historical.png", full_page=True)
        if folder == "month=12":
            assert page.locator("tbody a", has_text=exact("month=11")).is_visible()
        link.click()
        page.wait_for_load_state()
    crumbs = page.locator(".breadcrumb").inner_text()
    assert all(folder in crumbs for folder in folders), crumbs

    # Inside a partition: every landed object, with its size and time.
    for obj in objects:
        name = obj["Key"].rsplit("/", 1)[1]
        cells = page.locator("tbody tr", has=page.get_by_text(name, exact=True)).locator("td")
        assert cells.nth(2).inner_text().strip() == f"{obj['Size']} B"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", cells.nth(4).inner_text().strip())
    page.screenshot(path=shots / "3-partition-day=01.png", full_page=True)

    # Preview of one object: the JSON lines as landed, then its download.
    first = objects[0]
    page.locator(f"button[data-action=view][data-path='/buckets/{bucket}/{first['Key']}']").click()
    viewer = page.locator("#fileViewerModal.show")
    viewer.locator("pre").wait_for()
    page.screenshot(path=shots / "4-preview.png")
    records = [json.loads(line) for line in viewer.locator("pre").inner_text().splitlines()]
    assert records and all(r["ts"].startswith("2020-12-01T") for r in records)
    assert {r["symbol"] for r in records} <= set(SYMBOLS)
    with page.expect_download() as download:
        viewer.locator(".modal-footer").get_by_text("Download", exact=True).click()
    body = s3.get_object(Bucket=bucket, Key=first["Key"])["Body"].read()
    assert Path(download.value.path()).read_bytes() == body
    viewer.locator(".modal-footer").get_by_text("Close", exact=True).click()

    # Back to the buckets, with sizes. The console learns them from the volume
    # servers' heartbeats: a new bucket shows 0 B for 10-20 s after its writes.
    page.locator("a.nav-link", has_text=exact("Buckets")).click()
    deadline = time.monotonic() + SIZE_WAIT_S
    while True:
        page.wait_for_url("**/object-store/buckets")
        row = page.locator("tbody tr", has=page.locator("a", has_text=exact(bucket)))
        # The cell is the logical size, then (once replicas are counted) an overhead line.
        size = row.locator("td").nth(3).inner_text().strip().splitlines()[0].strip()
        if size != "0 B" or time.monotonic() > deadline:
            break
        page.wait_for_timeout(2000)
        page.reload()
    assert re.fullmatch(r"\d+(\.\d+)? (B|KB|MB)", size) and size != "0 B", size
    page.screenshot(path=shots / "5-buckets.png", full_page=True)
