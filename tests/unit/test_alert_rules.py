"""The Prometheus alert rules in deploy/prometheus: `promtool check rules` (they parse, their
expressions too), `promtool check config` (compose's prometheus.yml) and `promtool test rules` (each alert fires on the series it is about, after its
`for:`, and stays quiet while things are well: deploy/prometheus/alerts.test.yaml). Every metric an
alert reads is one the services register.

promtool comes with Debian's `prometheus` package (`make test` installs it when missing, without
starting any server); outside CI a machine without it skips these tests, in CI they fail."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.test_deploy import registered_metric_names

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts.test.yaml"
# what Prometheus itself provides: not registered by the services
BUILTIN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
FUNCTIONS = {"rate", "irate", "increase", "sum", "max", "min", "avg", "by", "without", "on", "ignoring", "absent",
             "max_over_time", "min_over_time", "avg_over_time", "count", "group_left", "group_right", "and", "or",
             "unless", "bool", "clamp_min", "clamp_max", "histogram_quantile", "le", "offset", "topk", "vector",
             "label_replace", "deriv", "delta", "changes", "resets", "time", "timestamp", "count_over_time",
             "sum_over_time", "last_over_time", "absent_over_time", "scalar", "ceil", "floor", "round", "abs"}


def promtool() -> str:
    """The promtool binary: missing fails in CI (never a silent skip there), skips elsewhere."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool missing: `make test` installs Debian's prometheus package (make promtool)")
        pytest.skip("promtool not installed (make promtool installs Debian's prometheus package)")
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label names and values, durations and functions left out)."""
    expr = re.sub(r'"[^"]*"', "", expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # grouping labels
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", expr))
    return {w for w in words if w not in FUNCTIONS and not re.fullmatch(r"\d+[smhdwy]|e\d*", w)}


def alert_rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    tool = promtool()
    checked = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([tool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True,
                            cwd=RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout + tested.stderr
    # compose's Prometheus configuration, with the rule files it loads
    config = subprocess.run([tool, "check", "config", str(RULES.parent / "prometheus.yml")], capture_output=True, text=True)
    assert config.returncode == 0, config.stdout + config.stderr


def test_promtool_rejects_a_broken_rule_and_a_wrong_expectation(tmp_path: Path) -> None:
    """The check above can fail: a rule that does not parse, an expectation the rules do not meet."""
    tool = promtool()
    broken = tmp_path / "broken.yaml"
    broken.write_text(RULES.read_text().replace("cmcoord_consumer_pending", "cmcoord_consumer_pending{", 1))
    assert subprocess.run([tool, "check", "rules", str(broken)], capture_output=True).returncode != 0
    wrong = tmp_path / "wrong.test.yaml"
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tests["rule_files"] = [str(RULES)]
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            check["exp_alerts"] = [] if check.get("exp_alerts") else [{"exp_labels": {"severity": "page"}}]
    wrong.write_text(yaml.safe_dump(tests))
    assert subprocess.run([tool, "test", "rules", str(wrong)], capture_output=True).returncode != 0


def test_every_failure_mode_has_an_alert_each_tested_and_documented() -> None:
    rules = alert_rules()
    names = {str(rule["alert"]) for rule in rules}
    assert {"CmcoordServiceDown", "CmcoordConsumerLag", "CmcoordDeadLetters", "CmcoordDueStepLag",
            "CmcoordDeliveryFailures"} <= names
    tested = {str(check["alertname"]) for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for check in case.get("alert_rule_test", [])}
    assert names <= tested, f"alerts without a promtool test: {sorted(names - tested)}"
    readme = (DEPLOY / "README.md").read_text()
    for rule in rules:
        assert rule["alert"] in readme, f"{rule['alert']} not explained in deploy/README.md"
        annotations = rule.get("annotations")
        assert isinstance(annotations, dict) and annotations.get("summary") and annotations.get("action")
        labels = rule.get("labels")
        assert isinstance(labels, dict) and labels.get("severity") in {"page", "ticket"}


def test_alerts_read_only_metrics_the_services_register() -> None:
    known = registered_metric_names() | BUILTIN
    for rule in alert_rules():
        unknown = metric_names(str(rule["expr"])) - known
        assert not unknown, f"{rule['alert']} reads metrics no service registers: {sorted(unknown)}"
    assert metric_names('sum by (consumer) (rate(cmcoord_nope_total{consumer="x"}[5m])) > 0') == {"cmcoord_nope_total"}


async def test_notify_measures_the_due_step_lag_the_alert_reads(tmp_path: Path) -> None:
    """cmcoord_due_step_lag_seconds and cmcoord_due_steps_waiting, read from the store at each scrape:
    the steps due now and not done (the loop is not running here), the oldest one's wait."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from prometheus_client.parser import text_string_to_metric_families

    from services.notify.jobs.due import DueWork
    from services.notify.models import NOTIFY_TABLES, Notification
    from shared.clock import ManualClock
    from shared.metrics import ServiceMetrics
    from shared.store import Database

    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    db, metrics = Database(f"sqlite+aiosqlite:///{tmp_path / 'notify.db'}"), ServiceMetrics("notify")
    await db.create_tables(NOTIFY_TABLES)
    DueWork(db=db, clock=ManualClock(now), roster=None, metrics=metrics)  # type: ignore[arg-type]  # not asked here

    async def figures() -> tuple[float, float]:
        body, _ = await metrics.render()
        samples = {s.name: s.value for f in text_string_to_metric_families(body.decode()) for s in f.samples}
        return samples["cmcoord_due_steps_waiting"], samples["cmcoord_due_step_lag_seconds"]

    try:
        assert await figures() == (0, 0)
        async with db.write() as session:
            for minutes in (-10, -2, 60):  # two due (10 and 2 minutes ago), one later
                session.add(Notification(id=uuid.uuid4(), kind="alert", subject=f"s{minutes}", occurrence="",
                                         person_id=uuid.uuid4(), text="t", created_at=now - timedelta(hours=1),
                                         due_at=now + timedelta(minutes=minutes), due_action="renotify"))
        assert await figures() == (2, 600)
    finally:
        await db.dispose()
