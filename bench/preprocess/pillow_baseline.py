"""Pillow baseline for bench/preprocess/sharp-vs-pillow.ts: the same validation + resize work,
done the way a Python service would, one image after another in one process.

usage: pillow_baseline.py <input_dir> <output_dir> [--draft]   -> prints one JSON line {"images", "seconds"}

--draft lets libjpeg decode at a reduced DCT scale (Image.draft), the counterpart of sharp's
shrink-on-load; without it the full 12 MP image is decoded, as a plain load() does.
"""

import json
import sys
import time
from pathlib import Path

from PIL import Image, ImageOps

MAX_SIDE = 1024


def process(src: Path, dst: Path, draft: bool) -> None:
    with Image.open(src) as im:
        im.verify()  # structure check; the image must be reopened after verify()
    with Image.open(src) as im:
        if draft:
            im.draft("RGB", (MAX_SIDE, MAX_SIDE))
        im.load()  # decodes the whole stream: catches truncation, like sharp's failOn: 'truncated'
        upright = ImageOps.exif_transpose(im)
        upright.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        upright.convert("RGB").save(dst, "JPEG", quality=95)


def main() -> None:
    src_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    draft = "--draft" in sys.argv[3:]
    out_dir.mkdir(parents=True, exist_ok=True)
    files = sorted(src_dir.glob("*.jpg"))
    started = time.perf_counter()
    for f in files:
        process(f, out_dir / f.name, draft)
    print(json.dumps({"images": len(files), "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
