"""Episodes and the ladder's steps: which offence an event belongs to, and what that offence counts as.

An **episode** is one restaurant's offence: every exceedance (of any pollutant) and ``purifier_off`` event
of that restaurant that overlaps or touches another one of the episode. "Touches": the gap between them is
shorter than one window (:attr:`LadderPolicy.touch_ms`, 10 minutes), since events are measured in whole
windows. Oil fume and particulate over the limit during one dinner service, with the purifier switched
off for part of it, are one offence and take one step. An event joins the earliest episode it overlaps;
an event that would bridge two episodes already decided joins the earlier one (decisions already
announced are never rewritten).

A new episode's **step** on the ladder (一次教育劝导、二次告诫、三次运用执法手段), from the restaurant's
episodes whose start lies in the look-back period (365 days) before it, in event time (episode start,
then id), so replaying the same readings gives the same steps:

- no earlier episode: step 1, ``education``, with a correction deadline ``correction_days`` after it;
- it starts on or before the current step's correction deadline: a **repeat** (same level and step,
  recorded against that step, inspectors told; it does not escalate);
- after the deadline, and the current step's notice reached the owner (an owner channel recorded
  ``sent`` for the step's episode or one of its repeats): the next step (``warning``, then
  ``enforcement`` for every later one), with a new deadline;
- after the deadline, but no owner channel ever took the step's notice: the step is **reissued** (same
  level, new deadline), never escalated on a notice the owner cannot have read. The notifier opens an
  ``owner_unreachable`` task for inspectors whenever a step's notice reaches no owner channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from alerts.ledger import SENT, Episode, Ledger, episode_id_for
from alerts.model import EDUCATION, ENFORCEMENT, EXCEEDANCE, PURIFIER_OFF, WARNING, Event
from ingest.timeutil import zone

#: Event kinds that are offences on the ladder.
LADDER_KINDS = (EXCEEDANCE, PURIFIER_OFF)
DAY_MS = 86_400_000


def level_for(step: int) -> str:
    """Ladder level of the ``step``-th step (1-based)."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    return EDUCATION if step == 1 else WARNING if step == 2 else ENFORCEMENT


@dataclass(frozen=True)
class LadderPolicy:
    """The ladder's settings: look-back (``[notify] lookback_days``), correction period (``[alerts]
    correction_days``, or a profile's ``correction_days``), the display zone the deadline date is read in,
    and the touch tolerance (one detector window)."""

    lookback_days: float = 365.0
    correction_days: float = 7.0
    tz: str = "Asia/Shanghai"
    touch_ms: int = 600_000
    #: per limit profile: its own correction period, if it sets one
    profile_correction_days: dict[str, float] = field(default_factory=dict)

    def correction_for(self, profile: str) -> float:
        return self.profile_correction_days.get(profile, self.correction_days)

    def deadline_ms(self, start_ms: int, profile: str) -> int:
        """End of the local day ``correction_days`` after ``start_ms`` (the owner has that whole day):
        an episode starting at or before it is inside the correction period."""
        tzinfo = zone(self.tz)
        day = (
            datetime.fromtimestamp(start_ms / 1000, tzinfo) + timedelta(days=self.correction_for(profile))
        ).date()
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo)
        return int(end.timestamp() * 1000) - 1


@dataclass(slots=True)
class Decision:
    """What an event counts as: its episode, the step that episode is recorded against, whether the
    event only joined an episode already decided (its owner was told when the episode opened)."""

    episode: Episode
    step: Episode
    joined: bool
    new: bool  # the episode was created by this call

    @property
    def level(self) -> str:
        return self.episode.level


def known_end(e: Event) -> int:
    """End of an event as far as known: its end, else (still open) the latest end in its evidence. An
    event left open by a device that went silent must not swallow every later offence."""
    if e.end_ms is not None:
        return e.end_ms
    best = e.start_ms
    for w in e.evidence:
        if isinstance(w, dict):
            for k in ("end_ms", "last_bypass_ms"):
                v = w.get(k)
                if isinstance(v, int | float) and v > best:
                    best = int(v)
    return best


