"""The legal-request state machine: transitions, the approval rule, reachability (with hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fundtrail.domain.cases import Role
from fundtrail.domain.requests import (
    FINAL_STATES,
    TRANSITIONS,
    RequestAction,
    RequestState,
    allowed_actions,
    check_approval,
    next_state,
    reachable,
    replay,
)
from fundtrail.errors import InputError, InvalidTransitionError, PermissionDeniedError

A, S = RequestAction, RequestState


def test_the_path_of_a_request_that_is_answered() -> None:
    steps = replay("R1", [A.APPROVE, A.SEND, A.ACKNOWLEDGE, A.ANSWER])
    assert [s.target for s in steps] == [S.APPROVED, S.SENT, S.ACKNOWLEDGED, S.ANSWERED]


def test_an_unacknowledged_request_can_still_be_answered_refused_or_expire() -> None:
    for action, state in ((A.ANSWER, S.ANSWERED), (A.REFUSE, S.REFUSED), (A.EXPIRE, S.EXPIRED)):
        assert next_state("R1", S.SENT, action) is state


def test_sending_a_draft_is_refused_and_says_what_is_possible() -> None:
    with pytest.raises(InvalidTransitionError, match=r"R7 is draft; cannot send it \(possible: approve\)"):
        next_state("R7", S.DRAFT, A.SEND)


def test_final_states_allow_nothing() -> None:
    for state in FINAL_STATES:
        assert allowed_actions(state) == []
        with pytest.raises(InvalidTransitionError, match="final state"):
            next_state("R1", state, A.ANSWER)


def test_invalid_transition_is_bad_input() -> None:
    assert issubclass(InvalidTransitionError, InputError)


def test_approval_needs_a_supervisor_who_did_not_draft_it() -> None:
    check_approval("R1", author="ivo", approver="sue", approver_role=Role.SUPERVISOR)
    with pytest.raises(PermissionDeniedError, match="they drafted it"):
        check_approval("R1", author="sue", approver="sue", approver_role=Role.SUPERVISOR)
    with pytest.raises(PermissionDeniedError, match="needs a supervisor"):
        check_approval("R1", author="ivo", approver="ana", approver_role=Role.INVESTIGATOR)


def test_every_state_is_reachable_from_draft_and_nothing_leaves_a_final_state() -> None:
    assert reachable() == frozenset(RequestState)
    for state in FINAL_STATES:
        assert reachable(state) == {state}


@given(st.lists(st.sampled_from(list(RequestAction)), max_size=12))
def test_any_sequence_of_valid_transitions_ends_in_a_reachable_state(actions: list[RequestAction]) -> None:
    state = S.DRAFT
    for action in actions:
        if (state, action) in TRANSITIONS:
            state = next_state("R1", state, action)
        else:
            with pytest.raises(InvalidTransitionError):
                next_state("R1", state, action)
    assert state in reachable()
    # the states passed through are exactly those replay gives for the valid subsequence
    valid: list[RequestAction] = []
    s = S.DRAFT
    for action in actions:
        if (s, action) in TRANSITIONS:
            valid.append(action)
            s = TRANSITIONS[(s, action)]
    steps = replay("R1", valid)
    assert (steps[-1].target if steps else S.DRAFT) is state
    if state.is_final:
        assert allowed_actions(state) == []


@given(st.lists(st.sampled_from(list(RequestAction)), min_size=1, max_size=8))
def test_replay_fails_at_the_first_impossible_action(actions: list[RequestAction]) -> None:
    state = S.DRAFT
    for i, action in enumerate(actions):
        if (state, action) not in TRANSITIONS:
            with pytest.raises(InvalidTransitionError, match=f"cannot {action.value}"):
                replay("R1", actions)
            assert i >= 0
            return
        state = TRANSITIONS[(state, action)]
    assert replay("R1", actions)[-1].target is state
