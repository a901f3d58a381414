"""The judgement rules: every rule that can lead to a notice or a case, named and sourced.

An event records the rule that decided it (``Event.rule``); notices, case files and listings name it with
the title and source below, so an inspector can say which article a decision rests on. Which exceedance
rule applies is configurable: ``[alerts] rule`` (default ``gb18483``), per limit profile ``rule`` in
profiles.toml.

- ``gb18483``: GB 18483-2001 §6 (data treatment of the 5 consecutive 10-minute samples), automated over the
  valid windows of one service. See :class:`alerts.detection.gb18483.GroupTracker`.
- ``consecutive``: the screening alarm, N consecutive valid windows over the limit open it, M compliant
  ones close it (:class:`alerts.detection.window.ExceedanceTracker`). Not a rule of the standard.
- ``bypass``: the fan runs with the purifier off (``purifier_off`` events); 大气污染防治法 §118
  (不正常使用油烟净化设施).
- ``offline`` and ``late``: monitoring-data availability; they lead to reminders, never to a case.
- ``suspect_zero``, ``suspect_flatline``, ``suspect_replay``, ``suspect_clone``, ``suspect_clock``,
  ``suspect_flow``: data-integrity checks (:mod:`alerts.integrity.checks`): inspectors
  are told to check the monitor; never an offence, never a case of their own.
- ``maintenance``: the maintenance reminder (清洗提醒, :mod:`alerts.maintenance.rule`): service before
  penalty, never an offence, never a case.
"""

from __future__ import annotations

from dataclasses import dataclass

GB18483 = "gb18483"
CONSECUTIVE = "consecutive"
BYPASS = "bypass"
OFFLINE_RULE = "offline"
LATE_RULE = "late"
MAINTENANCE = "maintenance"
SUSPECT_ZERO = "suspect_zero"
SUSPECT_FLATLINE = "suspect_flatline"
SUSPECT_REPLAY = "suspect_replay"
SUSPECT_CLONE = "suspect_clone"
SUSPECT_CLOCK = "suspect_clock"
SUSPECT_FLOW = "suspect_flow"

#: Rules that may judge an exceedance (``[alerts] rule``, a profile's ``rule``).
EXCEEDANCE_RULES = (GB18483, CONSECUTIVE)
DEFAULT_RULE = GB18483


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    title_zh: str
    title_en: str
    source: str

    def title(self, locale: str) -> str:
        return self.title_zh if locale.startswith("zh") else self.title_en


