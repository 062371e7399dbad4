"""Who may do what through the service: the case layer's role table, plus the chain analyses.

Two checks guard every route. The **role check** (:func:`check`) asks whether the user's role allows the
action at all; a refusal is 403. The **object check** asks whether the case is within the user's reach
(:func:`fundtrail.domain.cases.can_reach_case`: their unit, or their jurisdiction for auditors and
liaison officers, or a case they are assigned to); a case out of reach answers 404, exactly as a case
that does not exist, so that its existence does not leak. Case permissions are the case layer's table
(:data:`fundtrail.domain.cases.PERMISSIONS`), so the API and the CLI never disagree; chain look-ups
and traces, which touch no case data, are for the analysing roles (:data:`CHAIN_ROLES`).

==============  ======================================================================================
role            may
==============  ======================================================================================
analyst         chain look-ups and traces; read the cases of their unit
investigator    as analyst; open and edit cases and subjects, draft requests, send approved ones and
                record the answers, preserve evidence, record recoveries
supervisor      as investigator; approve the requests of their unit (never their own); hold and close
auditor         read the cases of their jurisdiction (all units); the audit log
liaison         read the cases of their jurisdiction; send approved requests and record the answers
admin           users and tokens; no case content unless assigned to the case
==============  ======================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fundtrail.domain.cases import PERMISSIONS, Role
from fundtrail.domain.cases import Action as CaseAction
from fundtrail.errors import PermissionDeniedError

ROLES = tuple(r.value for r in Role)


class ChainAction(StrEnum):
    """What the service adds to the case layer's actions: analyses of chain data."""

    CHAIN_READ = "chain.read"
    TRACE_RUN = "trace.run"


CHAIN_ROLES: dict[ChainAction, frozenset[Role]] = {
    ChainAction.CHAIN_READ: frozenset({Role.ANALYST, Role.INVESTIGATOR, Role.SUPERVISOR}),
    ChainAction.TRACE_RUN: frozenset({Role.ANALYST, Role.INVESTIGATOR, Role.SUPERVISOR}),
}


class Action:
    """Every action a route may need, by one name (case actions are the case layer's)."""

    CHAIN_READ = ChainAction.CHAIN_READ
    TRACE_RUN = ChainAction.TRACE_RUN
    CASE_READ = CaseAction.READ_CASE
    CASE_CREATE = CaseAction.OPEN_CASE
    CASE_EDIT = CaseAction.EDIT_CASE
    EVIDENCE_PRESERVE = CaseAction.PRESERVE
    EVIDENCE_VERIFY = CaseAction.VERIFY_EVIDENCE
    REQUEST_DRAFT = CaseAction.DRAFT_REQUEST
    REQUEST_APPROVE = CaseAction.APPROVE_REQUEST
    REQUEST_HANDLE = CaseAction.HANDLE_REQUEST
    RECOVERY_READ = CaseAction.READ_RECOVERY
    RECOVERY_WRITE = CaseAction.RECORD_RECOVERY
    AUDIT_READ = CaseAction.READ_AUDIT
    USERS_ADMIN = CaseAction.MANAGE_USERS


AnyAction = CaseAction | ChainAction


def role_may(role: str, action: AnyAction) -> bool:
    """True when ``role`` allows ``action``."""
    try:
        role_ = Role(role)
    except ValueError:
        return False
    if isinstance(action, ChainAction):
        return role_ in CHAIN_ROLES[action]
    return action in PERMISSIONS[role_]


@dataclass(frozen=True)
class Principal:
    """The user behind a request, as authentication established it."""

    user_id: int
    username: str
    role: str
    unit: str | None
    jurisdiction: str | None
    display_name: str | None = None
    via: str = "token"
    token_id: str | None = None

    @property
    def actions(self) -> frozenset[AnyAction]:
        """Every action the role allows."""
        every: list[AnyAction] = [*CaseAction, *ChainAction]
        return frozenset(a for a in every if role_may(self.role, a))

    def may(self, action: AnyAction) -> bool:
        """True when the role allows ``action``."""
        return role_may(self.role, action)


def check(principal: Principal, action: AnyAction) -> None:
    """Raise PermissionDeniedError unless the principal's role allows ``action``."""
    if not principal.may(action):
        allowed = sorted(r.value for r in Role if role_may(r.value, action))
        raise PermissionDeniedError(f"the {principal.role} role may not {action.value} "
                                    f"(allowed: {', '.join(allowed) or 'nobody'})")
