"""Write sample images for the vectorize flow: ``python functions/vectorize/samples/make_images.py OUTDIR``.

Needs only numpy and pillow. The real photos are read from sample data that ships inside installed packages
(nothing is downloaded): matplotlib's ``grace_hopper.jpg`` and, when scikit-image is installed, its bundled
``chelsea.png`` (a cat) and ``coffee.png`` (a cup of coffee). Missing sources are skipped.

For every photo NAME it writes:

    NAME.<ext>                    the original file, copied byte for byte
    NAME__dup_resized.jpg         downscaled to half size
    NAME__dup_jpeg_q20.jpg        re-encoded as JPEG at quality 20
    NAME__dup_cropped.jpg         about 6% cut off each side
    NAME__dup_brighter.jpg        brightness raised by 25%

so every file whose name contains ``__dup_`` is a near-duplicate of the file named by the part before it.
It also writes two synthetic images that are duplicates of nothing: ``synthetic_gradient.png`` and
``synthetic_shapes.png``. Output is deterministic.
"""

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance


def _package_dir(name: str) -> Path | None:
    """The install folder of a package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def photo_sources() -> dict[str, Path]:
    """Short name -> path of a real photo shipped with an installed package."""
    found: dict[str, Path] = {}
    mpl = _package_dir("matplotlib")
    if mpl is not None:
        found["hopper"] = mpl / "mpl-data" / "sample_data" / "grace_hopper.jpg"  # Grace Hopper, US Navy portrait
    ski = _package_dir("skimage")
    if ski is not None:
        found["chelsea"] = ski / "data" / "chelsea.png"  # a cat; CC0 (Stefan van der Walt)
        found["coffee"] = ski / "data" / "coffee.png"  # a cup of coffee; CC0 (Rachel Michetti)
    return {name: path for name, path in found.items() if path.is_file()}


def _save_jpeg(img: Image.Image, path: Path, quality: int = 90) -> None:
    img.convert("RGB").save(path, "JPEG", quality=quality)


def near_duplicates(img: Image.Image) -> dict[str, tuple[Image.Image, int]]:
    """Variant suffix -> (image, JPEG quality)."""
    img = img.convert("RGB")
    w, h = img.size
    dx, dy = round(w * 0.06), round(h * 0.06)
    return {
        "resized": (img.resize((w // 2, h // 2), Image.Resampling.LANCZOS), 90),
        "jpeg_q20": (img, 20),
        "cropped": (img.crop((dx, dy, w - dx, h - dy)), 90),
        "brighter": (ImageEnhance.Brightness(img).enhance(1.25), 90),
    }


def synthetic_gradient(size: tuple[int, int] = (512, 384)) -> Image.Image:
    w, h = size
    x = np.linspace(0.0, 1.0, w)[None, :]
    y = np.linspace(0.0, 1.0, h)[:, None]
    rgb = np.stack([np.broadcast_to(x, (h, w)), np.broadcast_to(y, (h, w)), np.broadcast_to(1.0 - (x + y) / 2, (h, w))], axis=-1)
    return Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")


def synthetic_shapes(size: tuple[int, int] = (512, 384), seed: int = 7) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, (245, 245, 240))
    draw = ImageDraw.Draw(img)
    w, h = size
    for i in range(12):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        s = int(rng.integers(30, 120))
        color = tuple(int(c) for c in rng.integers(0, 220, size=3))
        box = (x0, y0, min(w - 1, x0 + s), min(h - 1, y0 + s))
        if i % 3 == 0:
            draw.ellipse(box, fill=color)
        elif i % 3 == 1:
            draw.rectangle(box, fill=color)
        else:
            draw.polygon([(box[0], box[3]), ((box[0] + box[2]) // 2, box[1]), (box[2], box[3])], fill=color)
    return img


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, str]] = []

    sources = photo_sources()
    for name, src in sources.items():
        original = out / f"{name}{src.suffix.lower()}"
        shutil.copyfile(src, original)
        written.append((original, f"original, from {src}"))
        with Image.open(src) as img:
            img.load()
            for suffix, (variant, quality) in near_duplicates(img).items():
                path = out / f"{name}__dup_{suffix}.jpg"
                _save_jpeg(variant, path, quality)
                written.append((path, f"near-duplicate of {original.name} ({suffix})"))

    for name, img in (("synthetic_gradient", synthetic_gradient()), ("synthetic_shapes", synthetic_shapes())):
        path = out / f"{name}.png"
        img.save(path, "PNG")
        written.append((path, "synthetic, a duplicate of nothing"))

    for path, what in written:
        with Image.open(path) as img:
            print(f"{path}  {img.size[0]}x{img.size[1]}  {path.stat().st_size} B  {what}")
    missing = {"hopper", "chelsea", "coffee"} - set(sources)
    if missing:
        print(f"skipped (source not installed): {', '.join(sorted(missing))}")
    print(f"wrote {len(written)} images to {out}")


if __name__ == "__main__":
    main()
