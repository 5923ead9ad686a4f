"""Who is asking: the caller as every context's scoping function sees it (审查范围).

Contexts never import the API layer; they accept any object with these
attributes (the API's signed-in principal has them). Regions are GB/T 2260
codes; "000000" is the whole country, "330000" a province, "330100" a city.
"""

from __future__ import annotations

from typing import Protocol

#: Self-service roles act only for the persons linked to their own account.
SELF_SERVICE_ROLES = ("family", "member")
NATIONWIDE = "000000"


class Subject(Protocol):
    user_id: int
    username: str
    role: str
    regions: tuple[str, ...]
    #: The mutual-aid operator of operator staff (operator_admin, assessor, reviewer); None otherwise.
    operator_code: str | None


def is_self_service(subject: Subject) -> bool:
    return subject.role in SELF_SERVICE_ROLES


def region_prefixes(regions: tuple[str, ...]) -> tuple[str, ...]:
    """Code prefixes a staff member may see: 000000 → "" (all), 330000 → "33", 330100 → "3301", 330106 itself."""
    prefixes = []
    for region in regions:
        if region == NATIONWIDE:
            prefixes.append("")
        elif region.endswith("0000"):
            prefixes.append(region[:2])
        elif region.endswith("00"):
            prefixes.append(region[:4])
        else:
            prefixes.append(region)
    return tuple(prefixes)


def covers_region(subject: Subject, region: str) -> bool:
    """Whether a staff member's regions include `region` (self-service accounts have none)."""
    return not is_self_service(subject) and any(region.startswith(p) for p in region_prefixes(subject.regions))
