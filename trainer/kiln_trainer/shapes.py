"""The synthetic world the built-in tiny model is pretrained on: coloured shapes and a few
objects on plain or textured backgrounds, each image captioned by what it shows ("a red circle
on a white background", "two blue squares on grass"). A single shape is centred and about half
the frame; two or three are smaller and scattered. Everything is a pure function of a seed.
"""

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (245, 215, 30),
    "green": (40, 170, 60),
    "blue": (30, 80, 220),
    "purple": (130, 50, 180),
    "pink": (245, 130, 180),
    "brown": (120, 70, 30),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
}
SHAPES = ("circle", "square", "triangle", "star", "ring", "diamond", "house", "tree")
TEXTURES = ("grass", "sand", "wood", "bricks")
COUNTS = {1: "a", 2: "two", 3: "three"}
# every word a caption can hold: the tiny tokenizer gives each one token
WORDS = sorted({*COLOURS, *SHAPES, *(s + "s" for s in SHAPES), *TEXTURES, *COUNTS.values(), "an", "on", "background"})


def caption(count, colour, shape, background):
    noun = shape if count == 1 else shape + "s"
    what = noun if shape == "tree" else f"{colour} {noun}"  # trees come in their own colours
    article = COUNTS[count]
    if count == 1 and what[0] in "aeiou":
        article = "an"
    where = (
        background if background in TEXTURES else f"{'an' if background[0] in 'aeiou' else 'a'} {background} background"
    )
    return f"{article} {what} on {where}"


def _texture(name, side, rng):
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    noise = rng.normal(0, 1, (side, side, 1)).astype(np.float32)
    if name == "grass":
        blades = np.repeat(rng.normal(0, 1, (1, side, 1)), side, axis=0) * 0.6 + noise * 0.6
        return np.array([60, 140, 50]) + blades * np.array([15, 30, 12])
    if name == "sand":
        return np.array([225, 200, 150]) + noise * np.array([10, 10, 8])
    if name == "wood":
        grain = np.sin((y + 0.05 * np.sin(x * 9 + rng.uniform(0, 6))) * 40 + rng.uniform(0, 6))[..., None]
        return np.array([160, 105, 60]) + grain * np.array([22, 15, 10]) + noise * 4
    # bricks: rows offset by half a brick, light mortar between
    row = (y * 8).astype(int)
    mortar = ((y * 8) % 1 < 0.14) | (((x * 4 + 0.5 * (row % 2)) % 1) < 0.07)
    brick = np.array([165, 60, 45]) + noise * 8
    return np.where(mortar[..., None], np.array([210, 205, 195]), brick)


def _polygon(shape, cx, cy, r):
    if shape == "square":
        k = r * 0.85
        return [(cx - k, cy - k), (cx + k, cy - k), (cx + k, cy + k), (cx - k, cy + k)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r * 0.75, cy), (cx, cy + r), (cx - r * 0.75, cy)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r * 0.95, cy + r * 0.75), (cx - r * 0.95, cy + r * 0.75)]
    angles = np.pi / 2 + np.arange(10) * np.pi / 5  # star: ten points, alternating radii
    radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
    return [(cx + q * np.cos(a), cy - q * np.sin(a)) for a, q in zip(angles, radii, strict=True)]


def _draw(d, shape, cx, cy, r, fill):
    if shape in ("circle", "ring"):  # the ring's hole is punched by the caller
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "house":
        d.rectangle([cx - r * 0.75, cy - r * 0.1, cx + r * 0.75, cy + r * 0.9], fill=fill)
        d.polygon([(cx - r * 0.95, cy - r * 0.1), (cx, cy - r * 0.9), (cx + r * 0.95, cy - r * 0.1)], fill=(90, 35, 25))
        d.rectangle([cx - r * 0.15, cy + r * 0.4, cx + r * 0.15, cy + r * 0.9], fill=(60, 40, 25))
    elif shape == "tree":
        d.rectangle([cx - r * 0.15, cy + r * 0.1, cx + r * 0.15, cy + r], fill=(110, 65, 30))
        d.ellipse([cx - r * 0.75, cy - r, cx + r * 0.75, cy + r * 0.35], fill=(30, 130, 45))
    else:
        d.polygon(_polygon(shape, cx, cy, r), fill=fill)


def scene(rng, side=64):
    """One (PIL image, caption) drawn from rng. Drawn at twice the size and reduced, so edges
    are antialiased like a photo's."""
    count = int(rng.choice([1, 2, 3], p=[0.6, 0.25, 0.15]))
    shape = str(rng.choice(SHAPES, p=[0.15, 0.15, 0.15, 0.13, 0.12, 0.12, 0.1, 0.08]))
    colour = str(rng.choice(list(COLOURS)))
    backgrounds = [c for c in COLOURS if c != colour] + list(TEXTURES)
    background = str(rng.choice(backgrounds))
    big = side * 2
    if background in TEXTURES:
        base = np.clip(_texture(background, big, rng), 0, 255).astype(np.uint8)
    else:
        base = np.empty((big, big, 3), np.uint8)
        base[:] = COLOURS[background]
    img = Image.fromarray(base)
    d = ImageDraw.Draw(img)
    fill = tuple(int(v) for v in np.clip(np.array(COLOURS[colour]) + rng.normal(0, 8, 3), 0, 255))
    if count == 1:
        r = big * 0.25 * rng.uniform(0.9, 1.1)
        centres = [big / 2 + rng.uniform(-0.04, 0.04, 2) * big]
    else:
        r = big * 0.14 * rng.uniform(0.9, 1.1)
        centres = []
        while len(centres) < count:  # scattered, not touching
            c = rng.uniform(r * 1.1, big - r * 1.1, 2)
            if all(np.hypot(*(c - o)) > 2.3 * r for o in centres):
                centres.append(c)
    for cx, cy in centres:
        _draw(d, shape, float(cx), float(cy), float(r), fill)
        if shape == "ring":  # punch the hole with the background itself
            mask = Image.new("L", (big, big), 0)
            k = r * 0.55
            ImageDraw.Draw(mask).ellipse([cx - k, cy - k, cx + k, cy + k], fill=255)
            img.paste(Image.fromarray(base), (0, 0), mask)
    return img.resize((side, side), Image.BOX), caption(count, colour, shape, background)


def dataset(n, seed, side=64):
    """n scenes as a uint8 array [n, side, side, 3] and their captions."""
    rng = np.random.default_rng(seed)
    images, captions = np.empty((n, side, side, 3), np.uint8), []
    for i in range(n):
        img, text = scene(rng, side)
        images[i] = np.asarray(img)
        captions.append(text)
    return images, captions
