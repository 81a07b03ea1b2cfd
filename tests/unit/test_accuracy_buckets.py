"""Lead buckets: the boundaries fall where the contract puts them."""

from __future__ import annotations

import numpy as np

from nordiqd.accuracy.buckets import BUCKETS, bucket_of_lead


def test_five_minute_steps_over_eight_hours() -> None:
    b = bucket_of_lead(96, 300)
    names = [BUCKETS[i] for i in b]
    # Step h's actual is known (h + 1) * 300 s after the issue.
    assert names[:12] == ["0-1h"] * 12  # leads 5 min .. 60 min
    assert names[12] == "1-4h" and names[47] == "1-4h"  # 65 min, 240 min
    assert names[48] == "4-8h" and names[95] == "4-8h"  # 245 min, 480 min
    assert np.bincount(b).tolist() == [12, 36, 48]


def test_a_horizon_past_eight_hours_stays_in_the_last_bucket() -> None:
    b = bucket_of_lead(12, 3600)
    assert [BUCKETS[i] for i in b] == ["0-1h"] + ["1-4h"] * 3 + ["4-8h"] * 8


def test_steps_that_do_not_divide_the_hour() -> None:
    b = bucket_of_lead(3, 2400)  # leads 40, 80, 120 min
    assert [BUCKETS[i] for i in b] == ["0-1h", "1-4h", "1-4h"]
