"""The facts a notice or a case file states, from the ledger and the readings store: measured
concentration C, flow Q, stove heads n and the reference concentration (基准风量折算), fan and purifier
states, the earlier steps with their receipts, and every notice of an episode.

Nothing here is rendered: :mod:`alerts.enforcement.notify.render` turns these dicts into text, the case
builder stores them. Each value says where it came from, and what could not be known is None (the text
then says so) rather than guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from alerts.enforcement.episodes import step_episodes
from alerts.ledger import SENT, Episode, Ledger
from alerts.model import Event
from ingest.registry import Device
from ingest.timeutil import format_display

#: ``readings_of(device_id, since_ms, until_ms)`` -> store rows (dicts as ``Store.query`` returns them).
ReadingsOf = Callable[[str, int, int], list[dict]]

_VALUE = {"oil_fume": "oil_fume_mg_m3", "pm": "pm_mg_m3", "nmhc": "nmhc_mg_m3"}


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _states(rows: Iterable[dict], key: str) -> dict[str, int]:
    out = {"on": 0, "off": 0, "unknown": 0}
    for r in rows:
        v = r.get(key)
        out["unknown" if v is None else "on" if v else "off"] += 1
    return out


def measures(
    event: Event,
    device: Device | None,
    readings_of: ReadingsOf | None,
    until_ms: int,
    ref_flow_per_head_m3_h: float = 2000.0,
) -> dict[str, Any]:
    """What the monitor measured during ``event`` (from its start to its end, or ``until_ms`` while open).

    ``c_mg_m3``: mean measured concentration of the event's pollutant (oil fume for purifier_off);
    ``q_m3_h``: mean measured flow over the readings that carry one; ``n_heads``: the registry's reference
    stove heads; ``c_ref_mg_m3``: mean of the readings' reference concentrations C·Q/(n·2000), over the
    converted readings only; ``unconverted``: oil-fume readings without a flow (kept as measured, never
    averaged into ``c_ref_mg_m3``). None where the store holds nothing (``source`` says why).
    """
    pollutant = event.pollutant or "oil_fume"
    end = event.end_ms if event.end_ms is not None else until_ms
    out: dict[str, Any] = {
        "pollutant": pollutant,
        "since_ms": event.start_ms,
        "until_ms": end,
        "n_heads": device.stove_heads if device else None,
        "ref_flow_m3_h": (device.stove_heads * ref_flow_per_head_m3_h) if device else None,
        "readings": 0,
        "c_mg_m3": None,
        "q_m3_h": None,
        "c_ref_mg_m3": None,
        "converted": 0,
        "unconverted": 0,
        "fan": {"on": 0, "off": 0, "unknown": 0},
        "purifier": {"on": 0, "off": 0, "unknown": 0},
        "excluded": 0,
        "source": "store",
    }
    if readings_of is None:
        out["source"] = "no readings store configured"
        return out
    try:
        rows = [r for r in readings_of(event.device_id, event.start_ms, end + 1) if not r.get("interval_s")]
    except Exception as exc:  # noqa: BLE001 - a store outage must not stop a notice; the text says so
        out["source"] = f"readings store unavailable: {str(exc)[:120]}"
        return out
    # readings flagged fault/maintenance/calibration (HJ 212) are stored but were not judged: not averaged
    judged = [r for r in rows if not r.get("excluded")]
    out["excluded"] = len(rows) - len(judged)
    rows = judged
    if not rows:
        out["source"] = "no readings stored for this period"
        return out
    key = _VALUE.get(pollutant, "oil_fume_mg_m3")
    out["readings"] = len(rows)
    out["c_mg_m3"] = _mean([float(r[key]) for r in rows if r.get(key) is not None])
    out["q_m3_h"] = _mean([float(r["flow_m3_h"]) for r in rows if r.get("flow_m3_h")])
    if pollutant == "oil_fume" or event.kind != "exceedance":
        conv = [r for r in rows if r.get("ref_converted") and r.get("oil_fume_ref_mg_m3") is not None]
        out["converted"] = len(conv)
        out["unconverted"] = sum(
            1 for r in rows if r.get("oil_fume_mg_m3") is not None and not r.get("ref_converted")
        )
        out["c_ref_mg_m3"] = _mean([float(r["oil_fume_ref_mg_m3"]) for r in conv])
    out["fan"] = _states(rows, "fan_on")
    out["purifier"] = _states(rows, "purifier_on")
    return out


def receipt(n: Any, tz: str) -> dict[str, Any]:
    """One notice row as a receipt: who, how, what became of it, when."""
    return {
        "key": n.key,
        "event_id": n.event_id,
        "action": n.action,
        "channel": n.channel,
        "target": n.target,
        "template": n.payload.get("template", ""),
        "status": n.status,
        "attempts": n.attempts,
        "error": n.error,
        "created_ms": n.created_ms,
        "updated_ms": n.updated_ms,
        "time": format_display(n.updated_ms or n.created_ms, tz) if (n.updated_ms or n.created_ms) else None,
    }


def receipts(ledger: Ledger, episode_ids: Iterable[str], tz: str) -> list[dict[str, Any]]:
    """Every notice of the events of these episodes."""
    events = ledger.episode_events(list(episode_ids))
    return [receipt(n, tz) for n in ledger.notices_for_events(e.event_id for e in events)]


def owner_delivery(ledger: Ledger, step: Episode, tz: str) -> dict[str, Any]:
    """Whether (and when, how) an ``opened`` owner notice of the step or its repeats was recorded sent."""
    ids = [p.episode_id for p in step_episodes(ledger, step)]
    owner = [r for r in receipts(ledger, ids, tz) if r["channel"] == "owner" and r["action"] == "opened"]
    sent = [r for r in owner if r["status"] == SENT]
    first = min(sent, key=lambda r: r["updated_ms"]) if sent else None
    return {
        "delivered": bool(sent),
        "delivered_ms": first["updated_ms"] if first else None,
        "delivered_at": first["time"] if first else None,
        "channel_target": first["target"] if first else None,
        "attempted": len(owner),
        "errors": sorted({r["error"] for r in owner if r["error"]}),
    }


def history(ledger: Ledger, episode: Episode, lookback_ms: int, tz: str) -> list[dict[str, Any]]:
    """The restaurant's earlier steps (not repeats) in the look-back period, oldest first, each with
    whether its notice reached the owner."""
    out = []
    for p in ledger.list_episodes(
        restaurant_id=episode.restaurant_id,
        since_ms=episode.start_ms - lookback_ms,
        until_ms=episode.start_ms,
    ):
        if p.repeat or p.episode_id == episode.episode_id:
            continue
        out.append(
            {
                "episode_id": p.episode_id,
                "level": p.level,
                "step": p.step,
                "reissued": p.reissued,
                "start_ms": p.start_ms,
                "start": format_display(p.start_ms, tz),
                "deadline_ms": p.deadline_ms,
                "deadline": format_display(p.deadline_ms, tz),
                **owner_delivery(ledger, p, tz),
            }
        )
    return out
