"""The PI controller against hand-worked steps of Algorithm 1 (SPEC Part 1)."""

from __future__ import annotations

import json
import math

import pytest

from gm.control import PIController, p_term
from gm.errors import GMError


def test_p_term_values_and_no_overflow():
    assert p_term(0.0, 0.01) == pytest.approx(0.005)                 # 0.01 / (1 + 1)
    assert p_term(6.0, 0.01) == pytest.approx(0.01 / 404.428793, rel=1e-6)   # 1 + e^6
    assert p_term(-6.0, 0.01) == pytest.approx(0.01 * 403.428793 / 404.428793, rel=1e-6)
    assert p_term(5000.0, 0.01) == 0.0          # math.exp(5000) would raise OverflowError
    assert p_term(-5000.0, 0.01) == pytest.approx(0.01)


def test_hand_worked_sequence_with_hold_and_clip():
    # Set point 10 nats, Kp 0.01, Ki 0.001, β in [1, 1.05]; init I = 0, β(0) = 0.
    c = PIController(kl_target=10.0, kp=0.01, ki=0.001, beta_min=1.0, beta_max=1.05)
    # t=1: KL 4 -> e = 6. β(0) = 0 is below β_min and e > 0 would push further down: I held at 0.
    #      P = 0.01 / (1 + e^6) = 2.4726e-5; β = 1.0000247.
    assert c.update(4.0) == pytest.approx(1.0000247, abs=1e-7)
    assert c.held and c.i_term == 0.0
    # t=2: KL 30 -> e = -20, inside the range: I = 0 + 0.001 * 20 = 0.02; P = 0.01 (to 2e-11).
    assert c.update(30.0) == pytest.approx(1.03, abs=1e-9)
    assert not c.held and c.i_term == pytest.approx(0.02)
    # t=3: KL 50 -> e = -40: I = 0.06; P + I + 1 = 1.07 is clipped to β_max = 1.05.
    assert c.update(50.0) == pytest.approx(1.05)
    assert c.beta_raw == pytest.approx(1.07) and c.i_term == pytest.approx(0.06)
    # t=4: KL 40 -> e = -30. β(t-1) = 1.07 > β_max and e < 0 would push it higher: I held at 0.06.
    assert c.update(40.0) == pytest.approx(1.05)
    assert c.held and c.i_term == pytest.approx(0.06) and c.beta_raw == pytest.approx(1.07)
    # t=5: KL 5 -> e = 5: the error turned around, so I integrates again: I = 0.06 - 0.005 = 0.055;
    #      P = 0.01 / (1 + e^5) = 6.693e-5; P + I + 1 = 1.0550669 is still clipped.
    assert c.update(5.0) == pytest.approx(1.05)
    assert not c.held and c.i_term == pytest.approx(0.055)
    assert c.beta_raw == pytest.approx(1.0550669, abs=1e-7)
    # t=6: KL 0 -> e = 10: I = 0.045; P = 4.54e-7; β = 1.0450005, back inside the range.
    assert c.update(0.0) == pytest.approx(1.0450005, abs=1e-7)
    assert c.i_term == pytest.approx(0.045)
    # t=7: KL at the set point -> e = 0: I unchanged, P = Kp / 2 = 0.005.
    assert c.update(10.0) == pytest.approx(1.05)
    assert c.p == pytest.approx(0.005) and c.error == 0.0 and c.step == 7


def test_floor_is_left_when_kl_overshoots():
    """The literal rule (hold I while β(t-1) is out of range) would park β at β_min for ever here."""
    c = PIController(kl_target=14.0, beta_min=1.0, beta_max=100.0)
    c.update(2.0)                                  # held (β(0) = 0); I = 0
    assert c.update(2.0) == 1.0                    # I = -0.012 -> P + I + 1 < 1: clipped to the floor
    assert c.i_term == pytest.approx(-0.012)
    c.update(2.0)                                  # below the floor, e > 0: held
    assert c.held and c.i_term == pytest.approx(-0.012)
    beta = c.update(30.0)                          # e = -16 points back up: I = -0.012 + 0.016
    assert not c.held and c.i_term == pytest.approx(0.004)
    assert beta == pytest.approx(1.0 + 0.01 / (1 + math.exp(-16)) + 0.004)
    assert beta > 1.0


def test_state_round_trips_through_json():
    a = PIController(kl_target=8.0, beta_min=0.5, beta_max=3.0)
    for kl in (1.0, 20.0, 25.0, 12.0, 3.0):
        a.update(kl)
    state = json.loads(json.dumps(a.state_dict()))
    b = PIController(kl_target=8.0, beta_min=0.5, beta_max=3.0)
    b.load_state_dict(state)
    assert b.state_dict() == a.state_dict()
    for kl in (30.0, 7.5, 0.0, 9.0):
        assert a.update(kl) == b.update(kl)
    assert a.state_dict() == b.state_dict()


def test_non_finite_kl_leaves_state_alone():
    c = PIController(kl_target=8.0)
    c.update(20.0)
    before = c.state_dict()
    assert c.update(float("nan")) == before["beta"]
    assert c.update(float("inf")) == before["beta"]
    assert c.state_dict() == before


def test_bad_settings_and_damaged_state_are_user_errors():
    with pytest.raises(GMError, match="beta_min"):
        PIController(kl_target=8.0, beta_min=2.0, beta_max=1.0)
    with pytest.raises(GMError, match="kl_target"):
        PIController(kl_target=float("nan"))
    with pytest.raises(GMError, match="controller state"):
        PIController(kl_target=8.0).load_state_dict({"i_term": 0.0})
