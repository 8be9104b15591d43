"""The production files agree with the code."""

import json
import re
from pathlib import Path
from typing import Any

from shared.permissions import PERMISSIONS, authorization, commands_of, markdown_table, permissions_of
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
        # the commands it sends to another service, and nothing else of another's
        assert all(s.startswith(f"cmcoord.{service}.") for s in events if s not in commands_of(service))
        assert set(commands_of(service)) <= {"cmcoord.notify.notification.requested.v1",
                                             "cmcoord.notify.notification.settled.v1"}
        assert p["deny_publish"] == [f"cmcoord.{service}.replay.>"]  # only the operator replays dead letters
        jetstream = [s for s in p["publish"] if s.startswith("$JS.")]
        assert not any(s in ("$JS.API.>", "$JS.>", "$JS.ACK.>") or ".STREAM.CREATE." in s or ".STREAM.UPDATE." in s
                       or ".STREAM.DELETE." in s for s in jetstream)
        durables = {f"{d.stream}.{d.name}" for d in durables_of(service)}
        pulls = {s.removeprefix("$JS.API.CONSUMER.MSG.NEXT.") for s in jetstream if ".MSG.NEXT." in s}
        assert pulls == durables
        assert [s for s in p["subscribe"] if s.startswith("_INBOX")] == [f"_INBOX.{service}.>"]
    assert "cmcoord.notify.notification.requested.v1" in permissions_of("lessons")["publish"]  # a command to notify
    assert "cmcoord.notify.notification.settled.v1" in permissions_of("hns4d")["publish"]
    assert "cmcoord.notify.notification.settled.v1" not in permissions_of("lessons")["publish"]


SERVICES = ("roster", "notify", "lessons", "hns4d", "bot")


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
    # the calendar feed, to a local TLS proxy; Grafana for the operators on this host (or an SSH tunnel)
    assert published == ["127.0.0.1:8110:8110", "127.0.0.1:3000:3000"]
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
        assert set(kinds) == {"Deployment", "PodDisruptionBudget", "Service"}
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
        # the health port inside the cluster, where the ServiceMonitor scrapes /metrics
        service = kinds["Service"]
        assert service["spec"]["selector"] == selector and service["spec"].get("type", "ClusterIP") == "ClusterIP"
        (port,) = service["spec"]["ports"]
        (health,) = [p for p in container["ports"] if p["name"] == "health"]
        assert port == {"name": "health", "port": health["containerPort"], "targetPort": "health"}
        assert int(env[f"CMCOORD_{service['metadata']['labels']['app.kubernetes.io/component'].upper()}_HEALTH_PORT"]
                   ["value"]) == health["containerPort"]
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
    services = {d["metadata"]["name"]: d for d in yaml.safe_load_all((DEPLOY / "k8s" / "webhook" / "bot.yaml").read_text())
                if d and d["kind"] == "Service"}
    assert services["cmcoord-bot"] == polling["Service"]  # its health port scraped for /metrics in either mode
    (rule,) = webhook["Ingress"]["spec"]["rules"]
    assert webhook["Ingress"]["spec"]["tls"] and rule["http"]["paths"][0]["path"] == env["CMCOORD_BOT_WEBHOOK_PATH"]["value"]
    assert env["CMCOORD_BOT_WEBHOOK_URL"]["value"] == f"https://{rule['host']}{rule['http']['paths'][0]['path']}"


# --- what operators see: metrics, alerts, the dashboard, the manifests' validity and pod security ---

METRIC_CALL = re.compile(r"\.(gauge|counter|histogram)\(\s*\"([a-z0-9_]+)\"")
SUFFIXES = {"gauge": ("",), "counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}


def registered_metric_names() -> set[str]:
    """Every sample name the services can serve at /metrics: what ServiceMetrics registers for each service
    (consumers, process, build_info), and the figures the services declare through it (read from their code)."""
    from shared.metrics import PREFIX, ServiceMetrics

    names: set[str] = set()
    for family in ServiceMetrics("probe").registry.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    root = DEPLOY.parent
    for path in [*root.glob("services/**/*.py"), *root.glob("shared/**/*.py")]:
        for kind, name in METRIC_CALL.findall(path.read_text()):
            names.update(f"{PREFIX}_{name}{suffix}" for suffix in SUFFIXES[kind])
    return names


def test_every_service_serves_process_figures_and_its_build() -> None:
    import asyncio

    from prometheus_client.parser import text_string_to_metric_families

    from shared.metrics import ServiceMetrics, package_version

    body, _ = asyncio.run(ServiceMetrics("lessons").render())
    samples = {s.name: s for f in text_string_to_metric_families(body.decode()) for s in f.samples}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
            "process_start_time_seconds", "python_info"} <= set(samples)
    build = samples["cmcoord_build_info"]
    assert build.value == 1 and build.labels["service"] == "lessons" and build.labels["version"] == package_version()
    assert package_version() != "unknown" and re.fullmatch(r"3\.\d+\.\d+.*", build.labels["python"])
    names = registered_metric_names()
    assert {"cmcoord_notifications", "cmcoord_due_step_lag_seconds", "cmcoord_delivery_seconds_count",
            "cmcoord_aars_overdue", "cmcoord_events_dead_lettered_total", "cmcoord_consumer_pending"} <= names


