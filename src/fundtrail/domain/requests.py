"""Legal requests as a state machine: pure rules, no I/O.

::

    draft --approve--> approved --send--> sent --acknowledge--> acknowledged
                                           |                        |
                                           +--answer/refuse/expire--+--> answered | refused | expired

Approval is by a supervisor who is not the request's author. Answered, refused and expired are final.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from fundtrail.domain.cases import Role
from fundtrail.errors import InvalidTransitionError, PermissionDeniedError


class RequestType(StrEnum):
    """The kind of legal request."""

    PRESERVATION = "preservation"
    FREEZE = "freeze"
    DISCLOSURE = "disclosure"
    MLA = "mla"

    @property
    def label(self) -> str:
        """A readable English name."""
        return _TITLES[self]


_TITLES = {
    RequestType.PRESERVATION: "expedited preservation",
    RequestType.FREEZE: "freeze",
    RequestType.DISCLOSURE: "disclosure (production)",
    RequestType.MLA: "mutual legal assistance",
}


class RequestState(StrEnum):
    """Where a request stands."""

    DRAFT = "draft"
    APPROVED = "approved"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    ANSWERED = "answered"
    REFUSED = "refused"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        """True for states no transition leaves."""
        return self in FINAL_STATES

    @property
    def is_pending(self) -> bool:
        """True while the recipient owes an answer (sent or acknowledged)."""
        return self in (RequestState.SENT, RequestState.ACKNOWLEDGED)


FINAL_STATES = frozenset({RequestState.ANSWERED, RequestState.REFUSED, RequestState.EXPIRED})


class RequestAction(StrEnum):
    """What moves a request from one state to the next."""

    APPROVE = "approve"
    SEND = "send"
    ACKNOWLEDGE = "acknowledge"
    ANSWER = "answer"
    REFUSE = "refuse"
    EXPIRE = "expire"


_S, _A = RequestState, RequestAction
TRANSITIONS: dict[tuple[RequestState, RequestAction], RequestState] = {
    (_S.DRAFT, _A.APPROVE): _S.APPROVED,
    (_S.APPROVED, _A.SEND): _S.SENT,
    (_S.SENT, _A.ACKNOWLEDGE): _S.ACKNOWLEDGED,
    (_S.SENT, _A.ANSWER): _S.ANSWERED,
    (_S.SENT, _A.REFUSE): _S.REFUSED,
    (_S.SENT, _A.EXPIRE): _S.EXPIRED,
    (_S.ACKNOWLEDGED, _A.ANSWER): _S.ANSWERED,
    (_S.ACKNOWLEDGED, _A.REFUSE): _S.REFUSED,
    (_S.ACKNOWLEDGED, _A.EXPIRE): _S.EXPIRED,
}
"""The whole state machine: (state, action) -> next state."""

APPROVER_ROLES = frozenset({Role.SUPERVISOR})


def allowed_actions(state: RequestState) -> list[RequestAction]:
    """The actions possible from ``state``, in a fixed order."""
    return [a for (s, a) in TRANSITIONS if s is state]


def next_state(number: str, state: RequestState, action: RequestAction) -> RequestState:
    """The state after ``action``; InvalidTransitionError naming what is possible otherwise."""
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        possible = ", ".join(a.value for a in allowed_actions(state)) or "none (final state)"
        raise InvalidTransitionError(
            f"request {number} is {state.value}; cannot {action.value} it (possible: {possible})"
        ) from None


def check_approval(number: str, author: str, approver: str, approver_role: Role) -> None:
    """Raise PermissionDeniedError unless ``approver`` is a supervisor other than the author."""
    if approver_role not in APPROVER_ROLES:
        raise PermissionDeniedError(
            f"user {approver!r} ({approver_role.value}) may not approve request {number}: "
            f"approval needs a supervisor"
        )
    if approver == author:
        raise PermissionDeniedError(
            f"user {approver!r} may not approve request {number}: they drafted it "
            f"(approval needs a second person)"
        )


def reachable(start: RequestState = RequestState.DRAFT) -> frozenset[RequestState]:
    """Every state reachable from ``start`` (including it)."""
    seen = {start}
    frontier = [start]
    while frontier:
        state = frontier.pop()
        for (s, _), t in TRANSITIONS.items():
            if s is state and t not in seen:
                seen.add(t)
                frontier.append(t)
    return frozenset(seen)


@dataclass(frozen=True, slots=True)
class Step:
    """One transition taken: from, action, to."""

    source: RequestState
    action: RequestAction
    target: RequestState


def replay(
    number: str, actions: Iterable[RequestAction], start: RequestState = RequestState.DRAFT
) -> list[Step]:
    """Apply ``actions`` in order from ``start``; InvalidTransitionError at the first impossible one."""
    steps: list[Step] = []
    state = start
    for action in actions:
        target = next_state(number, state, action)
        steps.append(Step(state, action, target))
        state = target
    return steps
