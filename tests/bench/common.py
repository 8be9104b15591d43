from __future__ import annotations

import statistics


def result(name: str, value: float, unit: str, target: str, ok: bool, **detail: object) -> dict[str, object]:
    out: dict[str, object] = {"name": name, "value": round(value, 3), "unit": unit, "target": target, "ok": ok}
    if detail:
        out["detail"] = detail
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=1000, method="inclusive")[int(q * 1000) - 1]
