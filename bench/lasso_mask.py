"""The cost of a Vary (Region) mask with freehand lassos.

    python bench/lasso_mask.py [--rounds 10]

For a typical Midjourney upscale (1456 x 816) and for the largest mask Atelier draws
(4096 x 4096, mj-proxy's cap), with the rectangle alone (as before lassos), with one
rectangle and one lasso, and with the most a request may carry (20 lassos of 200 points
each): printed, the median and worst time of media.region_mask (draw + PNG, what
mj-proxy's `maskBase64` costs a worker thread), of MaaS-MJ's polygon areas (arithmetic
only), and the PNG's size.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import media
from bot.providers.maas_mj import inpaint_areas

Polygon = tuple[tuple[float, float], ...]


def lasso(n: int, points: int = 200) -> Polygon:
    """A wobbly closed stroke, one of 20 spread over the picture."""
    cx, cy = 0.1 + 0.2 * (n % 5), 0.125 + 0.25 * (n // 5)
    radius = 0.08
    return tuple(
        (
            cx + radius * (1 + 0.3 * math.sin(7 * a)) * math.cos(a),
            cy + radius * (1 + 0.3 * math.sin(7 * a)) * math.sin(a),
        )
        for a in (2 * math.pi * k / points for k in range(points))
    )


def timed(rounds: int, work: Callable[[], object]) -> tuple[float, float]:
    """(median, worst) milliseconds of `rounds` runs of `work`."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    rounds = parser.parse_args().rounds
    cases: dict[str, tuple[list[tuple[float, float, float, float]], list[Polygon]]] = {
        "1 box (as before lassos)": ([(0.1, 0.1, 0.3, 0.3)], []),
        "1 box + 1 lasso": ([(0.1, 0.1, 0.3, 0.3)], [lasso(7)]),
        "20 lassos x 200 points": ([], [lasso(n) for n in range(20)]),
    }
    print(f"{'size':>11}  {'areas':<24} {'mask p50':>9} {'max':>7} {'png':>8} {'maas p50':>9}")
    for size in ((1456, 816), (4096, 4096)):
        for name, (regions, polygons) in cases.items():
            png = media.region_mask(size, regions, polygons)
            mask_p50, mask_max = timed(
                rounds, functools.partial(media.region_mask, size, regions, polygons)
            )
            maas_p50, _ = timed(rounds, functools.partial(inpaint_areas, regions, size, polygons))
            print(
                f"{size[0]:>5}x{size[1]:<5}  {name:<24} {mask_p50:>7.1f}ms {mask_max:>5.1f}ms "
                f"{len(png) / 1024:>6.0f}KB {maas_p50:>7.2f}ms"
            )


if __name__ == "__main__":
    main()
