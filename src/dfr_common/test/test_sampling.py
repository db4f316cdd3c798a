"""dfr_common.sampling: a stream kept to a rate by its stamps."""
from dfr_common.sampling import sample_due


def test_a_sample_is_due_a_period_after_the_last_despite_floating_point():
    assert sample_due(-float("inf"), 0.0, 5.0)
    assert sample_due(0.2, 0.2 + 0.19999999, 5.0)        # 0.2 s apart, as floating point makes it
    assert not sample_due(0.2, 0.3, 5.0)
    assert sample_due(0.0, 0.6, 2.0) and not sample_due(0.0, 0.4, 2.0)


def test_no_rate_keeps_every_sample():
    assert sample_due(1.0, 1.0, 0.0) and sample_due(1.0, 1.0, -1.0)
