"""Sim time keeps to the requested speed, in whole ticks, and slips rather than bursts."""
import pytest

from dfr_sim.pacing import LateHold, Pacer


def test_first_call_only_starts_the_schedule():
    pacer = Pacer(0.1, 10.0)
    assert pacer.ticks_due(100.0) == 0


def test_ticks_follow_wall_time_times_speed():
    pacer = Pacer(0.1, 10.0)
    pacer.ticks_due(0.0)
    assert pacer.ticks_due(0.1) == 10       # 0.1 s wall at 10x is 1 s sim: ten 0.1 s ticks
    for _ in range(10):
        pacer.advance()
    assert pacer.ticks_due(0.1) == 0
    assert pacer.sim_ns == 1_000_000_000


def test_sim_time_is_exact_in_integer_nanoseconds():
    pacer = Pacer(0.1, 1.0)
    for _ in range(1000):
        pacer.advance()
    assert pacer.sim_ns == 100_000_000_000


def test_a_long_stall_slips_the_schedule_instead_of_bursting():
    pacer = Pacer(0.1, 10.0, max_lag_s=0.25)
    pacer.ticks_due(0.0)
    due = pacer.ticks_due(5.0)              # 5 s wall behind: 500 ticks owed
    assert due == 25                        # capped at 0.25 s wall worth of ticks
    for _ in range(due):
        pacer.advance()
    assert pacer.ticks_due(5.0) == 0        # the rest is forgiven, not owed
    assert pacer.ticks_due(5.1) == 10


def test_real_time_factor():
    pacer = Pacer(0.1, 10.0)
    pacer.ticks_due(0.0)
    for _ in range(50):
        pacer.advance()
    assert pacer.real_time_factor(1.0) == pytest.approx(5.0)


@pytest.mark.parametrize("tick,speed", [(0.0, 1.0), (-0.1, 1.0), (0.1, 0.0), (0.1, float("nan"))])
def test_bad_settings_are_refused(tick, speed):
    with pytest.raises(ValueError):
        Pacer(tick, speed)


def test_resync_owes_nothing_for_time_held():
    pacer = Pacer(0.1, 10.0)
    pacer.ticks_due(0.0)
    for _ in range(pacer.ticks_due(0.1)):
        pacer.advance()
    pacer.resync(2.0)                       # held for 1.9 s wall
    assert pacer.ticks_due(2.0) == 0
    assert pacer.ticks_due(2.1) == 10       # and on at the set speed


def test_a_late_client_holds_sim_time_until_it_catches_up():
    hold = LateHold(max_lag_s=0.5, max_wall_s=1.0)
    assert not hold.check(0.0, 10.0, {"uav1": 9.8}).hold           # within the lag
    assert hold.check(0.1, 10.0, {"uav1": 9.4}).hold               # behind: wait
    assert hold.check(0.6, 10.0, {"uav1": 9.4}).hold
    caught_up = hold.check(0.7, 10.0, {"uav1": 9.9})
    assert not caught_up.hold and caught_up.resume and not caught_up.released


def test_a_client_behind_past_the_wall_limit_is_let_go_until_it_shows_progress():
    hold = LateHold(max_lag_s=0.5, max_wall_s=1.0)
    assert hold.check(0.0, 10.0, {"uav1": 9.0, "uav2": 9.9}).hold
    released = hold.check(1.5, 10.0, {"uav1": 9.0, "uav2": 9.9})
    assert not released.hold and released.resume
    assert released.released == (("uav1", 1.0, 1.5),)
    # A dead client cannot stop the clock: its old mark no longer holds...
    assert not hold.check(1.6, 20.0, {"uav1": 9.0}).hold
    # ...but a newer mark, behind again, does.
    assert hold.check(1.7, 20.0, {"uav1": 19.0}).hold


def test_no_clients_never_hold():
    hold = LateHold(max_lag_s=0.5, max_wall_s=1.0)
    decision = hold.check(0.0, 100.0, {})
    assert not decision.hold and not decision.resume
