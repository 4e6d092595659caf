"""The request summary the HTTP and micro-batcher benchmarks share."""

from pipejit.bench.serve import request_summary


def test_rates_per_round_and_latency_percentiles_over_all_rounds():
    runs = [
        {"seconds": 2.0, "latencies": [0.1, 0.2, 0.3, 0.4]},
        {"seconds": 1.0, "latencies": [0.1, 0.1, 0.1, 0.5]},
    ]
    summary = request_summary(runs)
    assert summary["requests_per_s_each_round"] == [2.0, 4.0]
    assert summary["requests_per_s"] == 3.0
    assert summary["p50_ms"] == 200.0 and summary["p99_ms"] == 500.0
