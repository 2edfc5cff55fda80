"""Bjøntegaard delta rate (VCEG-M33): the average bitrate difference at equal quality.

Each curve's log-rate is fitted as a cubic polynomial of the quality (PSNR, or MS-SSIM
in dB), both fits are integrated over the quality range the curves share, and the mean
log-rate difference is turned into a percentage. Negative: the test codec needs fewer
bits than the anchor.
"""
from __future__ import annotations

import numpy as np


def bd_rate(anchor_rate, anchor_quality, test_rate, test_quality) -> float:
    """Percent rate difference of test against anchor; NaN if the curves do not overlap."""
    r1, q1 = _clean(anchor_rate, anchor_quality)
    r2, q2 = _clean(test_rate, test_quality)
    if len(q1) < 2 or len(q2) < 2:
        return float("nan")
    lo, hi = max(q1.min(), q2.min()), min(q1.max(), q2.max())
    if hi <= lo:
        return float("nan")
    p1 = np.polyfit(q1, np.log(r1), min(3, len(q1) - 1))
    p2 = np.polyfit(q2, np.log(r2), min(3, len(q2) - 1))
    i1, i2 = np.polyint(p1), np.polyint(p2)
    avg1 = (np.polyval(i1, hi) - np.polyval(i1, lo)) / (hi - lo)
    avg2 = (np.polyval(i2, hi) - np.polyval(i2, lo)) / (hi - lo)
    return float((np.exp(avg2 - avg1) - 1.0) * 100.0)


def _clean(rate, quality):
    r = np.asarray(rate, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    r, q = r[keep], q[keep]
    order = np.argsort(q)
    return r[order], q[order]
