"""An execution environment's lifecycle (wsctl.local.functions.lifecycle), without processes: each
Runtime API call in and out of turn, and RAPID's refusals as values (docs/lambda-runtime.md#runtime-api)."""

import pytest

from wsctl.local.functions.lifecycle import GONE, INVALID_ID, Lifecycle, Phase, out_of_turn


def answered(life: Lifecycle, request_id: str = "r1") -> Lifecycle:
    assert life.next() is None
    life.hand_out(request_id)
    assert life.answer(request_id, "INVOKE_RESPONSE") is None
    return life


def test_an_invocation_goes_starting_waiting_busy_answered_and_back_to_waiting():
    life = Lifecycle()
    assert (life.phase, life.initialised, life.at_next) == (Phase.STARTING, False, False)
    assert life.next() is None and life.initialised and life.at_next
    life.hand_out("r1")
    assert (life.phase, life.request_id, life.at_next) == (Phase.BUSY, "r1", False)
    assert life.answer("r1", "INVOKE_ERROR") is None and life.phase is Phase.ANSWERED
    assert life.next() is None and (life.phase, life.request_id) == (Phase.WAITING, None)


def test_asking_for_the_next_event_twice_or_with_one_in_hand_is_out_of_turn():
    life = Lifecycle()
    life.next()
    assert life.next() == out_of_turn("INVOKE_NEXT", "INVOKE_NEXT")
    life.hand_out("r1")
    assert life.next() == out_of_turn("INVOKE_NEXT", "INVOKE_NEXT") and life.phase is Phase.BUSY


@pytest.mark.parametrize("to_state", ["INVOKE_RESPONSE", "INVOKE_ERROR"])
def test_an_answer_without_an_event_is_403_and_for_another_or_an_answered_id_400(to_state):
    life = Lifecycle()
    assert life.answer("r1", to_state) == out_of_turn("READY", to_state)  # initialising
    life.next()
    assert life.answer("r1", to_state).status == 403  # waiting, no event yet
    life.hand_out("r1")
    assert life.answer("r2", to_state) == INVALID_ID and life.phase is Phase.BUSY
    assert life.answer("r1", to_state) is None
    assert life.answer("r1", to_state) == INVALID_ID  # answered already
    assert out_of_turn("READY", to_state).message == ("State transition from READY to %s failed for runtime. "
                                                      "Error: invalid state transition" % to_state)


def test_an_init_error_is_taken_only_while_initialising():
    life = Lifecycle()
    assert life.init_error() is None and life.init_failed
    assert answered(Lifecycle()).init_error() == out_of_turn("READY", "INIT_ERROR")


def test_a_dead_environment_answers_every_call_with_a_server_error():
    life = answered(Lifecycle())
    life.next()
    life.hand_out("r2")
    life.die()  # a timeout or a crash mid-invocation
    assert life.dead and life.next() == GONE and not life.at_next
    assert life.answer("r2", "INVOKE_RESPONSE") == INVALID_ID  # too late for that event
    fresh = Lifecycle()
    fresh.die()
    assert fresh.answer("r1", "INVOKE_RESPONSE") == GONE


def test_a_runtime_whose_next_connection_dropped_may_ask_again():
    life = Lifecycle()
    life.next()
    life.left_next()
    assert life.phase is Phase.ANSWERED and life.next() is None
    busy = Lifecycle()
    busy.next()
    busy.hand_out("r1")
    busy.left_next()  # only a waiting runtime is affected
    assert busy.phase is Phase.BUSY
