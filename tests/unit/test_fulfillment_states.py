"""FulfillmentOrder state machine: who may do what, in which state, for which method."""

from __future__ import annotations

import itertools

import pytest

from orchestrator.fulfillment.model import TRANSITIONS, Action, allowed_actions, next_state
from orchestrator.order_record.states import CLOSED_WITHOUT_FULFILLING, FULFILLED_STATES, OPEN_STATES, Method, Status
from orchestrator.platform.errors import Conflict, IllegalTransition

S, A, M = Status, Action, Method

# The full legal table, written out independently of the implementation.
PICKUP_PATH = [
    (S.PENDING, A.ACCEPT, S.ACCEPTED),
    (S.ACCEPTED, A.START_PICKING, S.PICKING),
    (S.PICKING, A.PICK, S.PICKING),
    (S.PICKING, A.READY, S.READY_FOR_PICKUP),
    (S.READY_FOR_PICKUP, A.HANDOVER, S.PICKED_UP),
]
SHIPPED_PATH = [
    (S.PENDING, A.ACCEPT, S.ACCEPTED),
    (S.ACCEPTED, A.START_PICKING, S.PICKING),
    (S.PICKING, A.PICK, S.PICKING),
    (S.PICKING, A.PACK, S.PACKED),
    (S.PACKED, A.SHIP, S.SHIPPED),
    (S.SHIPPED, A.DELIVER, S.DELIVERED),
]
REJECTABLE = [S.PENDING, S.ACCEPTED, S.PICKING]
PICKUP_CANCELLABLE = [S.PENDING, S.ACCEPTED, S.PICKING, S.READY_FOR_PICKUP]
SHIPPED_CANCELLABLE = [S.PENDING, S.ACCEPTED, S.PICKING, S.PACKED]


def legal_table(method: Method) -> dict[tuple[Status, Action], Status]:
    pickup = method in (M.PICKUP, M.CURBSIDE)
    table = {(s, a): t for s, a, t in (PICKUP_PATH if pickup else SHIPPED_PATH)}
    for state in REJECTABLE:
        table[(state, A.REJECT)] = S.REJECTED
    for state in PICKUP_CANCELLABLE if pickup else SHIPPED_CANCELLABLE:
        table[(state, A.CANCEL)] = S.CANCELLED
    if pickup:
        table[(S.READY_FOR_PICKUP, A.EXPIRE)] = S.EXPIRED
        table[(S.READY_FOR_PICKUP, A.REMIND)] = S.READY_FOR_PICKUP
    return table


@pytest.mark.parametrize("method", list(Method))
def test_every_legal_transition_leads_to_its_documented_state(method: Method) -> None:
    for (state, action), target in legal_table(method).items():
        assert next_state(state, method, action) is target, (state, action)


@pytest.mark.parametrize("method", list(Method))
def test_every_other_transition_raises_illegal_transition(method: Method) -> None:
    legal = legal_table(method)
    illegal = [(s, a) for s, a in itertools.product(Status, Action) if (s, a) not in legal]
    assert illegal  # sanity: the machine forbids something
    for state, action in illegal:
        with pytest.raises(IllegalTransition):
            next_state(state, method, action)


@pytest.mark.parametrize("method", list(Method))
def test_allowed_actions_are_exactly_the_legal_non_system_actions(method: Method) -> None:
    legal = legal_table(method)
    for state in Status:
        expected = {a.value for (s, a) in legal if s is state and a not in (A.EXPIRE, A.REMIND)}
        assert set(allowed_actions(state, method)) == expected, state


def test_illegal_transition_names_the_state_and_what_is_allowed_instead() -> None:
    with pytest.raises(IllegalTransition) as caught:
        next_state(S.PENDING, M.PICKUP, A.HANDOVER)
    error = caught.value
    assert error.state == "pending"
    assert error.action == "handover"
    assert set(error.allowed) == {"accept", "reject", "cancel"}
    assert error.context["state"] == "pending"
    assert set(error.context["allowed_actions"]) == {"accept", "reject", "cancel"}
    assert "handover" in str(error) and "pending" in str(error)
    assert isinstance(error, Conflict)


def test_illegal_transition_from_a_final_state_allows_nothing() -> None:
    with pytest.raises(IllegalTransition) as caught:
        next_state(S.DELIVERED, M.SHIP, A.CANCEL)
    assert caught.value.allowed == []
    assert caught.value.state == "delivered"


@pytest.mark.parametrize("method", list(Method))
@pytest.mark.parametrize("state", list(Status))
def test_allowed_actions_never_list_system_actions(state: Status, method: Method) -> None:
    listed = allowed_actions(state, method)
    assert not {"expire", "remind"} & set(listed)
    assert all(a in {x.value for x in Action} for a in listed)


