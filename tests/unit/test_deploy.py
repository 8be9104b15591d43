"""The production files agree with the code."""

from pathlib import Path

from shared.permissions import PERMISSIONS, authorization, markdown_table, permissions_of
from shared.topology import durables_of

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_nats_users_file_is_generated_from_the_permissions_table() -> None:
    text = (DEPLOY / "nats" / "auth.conf").read_text()
    assert text.split("\n", 1)[1] == authorization(), "run `cmcoord nats-auth --out deploy/nats/auth.conf`"
    for identity in ("admin", *PERMISSIONS):
        assert f"$CMCOORD_{identity.upper()}_NATS_PASSWORD" in text  # from the server's environment, not the file
    assert markdown_table() in (DEPLOY / "README.md").read_text(), "paste `cmcoord nats-auth --markdown` into deploy/README.md"


def test_each_service_publishes_only_its_own_events_and_uses_only_its_own_durables() -> None:
    for service in PERMISSIONS:
        p = permissions_of(service)
        events = [s for s in p["publish"] if s.startswith("cmcoord.") and ".svc." not in s
                  and not s.startswith("cmcoord.deadletter.")]
        assert all(s.startswith(f"cmcoord.{service}.") for s in events if s != "cmcoord.notify.notification.requested.v1")
        assert p["deny_publish"] == [f"cmcoord.{service}.replay.>"]  # only the operator replays dead letters
        jetstream = [s for s in p["publish"] if s.startswith("$JS.")]
        assert not any(s in ("$JS.API.>", "$JS.>", "$JS.ACK.>") or ".STREAM.CREATE." in s or ".STREAM.UPDATE." in s
                       or ".STREAM.DELETE." in s for s in jetstream)
        durables = {f"{d.stream}.{d.name}" for d in durables_of(service)}
        pulls = {s.removeprefix("$JS.API.CONSUMER.MSG.NEXT.") for s in jetstream if ".MSG.NEXT." in s}
        assert pulls == durables
        assert [s for s in p["subscribe"] if s.startswith("_INBOX")] == [f"_INBOX.{service}.>"]
    assert "cmcoord.notify.notification.requested.v1" in permissions_of("lessons")["publish"]  # a command to notify


SERVICES = ("roster", "notify", "lessons", "bot")


def test_compose_runs_a_nats_cluster_postgres_and_each_service_with_its_health_and_database() -> None:
    import yaml

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    nats_nodes = [name for name in compose if name.startswith("nats-") and name != "nats-init"]
    assert len(nats_nodes) == 3 and all("healthcheck" in compose[n] for n in nats_nodes)
    cluster = (DEPLOY / "nats" / "cluster.conf").read_text()
    assert "jetstream" in cluster and all(f"nats-route://{n}:6222" in cluster for n in nats_nodes)
    assert 'include "auth.conf"' in cluster
    urls = {}
    for service in SERVICES:
        spec, up = compose[service], service.upper()
        env = spec["environment"]
        assert spec["command"] == [f"services.{service}"] or service == "bot"
        assert "readyz" in " ".join(spec["healthcheck"]["test"])
        assert env["CMCOORD_NATS_URL"].count("nats://") == 3 and env[f"CMCOORD_{up}_NATS_USER"] == service
        urls[service] = env[f"CMCOORD_{up}_DATABASE_URL"]
        assert urls[service].startswith(f"postgresql+asyncpg://{service}:") and urls[service].endswith(f"/{service}")
    assert len(set(urls.values())) == len(SERVICES)  # one database and one login each
    published = [p for spec in compose.values() for p in spec.get("ports", [])]
    assert published == ["127.0.0.1:8110:8110"]  # the calendar feed only, to a local TLS proxy
    assert compose["notify"]["environment"]["CMCOORD_NOTIFY_CALENDAR_PORT"] == "8110"
    init = compose["nats-init"]  # the topology, declared once, before any service starts
    assert init["command"] == ["shared.cli", "nats-init", "--replicas", "3"] and init["restart"] == "no"
    assert init["environment"]["CMCOORD_ADMIN_NATS_USER"] == "admin"
    assert all(compose[s]["depends_on"]["nats-init"] == {"condition": "service_completed_successfully"} for s in SERVICES)
    assert "telegram_bot_token" in compose["bot"]["secrets"] and "TELEGRAM_BOT_TOKEN" not in compose["bot"]["environment"]
    init = (DEPLOY / "postgres" / "init.sh").read_text()
    assert all(service in init.split("for service in ")[1].split(";")[0] for service in SERVICES)


