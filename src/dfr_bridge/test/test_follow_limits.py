"""Follow setpoints are held to the mission's limits, and the bridge says which limit held them."""
import numpy as np
import pytest
from shapely.geometry import Polygon

from dfr_bridge.follow_limits import FollowLimits, FollowLimitsConfig

SCENE = np.array([100.0, 0.0, 0.0])


def limits(area=None, **overrides):
    return FollowLimits(FollowLimitsConfig(**{"max_speed_m_s": 10.0, "min_altitude_m": 30.0, "max_altitude_m": 120.0,
                                              "max_distance_m": 500.0, **overrides}), SCENE, area)


def test_a_setpoint_within_every_limit_is_flown_as_asked():
    out = limits().clamp((150.0, 20.0, 40.0), (5.0, 0.0, 1.0))
    assert out.position == pytest.approx([150.0, 20.0, 40.0]) and out.limits == ()
    assert out.velocity == pytest.approx([5.0, 0.0, 0.0])          # no climb rate: heights are positions


def test_the_leash_holds_it_at_the_edge_with_no_push_outward():
    out = limits().clamp((1100.0, 0.0, 40.0), (8.0, 0.0, 0.0))
    assert out.position == pytest.approx([600.0, 0.0, 40.0])
    assert out.velocity == pytest.approx([0.0, 0.0, 0.0])
    assert out.limits == ("500 m from the incident",)


def test_the_floor_ceiling_and_speed_are_kept():
    low = limits().clamp((100.0, 0.0, 5.0), (30.0, 40.0, 0.0))
    assert low.position[2] == 30.0 and np.linalg.norm(low.velocity) == pytest.approx(10.0)
    assert low.limits == ("altitude 30-120 m", "10 m/s")
    assert limits().clamp((100.0, 0.0, 300.0), (0, 0, 0)).position[2] == 120.0


def test_the_permitted_area_keeps_it_inside_by_a_margin():
    area = Polygon([(0, -200), (200, -200), (200, 200), (0, 200)])
    out = limits(area, edge_margin_m=10.0).clamp((350.0, 0.0, 40.0), (8.0, 0.0, 0.0))
    assert out.position[:2] == pytest.approx([190.0, 0.0], abs=1e-6)
    assert out.limits == ("the permitted area",)
