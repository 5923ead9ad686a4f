"""Public routes of the rules context: the what-if calculator and the parameter sets in use."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from gongji.api.auth import PUBLIC, access
from gongji.api.deps import AppContext, get_context
from gongji.api.problems import problem_responses
from gongji.core.messages import identity
from gongji.rules.cascade import EpisodeInput, explain_person_year
from gongji.rules.params import ParameterBook
from gongji.rules.schemas import CalculateRequest, ParameterSetOut, SettlementOut
from gongji.web.i18n import Gettext, reader_gettext

router = APIRouter(prefix="/api", tags=["rules"], responses=problem_responses(422))


def calculate(book: ParameterBook, request: CalculateRequest, gettext: Gettext = identity) -> SettlementOut:
    """Settle one episode as the first of an anonymous person's year, explained in the reader's language
    (`gettext`); the web page uses this too."""
    episode = EpisodeInput(
        episode_id="what-if",
        person_key="what-if",
        scheme=request.scheme,
        assistance_category=request.assistance_category,
        inclusive_enrolled=request.inclusive_enrolled,
        region=request.region,
        hospital_level=request.hospital_level,
        admission_date=request.admission_date,
        discharge_date=request.discharge_date,
        icd10="",
        class_a=request.class_a,
        class_b=request.class_b,
        out_of_catalogue=request.out_of_catalogue,
    )
    (settlement,) = explain_person_year([episode], book)
    return SettlementOut.of(settlement, book, gettext)


@router.post("/calculate", response_model=SettlementOut, **access(PUBLIC))
def calculate_route(
    body: CalculateRequest,
    context: Annotated[AppContext, Depends(get_context)],
    gettext: Annotated[Gettext, Depends(reader_gettext)],
) -> SettlementOut:
    """What each statutory layer would pay for one episode, with the explanation in the `Accept-Language`
    language (Chinese by default). Nothing is stored."""
    return calculate(context.book, body, gettext)


@router.get("/parameter-sets", response_model=list[ParameterSetOut], **access(PUBLIC))
def parameter_sets(context: Annotated[AppContext, Depends(get_context)]) -> list[ParameterSetOut]:
    """The statutory parameter sets loaded at start, by region and effective date."""
    return [ParameterSetOut.of(pset) for pset in context.book.sets]
