"""Load on a real server (loopback, bounded): 50 concurrent submissions of a 24³ map (json
only, 2 workers) while 8 readers fetch the archive page: every job completes exactly once
and no request fails. The figures (submissions/s, jobs/s, archive p50/p95) are printed;
benchmarks/bench_service.py runs the same load and also checks p95 <= 200 ms."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
import bench_service  # noqa: E402


@pytest.mark.slow
def test_fifty_concurrent_submissions_complete_exactly_once(tmp_path):
    f = bench_service.run(str(tmp_path / "data"), jobs=50, readers=8, workers=2, size=24,
                          timeout=120)
    print(f"\n{f['submissions_per_s']:.1f} submissions/s, {f['jobs_per_s']:.2f} jobs/s, "
          f"archive p50 {1000 * f['p50_s']:.0f} ms, p95 {1000 * f['p95_s']:.0f} ms over "
          f"{f['archive_requests']} requests")
    assert f["failures"] == []  # no request failed, nothing timed out
    assert f["submitted"] == f["rows"] == f["distinct_ids"] == 50  # none lost, none twice
    assert f["done_once"] == 50  # each done, on its first and only attempt
    assert f["reports"] == 50  # one report.json each
    assert f["archive_requests"] > 0