@pytest.mark.parametrize(("state", "action"), list(TRANSITIONS))
def test_every_transition_is_offered_to_people_except_the_clocks_expire_and_remind(
    state: Status, action: Action
) -> None:
    # A transition nobody is offered is dead; a clock action offered to people lets staff expire
    # a pickup early or send reminders at will.
    for method in TRANSITIONS[(state, action)][1]:
        offered = action.value in allowed_actions(state, method)
        assert offered is (action not in {A.EXPIRE, A.REMIND}), (state, method, action)


def test_ready_for_pickup_lists_handover_and_cancel_but_not_expire() -> None:
    assert set(allowed_actions(S.READY_FOR_PICKUP, M.PICKUP)) == {"handover", "cancel"}


def test_the_clock_may_expire_or_remind_a_ready_pickup() -> None:
    assert next_state(S.READY_FOR_PICKUP, M.PICKUP, A.EXPIRE) is S.EXPIRED
    assert next_state(S.READY_FOR_PICKUP, M.CURBSIDE, A.EXPIRE) is S.EXPIRED
    assert next_state(S.READY_FOR_PICKUP, M.PICKUP, A.REMIND) is S.READY_FOR_PICKUP


@pytest.mark.parametrize("method", [M.SHIP, M.TRANSFER])
def test_ready_is_only_for_pickup_and_curbside(method: Method) -> None:
    assert "ready" not in allowed_actions(S.PICKING, method)
    with pytest.raises(IllegalTransition) as caught:
        next_state(S.PICKING, method, A.READY)
    assert "pack" in caught.value.allowed


@pytest.mark.parametrize("method", [M.PICKUP, M.CURBSIDE])
def test_pack_ship_and_deliver_are_only_for_ship_and_transfer(method: Method) -> None:
    assert "pack" not in allowed_actions(S.PICKING, method)
    assert "ready" in allowed_actions(S.PICKING, method)
    for state, action in [(S.PICKING, A.PACK), (S.PACKED, A.SHIP), (S.SHIPPED, A.DELIVER)]:
        with pytest.raises(IllegalTransition):
            next_state(state, method, action)


@pytest.mark.parametrize("method", [M.SHIP, M.TRANSFER])
def test_expire_and_remind_do_not_apply_to_shipped_fulfillments(method: Method) -> None:
    for state in Status:
        for action in (A.EXPIRE, A.REMIND):
            with pytest.raises(IllegalTransition):
                next_state(state, method, action)


@pytest.mark.parametrize("method", list(Method))
def test_nothing_can_be_cancelled_once_handed_over_or_shipped(method: Method) -> None:
    for state in (S.PICKED_UP, S.SHIPPED, S.DELIVERED, S.REJECTED, S.EXPIRED, S.CANCELLED):
        with pytest.raises(IllegalTransition):
            next_state(state, method, A.CANCEL)


@pytest.mark.parametrize("method", list(Method))
def test_reject_is_possible_until_the_goods_are_ready_or_packed(method: Method) -> None:
    for state in REJECTABLE:
        assert next_state(state, method, A.REJECT) is S.REJECTED
    for state in (S.READY_FOR_PICKUP, S.PACKED):
        with pytest.raises(IllegalTransition):
            next_state(state, method, A.REJECT)


@pytest.mark.parametrize("method", list(Method))
def test_picking_may_record_picks_without_leaving_picking(method: Method) -> None:
    assert next_state(S.PICKING, method, A.PICK) is S.PICKING
    with pytest.raises(IllegalTransition):
        next_state(S.ACCEPTED, method, A.PICK)


@pytest.mark.parametrize("method", list(Method))
def test_the_happy_path_walks_from_pending_to_a_fulfilled_state(method: Method) -> None:
    path = PICKUP_PATH if method.is_pickup else SHIPPED_PATH
    state = S.PENDING
    for _, action, _ in path:
        state = next_state(state, method, action)
    assert state in FULFILLED_STATES
    assert state is (S.PICKED_UP if method.is_pickup else S.DELIVERED)
    assert allowed_actions(state, method) == []


def test_method_is_pickup_and_capability() -> None:
    assert M.PICKUP.is_pickup and M.CURBSIDE.is_pickup
    assert not M.SHIP.is_pickup and not M.TRANSFER.is_pickup
    assert M.TRANSFER.capability == "ship"
    assert M.SHIP.capability == "ship"
    assert M.PICKUP.capability == "pickup"
    assert M.CURBSIDE.capability == "curbside"


def test_state_groups_partition_every_state() -> None:
    groups = [OPEN_STATES, FULFILLED_STATES, CLOSED_WITHOUT_FULFILLING]
    assert set().union(*groups) == set(Status)
    assert sum(len(g) for g in groups) == len(Status)


@pytest.mark.parametrize("method", list(Method))
def test_closed_states_offer_no_actions(method: Method) -> None:
    for state in CLOSED_WITHOUT_FULFILLING | {S.PICKED_UP, S.DELIVERED}:
        assert allowed_actions(state, method) == []