RULES: dict[str, Rule] = {
    GB18483: Rule(
        GB18483,
        "GB 18483-2001 数据处理（连续 5 个 10 分钟有效均值，舍弃小于最大值四分之一者，至少 3 个参与平均）",
        "GB 18483-2001 data treatment (5 consecutive valid 10-minute means; values below 1/4 of the "
        "largest are dropped; at least 3 must remain)",
        "GB 18483-2001 第 6 章 监测（采样与数据处理）",
    ),
    CONSECUTIVE: Rule(
        CONSECUTIVE,
        "连续超标筛查（连续 N 个有效 10 分钟均值超过限值）",
        "consecutive-window screening (N consecutive valid 10-minute means over the limit)",
        "fumewatch 筛查规则（非标准条款）; [alerts] open_after_windows / close_after_windows",
    ),
    BYPASS: Rule(
        BYPASS,
        "排烟风机运行而油烟净化器未开启",
        "exhaust fan running with the purifier off",
        "《中华人民共和国大气污染防治法》第一百一十八条（不正常使用油烟净化设施）; [alerts] purifier_off_min",
    ),
    OFFLINE_RULE: Rule(
        OFFLINE_RULE,
        "营业时间内监测设备未上传数据",
        "no data from the monitor during business hours",
        "fumewatch 数据有效性规则; [alerts] offline_min, business_hours",
    ),
    LATE_RULE: Rule(
        LATE_RULE,
        "数据迟到（所在窗口已判定）",
        "late data (its window was already judged)",
        "fumewatch 数据有效性规则; [alerts] allowed_lateness_s",
    ),
    MAINTENANCE: Rule(
        MAINTENANCE,
        "清洗维护提醒（近几个有效营业时段的折算浓度均值接近限值，或其上升趋势预计数日内达到限值；"
        "非违法认定）",
        "maintenance reminder (the mean of the last valid services near the limit, or their rising trend "
        "reaching it within days; not an offence)",
        "fumewatch 服务规则（优服务，非标准条款），时段值按 GB 18483-2001 第 6 章数据处理; "
        "[maintenance] services, share_of_limit, trend_days, period_days",
    ),
    SUSPECT_ZERO: Rule(
        SUSPECT_ZERO,
        "疑似传感器失效：排烟风机运行时油烟浓度持续为零，而该店此前营业时段并非如此",
        "suspected sensor failure: oil fume at zero while the fan runs, unlike the kitchen's earlier services",
        "fumewatch 数据可信性筛查（非标准条款，不作违法认定）; 参见《环境监测数据弄虚作假行为判定及处理办法》"
        "（环发〔2015〕175号）; [integrity] zero_min, zero_limit_mg_m3, zero_history_services",
    ),
    SUSPECT_FLATLINE: Rule(
        SUSPECT_FLATLINE,
        "疑似数据异常：排烟风机运行时油烟浓度长时间保持同一数值",
        "suspected stuck data: the same oil-fume value for a long time while the fan runs",
        "fumewatch 数据可信性筛查（非标准条款，不作违法认定）; 参见《环境监测数据弄虚作假行为判定及处理办法》"
        "（环发〔2015〕175号）; [integrity] flatline_min",
    ),
    SUSPECT_REPLAY: Rule(
        SUSPECT_REPLAY,
        "疑似数据回放：本营业时段的油烟数据与该设备此前的数据相同（或整体平移后相同）",
        "suspected replayed data: this service's oil-fume series equals the device's earlier data "
        "(or does after a constant shift)",
        "fumewatch 数据可信性筛查（非标准条款，不作违法认定）; 参见《环境监测数据弄虚作假行为判定及处理办法》"
        "（环发〔2015〕175号）; [integrity] replay_min, replay_lookback_days, series_min_distinct",
    ),
    SUSPECT_CLONE: Rule(
        SUSPECT_CLONE,
        "疑似数据克隆：两家餐饮单位的监测设备在同一营业时段发送相同的油烟数据",
        "suspected cloned data: devices of two restaurants sending the same oil-fume series in one service",
        "fumewatch 数据可信性筛查（非标准条款，不作违法认定）; 参见《环境监测数据弄虚作假行为判定及处理办法》"
        "（环发〔2015〕175号）; [integrity] clone_min, series_min_distinct",
    ),
    SUSPECT_CLOCK: Rule(
        SUSPECT_CLOCK,
        "疑似时钟异常：数据时间偏离接收时间、时间倒退或请求编号（QN）重复",
        "suspected clock fault: data times off the receive time, running backwards, or repeated QNs",
        "fumewatch 数据可信性筛查（非标准条款，不作违法认定）; 参见《环境监测数据弄虚作假行为判定及处理办法》"
        "（环发〔2015〕175号）; HJ 212-2017 数据段 QN（请求编码）; [integrity] clock_drift_s, clock_backwards_n, "
        "clock_backwards_s, clock_qn_repeats",
    ),
    SUSPECT_FLOW: Rule(
        SUSPECT_FLOW,
        "疑似风量异常：折算所用的排风量与登记的灶头数不符，或只在油烟浓度高时下降",
        "suspected flow fault: the exhaust flow used for the reference conversion implausible for the "
        "registered stove heads, or dropping only when the concentration is high",
        "fumewatch 数据可信性筛查（非标准条款，不作违法认定）; 参见《环境监测数据弄虚作假行为判定及处理办法》"
        "（环发〔2015〕175号）; GB 18483-2001 基准风量折算（单个灶头 2000 m³/h）; [integrity] "
        "flow_min_share, flow_max_share, flow_drop_share",
    ),
}


#: Short labels (Chinese, English) of the data-integrity checks, the rules of ``data_integrity`` events: the
#: one map the report's integrity section, ``fumewatch devices`` and the events tables name them by.
#: A check not listed here (a newer one) is shown by its name (:func:`check_label`).
CHECK_LABELS: dict[str, tuple[str, str]] = {
    SUSPECT_ZERO: ("疑似零值", "suspect zero"),
    SUSPECT_FLATLINE: ("疑似恒值", "suspect flatline"),
    SUSPECT_REPLAY: ("疑似数据回放", "suspect replay"),
    SUSPECT_CLONE: ("疑似数据克隆", "suspect clone"),
    SUSPECT_CLOCK: ("疑似时钟异常", "suspect clock"),
    SUSPECT_FLOW: ("疑似流量异常", "suspect flow"),
}


def check_label(check: str) -> tuple[str, str]:
    """(Chinese, English) label of the data-integrity check ``check``; an unknown one is its own name."""
    return CHECK_LABELS.get(check, (check, check))


def rule(name: str) -> Rule:
    """The rule called ``name``; an unknown name gives a rule that says so (old events have none)."""
    found = RULES.get(name)
    if found is not None:
        return found
    return Rule(name, f"未记录的规则 {name!r}" if name else "未记录", f"unrecorded rule {name!r}", "")
