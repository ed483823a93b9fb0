"""Write the golden PNGs anew: ``.venv/bin/python -m tests.golden.regenerate [NAME…]``.

Only after an intended change to how things look; view the images before committing them.
"""

from __future__ import annotations

import sys

from tests.golden.cases import CASES, path
from tidings.content.render.testing import dejavu_missing


def main(names: list[str]) -> int:
    missing = dejavu_missing()
    if missing:
        print(f"not regenerating: {missing}", file=sys.stderr)
        return 1
    for name in names or sorted(CASES):
        CASES[name]().save(path(name), optimize=True)
        print(path(name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
