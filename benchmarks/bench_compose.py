"""The bare product grid, in one process: CPU time of :func:`compose` per image.

A few hundred products of the simulator's catalog, with the demo's drawn pictures (as
``make bench-render`` serves them) or photo-like shots (``--photos``: gradients and grain, as
real product photos compress), resized once as the image cache would; then ``--grids`` grids
of ``--per-grid`` random products each, composed one after another without the grid cache.
Reports CPU ms per grid (``time.process_time``), the mean encoded size and how many of the
grids were PNG.

    .venv/bin/python benchmarks/bench_compose.py [--grids 500] [--products 300] [--photos]
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import time

from PIL import Image, ImageOps

from tidings.content.render import RenderCaches, Tile, compose
from tidings.content.render.layout import Layout, grid
from tidings.content.render.testing import product_shot
from tidings.demo.pictures import draw_product
from tidings.simulate.catalog import generate_catalog


class Sized:
    """Images sized once and kept, as :class:`~tidings.content.ports.RenderImages` hands out
    the image cache's own objects."""

    def __init__(self, pictures: dict[str, bytes], photos: bool) -> None:
        self.pictures = pictures
        self.photos = photos
        self.kept: dict[tuple[str, int, int], Image.Image] = {}

    def get(self, url: str, width: int, height: int) -> Image.Image | None:
        key = (url, width, height)
        image = self.kept.get(key)
        if image is None:
            if self.photos:
                image = product_shot(url, width, height, photographic=True)
            else:
                with Image.open(io.BytesIO(self.pictures[url])) as source:
                    image = ImageOps.fit(
                        source.convert("RGB"), (width, height), Image.Resampling.LANCZOS
                    )
            self.kept[key] = image
        return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grids", type=int, default=500)
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--per-grid", type=int, default=6)
    parser.add_argument("--photos", action="store_true", help="photo-like shots")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="timed passes over the grids")
    parser.add_argument(
        "--tile-bytes", type=int, default=None, help="RenderCaches' tile budget (0: none kept)"
    )
    args = parser.parse_args()

    catalog = generate_catalog(7, args.products)
    caches = RenderCaches() if args.tile_bytes is None else RenderCaches(tile_bytes=args.tile_bytes)
    pictures = (
        {}
        if args.photos
        else {
            p.image_url: draw_product(p.product_id, p.name, p.category, caches.fonts)
            for p in catalog
        }
    )
    images = Sized(pictures, args.photos)
    layout = Layout()
    tiles = [
        Tile(
            p.product_id,
            name=p.name,
            url=p.url,
            image_url=p.image_url,
            price=p.price,
            sale_price=p.sale_price,
            currency=p.currency,
        )
        for p in catalog
    ]
    rng = random.Random(args.seed)
    work = [rng.sample(tiles, args.per_grid) for _ in range(args.grids)]
    g = grid(layout, caches.fonts)
    for tile in tiles:  # every image sized, untimed (the image cache holds them)
        images.get(tile.image_url or "", g.tile_width, g.image_height)
    for tiles_ in work[:50]:  # fonts, stamps, first-time costs
        compose(layout, tiles_, images, caches=caches)

    per_pass: list[float] = []
    sizes: list[int] = []
    pngs = 0
    for _ in range(args.repeat):
        cpu = time.process_time()
        for tiles_ in work:
            rendered = compose(layout, tiles_, images, caches=caches)
            sizes.append(len(rendered.data))
            pngs += rendered.content_type == "image/png"
        per_pass.append((time.process_time() - cpu) * 1000 / len(work))
    print(
        f"{'photos' if args.photos else 'demo pictures'}: {len(work)} grids x {args.repeat}, "
        f"CPU ms/grid {' '.join(f'{v:.2f}' for v in per_pass)} "
        f"(median {statistics.median(per_pass):.2f}), "
        f"{statistics.mean(sizes) / 1000:.1f} KB mean, {pngs}/{len(sizes)} PNG"
    )


if __name__ == "__main__":
    main()
