from chargeflow.backoff import backoff_seconds


def test_doubles_from_the_base_up_to_the_cap_without_jitter():
    assert [backoff_seconds(n, base=2, cap=300, jitter=False) for n in range(1, 11)] == [
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        300,
        300,
    ]
    assert backoff_seconds(10_000, base=2, cap=300, jitter=False) == 300  # no overflow


def test_jitter_stays_between_half_and_all_of_the_step():
    for attempt in range(1, 12):
        ceiling = min(60, 5 * 2 ** (attempt - 1))
        draws = [backoff_seconds(attempt, base=5, cap=60) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in draws)
        assert len(set(draws)) > 1