def test_kubernetes_deployments_have_probes_resources_and_a_disruption_budget() -> None:
    import yaml

    for service in SERVICES:
        docs = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / f"{service}.yaml").read_text()) if d]
        kinds = {d["kind"]: d for d in docs}
        assert set(kinds) == {"Deployment", "PodDisruptionBudget"}
        pod = kinds["Deployment"]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["args"] == [f"services.{service}"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"requests", "limits"} <= set(container["resources"])
        env = {e["name"]: e for e in container["env"]}
        assert env[f"CMCOORD_{service.upper()}_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == f"cmcoord-{service}"
        assert env[f"CMCOORD_{service.upper()}_HEALTH_HOST"]["value"] == "0.0.0.0"  # the kubelet probes the pod's IP
        selector = kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]
        assert selector == kinds["Deployment"]["spec"]["selector"]["matchLabels"]
    values = yaml.safe_load((DEPLOY / "k8s" / "nats-values.yaml").read_text())
    assert values["config"]["cluster"]["replicas"] == 3 and values["config"]["jetstream"]["enabled"]
    (job,) = yaml.safe_load_all((DEPLOY / "k8s" / "nats-init.yaml").read_text())
    assert job["kind"] == "Job" and "pre-install" in job["metadata"]["annotations"]["helm.sh/hook"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["shared.cli", "nats-init", "--replicas", "3"]
    assert {e["name"] for e in container["env"]} == {"CMCOORD_ADMIN_NATS_USER", "CMCOORD_ADMIN_NATS_PASSWORD"}


def test_the_image_is_built_in_stages_and_runs_as_a_user() -> None:
    lines = [line.split() for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line and line[0] != "#"]
    assert sum(words[0] == "FROM" for words in lines) >= 2
    user = [words[1] for words in lines if words[0] == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")


def test_the_polling_bot_is_recreated_and_the_webhook_variant_runs_replicas_behind_https() -> None:
    import yaml

    polling = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "k8s" / "bot.yaml").read_text()) if d}
    spec = polling["Deployment"]["spec"]
    # two pollers at once get 409 from Telegram: a rollout stops the old pod before the new one polls
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    assert not any(e["name"] == "CMCOORD_BOT_MODE" and e.get("value") != "polling"
                   for e in spec["template"]["spec"]["containers"][0]["env"])

    webhook = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "k8s" / "webhook" / "bot.yaml").read_text()) if d}
    assert set(webhook) == {"Deployment", "Service", "Ingress", "PodDisruptionBudget"}
    spec = webhook["Deployment"]["spec"]
    assert spec["replicas"] >= 2 and spec["strategy"]["type"] == "RollingUpdate"
    assert webhook["Deployment"]["metadata"]["name"] == polling["Deployment"]["metadata"]["name"]  # one or the other
    (container,) = spec["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["CMCOORD_BOT_MODE"]["value"] == "webhook"
    assert env["CMCOORD_BOT_WEBHOOK_URL"]["value"].startswith("https://")  # Telegram calls HTTPS only
    assert "secretKeyRef" in env["CMCOORD_BOT_WEBHOOK_SECRET"]["valueFrom"]
    assert "secretKeyRef" in env["CMCOORD_BOT_DATABASE_URL"]["valueFrom"]  # one database shared by the replicas
    port = int(env["CMCOORD_BOT_WEBHOOK_PORT"]["value"])
    assert {"name": "webhook", "containerPort": port} in container["ports"]
    assert webhook["Service"]["spec"]["selector"] == spec["selector"]["matchLabels"]
    (rule,) = webhook["Ingress"]["spec"]["rules"]
    assert webhook["Ingress"]["spec"]["tls"] and rule["http"]["paths"][0]["path"] == env["CMCOORD_BOT_WEBHOOK_PATH"]["value"]
    assert env["CMCOORD_BOT_WEBHOOK_URL"]["value"] == f"https://{rule['host']}{rule['http']['paths'][0]['path']}"
