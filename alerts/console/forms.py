"""From a submitted console form to the fields :meth:`Casework.act` takes, and back for a redisplay.

The console's inputs carry the field names of :mod:`alerts.casework.lifecycle` (``assignee``,
``inspected_at`` ...); this module only picks an action's inputs out of the form, drops the empty ones
(an optional time left blank) and reads the yes/no radio. Whether the values are right is decided by the
casework, never here: its refusal is shown on the page as it is.
"""

from __future__ import annotations

from typing import Any

from alerts.casework import lifecycle

#: action -> the form inputs it reads (a photo input, ``photo``, is read separately)
INPUTS: dict[str, tuple[str, ...]] = {
    "assign": ("assignee",),
    "inspect": ("inspected_at", "findings", "purifier", "fan"),
    "order_rectification": ("deadline", "requirements"),
    "recheck": ("rechecked_at", "rectified", "findings"),
    "record_statement": ("statement", "form", "given_at"),
    "close": ("outcome", "decision_number", "amount_yuan", "exemption_item", "dismiss_reason"),
}
#: actions whose form has a photo / document upload
WITH_PHOTO = ("inspect", "recheck", "record_statement")
#: the close outcomes offered per case type: the casework's own table
OUTCOMES_BY_TYPE = lifecycle.OUTCOMES_BY_TYPE
#: the form a case page opens first: the usual next step in each state (the others stay folded)
SUGGESTED = {
    "open": "assign",
    "assigned": "inspect",
    "inspected": "order_rectification",
    "rectification_ordered": "recheck",
    "rechecked": "close",
}
#: text inputs kept for a redisplay after a refusal (never secrets: the console's forms hold none)
_KEEP = {name for names in INPUTS.values() for name in names} | {"note"}


class FormError(ValueError):
    """The form itself is broken (no action, no version): a 400 page."""


def action_fields(action: str, form: Any) -> dict[str, Any]:
    """The ``fields`` of ``action`` from a submitted form (a Starlette FormData or a dict)."""
    if action not in INPUTS:
        raise FormError(f"未知的操作：{action!r}")
    out: dict[str, Any] = {}
    for name in INPUTS[action]:
        value = form.get(name)
        if not isinstance(value, str):
            continue
        value = value.strip()
        if not value:
            continue
        if name == "rectified":
            out[name] = {"yes": True, "no": False}.get(value, value)
        else:
            out[name] = value
    return out


def version_of(form: Any) -> int:
    value = form.get("version")
    if not isinstance(value, str) or not value.strip().isdigit():
        raise FormError("表单缺少案件版本号（version），请重新载入案件页面")
    return int(value.strip())


def kept_values(form: Any) -> dict[str, str]:
    """What the inspector typed, to fill the form again after a refusal."""
    return {k: v for k in _KEEP if isinstance(v := form.get(k), str)}
