"""UI texts of the web pages, Chinese first, English second.

Pages are Chinese by default; `?lang=en` switches to English and a cookie
remembers the choice. Rule data (parameter names, sources, arithmetic) is
already bilingual and is shown as written.
"""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
LANG_COOKIE = "gongji_lang"
HTML_LANG = {"zh": "zh-CN", "en": "en"}

#: key → (中文, English)
TEXTS: dict[str, tuple[str, str]] = {
    "site": ("共济", "Gongji"),
    "title": ("多层次医疗保障测算", "Multi-layer medical security calculator"),
    "lead": (
        "输入一次住院的费用，看基本医保、大病保险、医疗救助和惠民保依次支付多少，剩余多少由个人自付。",
        "Enter the cost of one hospital stay to see what basic insurance, critical-illness insurance, "
        "medical assistance and inclusive insurance pay in turn, and what is left for the patient.",
    ),
    "privacy": (
        "仅作测算：不需要也不保存任何个人信息。参数为示例值，非官方公布数据。",
        "A what-if only: no personal information is asked for or stored. Parameters are illustrative, not official.",
    ),
    "switch_language": ("English", "中文"),
    "colon": ("：", ": "),
    "parenthesised": ("（%s）", " (%s)"),
    "form.person": ("参保情况", "Insurance"),
    "form.episode": ("本次住院", "This hospital stay"),
    "form.costs": ("费用明细（元）", "Itemised cost (yuan)"),
    "form.costs_hint": (
        "以元为单位，最多两位小数，可用千分位逗号，如 12,345.60",
        "In yuan with at most two decimals; thousands commas allowed, e.g. 12,345.60",
    ),
    "form.submit": ("测算", "Calculate"),
    "form.working": ("计算中…", "Calculating…"),
    "field.scheme": ("参保类型", "Insurance scheme"),
    "field.assistance_category": ("救助类别", "Assistance category"),
    "field.inclusive_enrolled": ("已参保惠民保", "Enrolled in inclusive insurance (惠民保)"),
    "field.region": ("统筹地区", "Region"),
    "field.hospital_level": ("医院等级", "Hospital level"),
    "field.admission_date": ("入院日期", "Admission date"),
    "field.discharge_date": ("出院日期", "Discharge date"),
    "field.class_a": ("甲类费用", "Class A (甲类)"),
    "field.class_b": ("乙类费用", "Class B (乙类)"),
    "field.out_of_catalogue": ("目录外费用", "Out of catalogue (目录外)"),
    "scheme.employee": ("职工医保（在职）", "Employee scheme (working)"),
    "scheme.retiree": ("职工医保（退休）", "Employee scheme (retired)"),
    "scheme.resident": ("城乡居民医保", "Resident scheme"),
    "category.none": ("无", "None"),
    "category.destitute": ("特困人员", "Destitute (特困)"),
    "category.subsistence": ("低保对象", "Minimum living allowance (低保)"),
    "category.near_subsistence": ("低保边缘家庭成员", "Near the allowance line (低保边缘)"),
    "category.monitored": ("防返贫监测对象", "Monitored for relapse into poverty"),
    "level.1": ("一级医院", "Level 1 hospital"),
    "level.2": ("二级医院", "Level 2 hospital"),
    "level.3": ("三级医院", "Level 3 hospital"),
    "region.000000": ("全国默认", "National default"),
    "region.330100": ("杭州", "Hangzhou"),
    "region.510100": ("成都", "Chengdu"),
    "result.title": ("测算结果", "Result"),
    "result.parameter_set": ("适用参数", "Parameters applied"),
    "result.payer": ("支付方", "Paid by"),
    "result.amount": ("金额（元）", "Amount (yuan)"),
    "result.share": ("占比", "Share"),
    "result.total": ("总费用", "Total cost"),
    "result.residual": ("个人自付", "Left to the patient"),
    "result.chart": ("各层支付与个人自付", "What each layer pays and what is left"),
    "explain.title": ("计算说明", "How it was calculated"),
    "explain.base": ("计算基数", "Base"),
    "explain.parameter": ("参数", "Parameter"),
    "explain.value": ("取值", "Value"),
    "explain.source": ("依据", "Source"),
    "explain.arithmetic": ("算式", "Arithmetic"),
    "explain.not_applicable": ("不适用", "Does not apply"),
    "error.title": ("输入有误", "Please check your input"),
    "error.amount": (
        "请填写以元为单位的金额，最多两位小数（精确到分），如 12,345.60",
        "Enter an amount in yuan with at most two decimals (to the fen), e.g. 12,345.60",
    ),
    "error.date": (
        "请填写有效日期；出院日期不得早于入院日期，且须在参数生效之后",
        "Enter a valid date; discharge may not precede admission and must fall after the parameters took effect",
    ),
    "error.choice": ("请从列表中选择", "Choose one of the listed options"),
    "error.other": ("请检查此项", "Please check this field"),
    "footer": (
        "共济 · 多层次医疗保障开放平台 · 计算规则与参数来源见各行说明",
        "Gongji · open platform for multi-layer medical security · rules and sources are shown with each line",
    ),
}

#: Which hint explains an error in each form field.
FIELD_HINTS = {
    "class_a": "error.amount",
    "class_b": "error.amount",
    "out_of_catalogue": "error.amount",
    "admission_date": "error.date",
    "discharge_date": "error.date",
    "scheme": "error.choice",
    "assistance_category": "error.choice",
    "region": "error.choice",
    "hospital_level": "error.choice",
}


def choose_language(requested: str | None, remembered: str | None) -> str:
    """The language asked for in the query, else the one in the cookie, else Chinese."""
    for candidate in (requested, remembered):
        if candidate in LANGUAGES:
            return candidate
    return DEFAULT_LANGUAGE


def translator(language: str) -> Callable[..., str]:
    """`t(key)` in `language`; `t(key, default)` when the key may be missing (e.g. an unknown region)."""
    index = LANGUAGES.index(language)

    def t(key: str, default: str | None = None) -> str:
        if key in TEXTS:
            return TEXTS[key][index]
        if default is not None:
            return default
        raise KeyError(f"no UI text {key!r}")

    return t