GRAFANA = DEPLOY / "grafana"


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / "dashboards" / "cmcoord.json").read_text())
    return data


def keys_lost(original: Any, decoded: Any, path: str = "$") -> list[str]:
    """Where `decoded` (the dashboard read by Grafana's schema types and written back) lost or changed
    something of `original`: a key the schema does not know, a value it reads otherwise."""
    if isinstance(original, dict):
        if not isinstance(decoded, dict):
            return [path]
        return [lost for key, value in original.items()
                for lost in ([f"{path}.{key}"] if key not in decoded else keys_lost(value, decoded[key], f"{path}.{key}"))]
    if isinstance(original, list):
        if not isinstance(decoded, list) or len(decoded) != len(original):
            return [path]
        return [lost for i, (a, b) in enumerate(zip(original, decoded, strict=True)) for lost in keys_lost(a, b, f"{path}[{i}]")]
    return [] if original == decoded else [f"{path}: {original!r} read as {decoded!r}"]


def schema_problems(data: dict[str, Any]) -> list[str]:
    """The dashboard against Grafana's dashboard schema, as grafana-foundation-sdk (generated from Grafana's
    schemas) reads it: the dashboard, each panel, its options and field config for its panel type and each
    Prometheus query decode into their types, and nothing is lost on the way back to JSON."""
    from grafana_foundation_sdk.cog import runtime
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models import prometheus
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()
    try:
        decoded = Dashboard.from_json(data)
    except (TypeError, KeyError, AttributeError, ValueError) as err:
        return [f"does not decode: {type(err).__name__}: {err}"]
    problems = keys_lost(data, json.loads(json.dumps(decoded, cls=JSONEncoder)))
    for i, panel in enumerate(decoded.panels or []):
        if runtime.panelcfg_config(getattr(panel, "type_val", "") or "") is None:
            problems.append(f"panels[{i}]: no panel type {getattr(panel, 'type_val', None)!r} in Grafana")
        for target in getattr(panel, "targets", None) or []:
            if not isinstance(target, prometheus.Dataquery):
                problems.append(f"panels[{i}]: a query that is not Prometheus's")
    return problems


def panel_exprs(data: dict[str, Any]) -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in data["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_has_every_panel_operators_need_and_fits_grafanas_schema() -> None:
    data = dashboard()
    assert schema_problems(data) == []
    titles = {panel["title"] for panel in data["panels"]}
    assert {"Delivery rate against Telegram's ceiling", "CPU per delivered message", "Consumer lag", "Due-step lag",
            "Notifications by state", "Acknowledgements", "Dead letters", "AARs overdue"} <= titles
    exprs = dict(panel_exprs(data))
    assert "vector(30)" in [e for t, e in panel_exprs(data) if t == "Delivery rate against Telegram's ceiling"]
    assert "process_cpu_seconds_total" in exprs["CPU per delivered message"]
    assert len({panel["id"] for panel in data["panels"]}) == len(data["panels"])  # Grafana keys panels by id
    uids = {panel["datasource"]["uid"] for panel in data["panels"]}
    provisioned = yaml_file(GRAFANA / "provisioning" / "datasources" / "prometheus.yaml")["datasources"]
    assert uids == {provisioned[0]["uid"]} and provisioned[0]["type"] == "prometheus"


def test_the_schema_check_rejects_a_dashboard_grafana_would_not_read() -> None:
    misspelled = dashboard()
    misspelled["panels"][1]["gridpos"] = misspelled["panels"][1].pop("gridPos")
    assert any("gridpos" in p for p in schema_problems(misspelled))
    wrong_type = dashboard()
    wrong_type["panels"][2]["type"] = "no-such-panel"
    assert any("no-such-panel" in p for p in schema_problems(wrong_type))
    wrong_query = dashboard()
    wrong_query["panels"][3]["targets"][0]["expression"] = wrong_query["panels"][3]["targets"][0].pop("expr")
    assert schema_problems(wrong_query)
    not_a_dashboard = dashboard()
    not_a_dashboard["time"] = 6
    assert schema_problems(not_a_dashboard)


def test_every_panel_reads_metrics_the_services_register_and_parses_in_promtool(tmp_path: Path) -> None:
    import subprocess

    from tests.unit.test_alert_rules import BUILTIN, metric_names, promtool

    known = registered_metric_names() | BUILTIN
    for title, expr in panel_exprs(dashboard()):
        assert metric_names(expr) or expr == "vector(30)", f"{title}: {expr} reads no metric"  # the ceiling's line
        assert not metric_names(expr) - known, f"{title}: {expr} reads {sorted(metric_names(expr) - known)}"
    # each expression as a recording rule: `promtool check rules` parses the PromQL
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"cmcoord:panel_{i}", "expr": expr}
                                                          for i, (_, expr) in enumerate(panel_exprs(dashboard()))]}]}
    path = tmp_path / "panels.yaml"
    path.write_text(json.dumps(rules))
    checked = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def yaml_file(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text())