def decide(ledger: Ledger, event: Event, policy: LadderPolicy) -> Decision:
    """Store ``event`` and put it into its episode (deciding the episode's step if it is new).

    Idempotent: an event already in an episode gets that episode back unchanged. One transaction, with
    the restaurant locked (PostgreSQL), so two workers cannot decide one restaurant's step at once.
    """
    with ledger.transaction():
        ledger.lock_restaurant(event.restaurant_id)
        stored = ledger.upsert_event(event)
        if stored.episode_id:
            ep = ledger.get_episode(stored.episode_id)
            if ep is not None:
                ledger.update_episode(ep.episode_id, end_ms=known_end(stored))
                return Decision(ep, _step_of(ledger, ep), ep.lead_event_id != stored.event_id, False)
        start, end = stored.start_ms, known_end(stored)
        tol = policy.touch_ms
        joined = _overlapping_episode(ledger, stored, start - tol, end + tol)
        if joined is not None:
            ledger.set_event_episode(stored.event_id, joined.episode_id)
            ledger.set_level(stored.event_id, joined.level, joined.step)
            ledger.update_episode(joined.episode_id, end_ms=end)
            return Decision(joined, _step_of(ledger, joined), True, False)
        ep = _new_episode(ledger, stored, policy)
        ep = ledger.insert_episode(ep)
        ledger.set_event_episode(stored.event_id, ep.episode_id)
        ledger.set_level(stored.event_id, ep.level, ep.step)
        return Decision(ep, _step_of(ledger, ep), False, True)


def _overlapping_episode(ledger: Ledger, event: Event, lo: int, hi: int) -> Episode | None:
    found: list[Episode] = []
    for e in ledger.list_events(since_ms=lo, until_ms=hi + 1, restaurant_id=event.restaurant_id):
        if e.kind not in LADDER_KINDS or not e.episode_id or e.event_id == event.event_id:
            continue
        if e.start_ms <= hi and known_end(e) >= lo:
            ep = ledger.get_episode(e.episode_id)
            if ep is not None:
                found.append(ep)
    return min(found, key=lambda p: (p.start_ms, p.episode_id)) if found else None


def _step_of(ledger: Ledger, ep: Episode) -> Episode:
    if not ep.repeat or ep.step_episode_id == ep.episode_id:
        return ep
    return ledger.get_episode(ep.step_episode_id) or ep


def _new_episode(ledger: Ledger, event: Event, policy: LadderPolicy) -> Episode:
    start = event.start_ms
    new_id = episode_id_for(event.restaurant_id, start)
    prior = [
        p
        for p in ledger.list_episodes(
            restaurant_id=event.restaurant_id,
            since_ms=start - int(policy.lookback_days * DAY_MS),
            until_ms=start,
        )
        if (p.start_ms, p.episode_id) < (start, new_id)
    ]
    base = dict(
        episode_id=new_id,
        restaurant_id=event.restaurant_id,
        district=event.district,
        device_id=event.device_id,
        lead_event_id=event.event_id,
        start_ms=start,
        end_ms=known_end(event),
    )
    deadline = policy.deadline_ms(start, event.profile)
    if not prior:
        return Episode(
            **base,
            level=EDUCATION,
            step=1,
            repeat=False,
            step_episode_id=new_id,
            reissued=False,
            deadline_ms=deadline,
            record={"decision": "first episode in the look-back period"},
        )
    step = _step_of(ledger, prior[-1])
    if start <= step.deadline_ms:
        return Episode(
            **base,
            level=step.level,
            step=step.step,
            repeat=True,
            step_episode_id=step.episode_id,
            reissued=False,
            deadline_ms=step.deadline_ms,
            record={"decision": f"inside the correction period of {step.episode_id}"},
        )
    if owner_reached(ledger, step):
        n = step.step + 1
        return Episode(
            **base,
            level=level_for(n),
            step=n,
            repeat=False,
            step_episode_id=new_id,
            reissued=False,
            deadline_ms=deadline,
            record={
                "decision": f"after the correction deadline of {step.episode_id}; its notice reached the owner"
            },
        )
    return Episode(
        **base,
        level=step.level,
        step=step.step,
        repeat=False,
        step_episode_id=new_id,
        reissued=True,
        deadline_ms=deadline,
        record={
            "decision": f"after the correction deadline of {step.episode_id}, but its notice never reached the owner: step given again"
        },
    )


def step_episodes(ledger: Ledger, step: Episode) -> list[Episode]:
    """The step's episode and the repeats recorded against it, by start."""
    eps = ledger.list_episodes(restaurant_id=step.restaurant_id, since_ms=step.start_ms)
    return [p for p in eps if p.episode_id == step.episode_id or p.step_episode_id == step.episode_id]


def owner_reached(ledger: Ledger, step: Episode) -> bool:
    """Whether an owner channel recorded ``sent`` for an ``opened`` notice of the step or its repeats."""
    ids = [p.episode_id for p in step_episodes(ledger, step)]
    event_ids = [e.event_id for e in ledger.episode_events(ids)]
    return any(
        n.channel == "owner" and n.action == "opened" and n.status == SENT
        for n in ledger.notices_for_events(event_ids)
    )
