"""Every app against its reference image: pixels within a small tolerance, never bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.golden.cases import CASES, path
from tests.support import require
from tidings.content.render.testing import block_difference, dejavu_missing, pixel_difference

# Antialiasing and FreeType versions move a few grey levels; a missing price or a shifted line
# moves a block by tens.
MAX_MEAN_DIFFERENCE = 1.5
MAX_BLOCK_DIFFERENCE = 24.0


@pytest.mark.parametrize("name", sorted(CASES))
def test_render_matches_golden(name: str, artifacts: Path) -> None:
    require(dejavu_missing())
    actual = CASES[name]()
    expected = Image.open(path(name)).convert("RGB")
    mean = pixel_difference(actual, expected)
    block = block_difference(actual, expected)
    if mean > MAX_MEAN_DIFFERENCE or block > MAX_BLOCK_DIFFERENCE:
        actual.save(artifacts / f"golden-{name}.png")
    assert actual.size == expected.size
    assert mean <= MAX_MEAN_DIFFERENCE, f"{name}: see test-artifacts/golden-{name}.png"
    assert block <= MAX_BLOCK_DIFFERENCE, f"{name}: see test-artifacts/golden-{name}.png"


def test_the_comparison_notices_a_missing_price() -> None:
    require(dejavu_missing())
    image = CASES["recently_viewed"]()
    damaged = image.copy()
    damaged.paste((255, 255, 255), (70, 278, 140, 298))  # over the first tile's price
    assert pixel_difference(image, image) == 0
    assert block_difference(image, damaged) > MAX_BLOCK_DIFFERENCE