def test_compose_runs_prometheus_with_the_alerts_and_grafana_with_the_dashboard() -> None:
    import yaml

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    prometheus, grafana = compose["prometheus"], compose["grafana"]
    assert "./prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml_file(DEPLOY / "prometheus" / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yaml"]  # beside it, in the same mount
    (job,) = config["scrape_configs"]
    targets = {c["labels"]["service"]: c["targets"] for c in job["static_configs"]}
    assert job["job_name"] == "cmcoord" and set(targets) == set(SERVICES)
    for service in SERVICES:  # each service's health port, as compose configures it
        port = compose[service]["environment"][f"CMCOORD_{service.upper()}_HEALTH_PORT"]
        assert targets[service] == [f"{service}:{port}"]
    volumes = set(grafana["volumes"])
    assert {"./grafana/provisioning:/etc/grafana/provisioning:ro", "./grafana/dashboards:/var/lib/grafana/dashboards:ro"} <= volumes
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${")  # from the operator's .env
    providers = yaml_file(GRAFANA / "provisioning" / "dashboards" / "cmcoord.yaml")["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards" and providers[0]["type"] == "file"
    datasource = yaml_file(GRAFANA / "provisioning" / "datasources" / "prometheus.yaml")["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"


def k8s_documents() -> list[tuple[Path, dict[str, Any]]]:
    import yaml

    paths = sorted((DEPLOY / "k8s").rglob("*.yaml"))
    return [(path, doc) for path in paths if path.name != "nats-values.yaml"  # Helm values, not a manifest
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_every_manifest_is_valid_kubernetes() -> None:
    import kubernetes_validate

    documents = k8s_documents()
    assert {doc["kind"] for _, doc in documents} >= {"Deployment", "Service", "PodDisruptionBudget", "Job",
                                                     "ConfigMap", "Ingress", "ServiceMonitor"}
    for path, doc in documents:
        if doc["apiVersion"] == "monitoring.coreos.com/v1":
            continue  # a custom resource: checked below
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    broken = next(doc for _, doc in documents if doc["kind"] == "Deployment")
    broken = json.loads(json.dumps(broken))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["seccompprofile"] = {"type": "RuntimeDefault"}
    try:
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError:
        pass
    else:
        raise AssertionError("a misspelled field passed validation")


def test_the_service_monitor_scrapes_each_services_health_port() -> None:
    """No schema of the ServiceMonitor custom resource to be had from the Python registry (the npm one ships it
    compiled to JavaScript): its fields as prometheus-operator's monitoring.coreos.com/v1 documents them."""
    documents = k8s_documents()
    (monitor,) = [doc for _, doc in documents if doc["kind"] == "ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["metadata"]["name"]
    spec = monitor["spec"]
    assert set(spec) <= {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels",
                         "sampleLimit", "attachMetadata"}
    (endpoint,) = spec["endpoints"]
    assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels", "relabelings",
                             "metricRelabelings", "tlsConfig", "params", "followRedirects", "enableHttp2"}
    assert endpoint["port"] == "health" and endpoint["path"] == "/metrics"
    assert all(re.fullmatch(r"\d+[smh]", endpoint[k]) for k in ("interval", "scrapeTimeout"))
    for relabel in endpoint["relabelings"]:
        assert set(relabel) <= {"sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"}
        assert relabel.get("action", "replace") in {"replace", "keep", "drop", "hashmod", "labelmap", "labeldrop",
                                                     "labelkeep", "lowercase", "uppercase", "keepequal", "dropequal"}
    assert {"targetLabel": "job", "replacement": "cmcoord", "action": "replace"} in endpoint["relabelings"]
    # by name: k8s/webhook/bot.yaml replaces k8s/bot.yaml and has the same health Service
    selected = list({doc["metadata"]["name"]: doc for _, doc in documents if doc["kind"] == "Service"
                     and spec["selector"]["matchLabels"].items() <= doc["metadata"].get("labels", {}).items()}.values())
    assert sorted(doc["metadata"]["labels"]["app.kubernetes.io/component"] for doc in selected) == sorted(SERVICES)
    assert all(any(p["name"] == "health" for p in doc["spec"]["ports"]) for doc in selected)


# Pod Security Standards, "restricted" (which includes "baseline"): the controls as the standard lists them.
BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What in a pod spec the Pod Security "restricted" level refuses."""
    found: list[str] = []
    pod_context = pod.get("securityContext") or {}
    containers = [*pod.get("initContainers", []), *pod.get("containers", []), *pod.get("ephemeralContainers", [])]
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            found.append(f"{field} shares the host's namespace")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']}: {sorted(kinds - RESTRICTED_VOLUMES)}")
    for sysctl in pod_context.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            found.append(f"sysctl {sysctl['name']}")
    contexts = [("pod", pod_context)] + [(c["name"], c.get("securityContext") or {}) for c in containers]
    for where, context in contexts:
        if context.get("windowsOptions", {}).get("hostProcess"):
            found.append(f"{where}: hostProcess")
        if context.get("runAsUser") == 0:
            found.append(f"{where}: runAsUser 0")
        if context.get("runAsNonRoot") is False:
            found.append(f"{where}: runAsNonRoot false")
        seccomp = (context.get("seccompProfile") or {}).get("type")
        if seccomp is not None and seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{where}: seccomp {seccomp}")
        apparmor = (context.get("appArmorProfile") or {}).get("type")
        if apparmor is not None and apparmor not in ("RuntimeDefault", "Localhost"):
            found.append(f"{where}: AppArmor {apparmor}")
        selinux = context.get("seLinuxOptions") or {}
        if selinux.get("type", "") not in ("", "container_t", "container_init_t", "container_kvm_t",
                                           "container_engine_t") or selinux.get("user") or selinux.get("role"):
            found.append(f"{where}: SELinux options")
    for container in containers:
        name, context = container["name"], container.get("securityContext") or {}
        if context.get("privileged"):
            found.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation must be false")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in capabilities.get("drop", []):
            found.append(f"{name}: capabilities must drop ALL")
        added = set(capabilities.get("add", []))
        if added - {"NET_BIND_SERVICE"} or added - BASELINE_CAPABILITIES:
            found.append(f"{name}: adds capabilities {sorted(added - {'NET_BIND_SERVICE'})}")
        if context.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            found.append(f"{name}: hostPort")
        if not (context.get("runAsNonRoot") is True or pod_context.get("runAsNonRoot") is True):
            found.append(f"{name}: runAsNonRoot must be true (pod or container)")
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost (pod or container)")
    return found


def test_every_pod_passes_pod_security_restricted() -> None:
    templates = [(path, doc["spec"]["template"]["spec"]) for path, doc in k8s_documents()
                 if doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")]
    assert len(templates) >= 6  # the four services, the webhook bot, nats-init
    for path, pod in templates:
        assert restricted_violations(pod) == [], path.name
    # the check can fail: each control refuses what it is about
    pod = json.loads(json.dumps(templates[0][1]))
    del pod["securityContext"]["seccompProfile"]
    pod["hostNetwork"] = True
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    container = pod["containers"][0]
    container["securityContext"]["capabilities"] = {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
    container["securityContext"]["allowPrivilegeEscalation"] = True
    container["ports"].append({"containerPort": 80, "hostPort": 80})
    found = " | ".join(restricted_violations(pod))
    for control in ("seccompProfile", "hostNetwork", "volume host", "SYS_ADMIN", "allowPrivilegeEscalation", "hostPort"):
        assert control in found, control
