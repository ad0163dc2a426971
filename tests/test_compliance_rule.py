"""The regulation in code (agent/regulation.py): the verdict table over every combination of
fact states, the multi-component combination, and the manifest check. No model."""

import itertools

import pytest

from agent import regulation as R

V, C, N = R.VIOLATES, R.COMPLIES, R.NOT_STATED


@pytest.mark.parametrize("year,material,condition", list(itertools.product(R.STATES, repeat=3)))
def test_verdict_table(year, material, condition):
    """27 rows: any violating fact -> non_compliant; all three complying -> compliant;
    anything else (nothing violates, something not stated) -> undetermined."""
    got = R.verdict({"year": year, "material": material, "condition": condition})
    states = (year, material, condition)
    if V in states:
        assert got == "non_compliant"
    elif states == (C, C, C):
        assert got == "compliant"
    else:
        assert got == "undetermined"
    assert R.compliant_field(got) is {"compliant": True, "non_compliant": False, "undetermined": None}[got]


def test_verdict_table_spelled_out():
    # the rows a regulator asks about first
    assert R.verdict({"year": N, "material": C, "condition": C}) == "undetermined"     # no year -> never compliant
    assert R.verdict({"year": N, "material": V, "condition": N}) == "non_compliant"    # plastic alone is enough
    assert R.verdict({"year": C, "material": C, "condition": N}) == "undetermined"
    assert R.verdict({"year": N, "material": N, "condition": N}) == "undetermined"
    with pytest.raises(ValueError):
        R.verdict({"year": "maybe", "material": C, "condition": C})


@pytest.mark.parametrize("year,material,condition,states", [
    (1994, "steel", "good", (V, C, C)), (1995, "steel", "good", (C, C, C)), (None, "iron", "new", (N, V, C)),
    (2010, "plastic", None, (C, V, N)), (2030, "aluminium", "fair", (C, C, V)), (1950, None, "poor", (V, N, V)),
    (2001, "carbon fiber", "excellent", (C, C, C)),
])
def test_facts_to_states_use_the_thresholds(year, material, condition, states):
    assert tuple(R.states_of(year, material, condition).values()) == states


def test_several_components_non_compliant_if_any_compliant_only_if_all():
    ok = {"year": C, "material": C, "condition": C}
    bad = {"year": V, "material": C, "condition": C}
    part = {"year": N, "material": C, "condition": C}
    assert R.verdict(R.combine([ok, ok])) == "compliant"
    assert R.verdict(R.combine([ok, bad])) == "non_compliant"
    assert R.verdict(R.combine([part, bad])) == "non_compliant"
    assert R.verdict(R.combine([ok, part])) == "undetermined"
    for a, b in itertools.product([ok, bad, part], repeat=2):      # combine agrees with per-component verdicts
        vs = {R.verdict(a), R.verdict(b)}
        want = "non_compliant" if "non_compliant" in vs else "compliant" if vs == {"compliant"} else "undetermined"
        assert R.verdict(R.combine([a, b])) == want


def test_manifest_carries_the_thresholds_and_a_foreign_rule_is_refused():
    m = R.to_manifest()
    assert m["year_cutoff"] == 1995 and m["bad_materials"] == ["plastic", "iron"]
    assert m["bad_conditions"] == ["fair", "poor"] and m["states"] == ["violates", "complies", "not_stated"]
    R.check_manifest(m)
    R.check_manifest(None)                                  # older bundles: no section
    with pytest.raises(ValueError, match="year_cutoff"):
        R.check_manifest({**m, "year_cutoff": 2000})


def test_the_corpus_labels_with_the_same_rule():
    from export.compliance import corpus as Co
    assert Co.CUTOFF == R.YEAR_CUTOFF and Co.BAD_MATERIALS == set(R.BAD_MATERIALS)
    assert Co.BAD_CONDITIONS == set(R.BAD_CONDITIONS)


def test_read_fact_complies_only_when_sure_and_a_year_only_from_a_year():
    """The two rules between the heads and the verdict (agent/regulation.read_fact)."""
    assert R.read_fact("material", [0.1, 0.85, 0.05], 0.8) == C
    assert R.read_fact("material", [0.1, 0.7, 0.2], 0.8) == N          # leaning complies is not enough
    assert R.read_fact("material", [0.45, 0.4, 0.15], 0.8) == V        # a doubtful violation stays one
    assert R.read_fact("condition", [0.0, 0.0, 1.0], 0.8) == N
    assert R.read_fact("year", [0.0, 1.0, 0.0], 0.8, has_year=False) == N
    assert R.read_fact("year", [1.0, 0.0, 0.0], 0.8, has_year=False) == N
    assert R.read_fact("year", [0.0, 1.0, 0.0], 0.8, has_year=True) == C
    # a head can never make a note compliant below the bar, whatever the other two say
    for p in (0.5, 0.6, 0.79):
        st = {"year": R.read_fact("year", [0, p, 1 - p], 0.8), "material": C, "condition": C}
        assert R.verdict(st) == "undetermined"


def test_a_year_far_in_the_future_is_no_manufacture_year():
    assert R.plausible_year(2030, this_year=2026) and R.plausible_year(1900, this_year=2026)
    assert not R.plausible_year(2031, this_year=2026) and not R.plausible_year(2075, this_year=2026)
    assert R.plausible_year(2033, this_year=2029)
    # a head unit whose clock came up in 1970 still reads this decade's years
    assert R.plausible_year(2026, this_year=1970) and R.plausible_year(1899) is False
    assert R.plausible_year(None) is False
