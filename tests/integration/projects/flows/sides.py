"""A flow with an optional input: a card's back may be missing, once the run's inputs are closed."""

import fn


@fn.function(cpus=0.25)
def side_length(side: bytes | None) -> int | None:
    # None: the optional input was never given and the run's inputs were closed (replicas check the hint)
    return None if side is None else len(side)


@fn.function(cpus=0.25)
def both_sides(front: int, back: int | None) -> dict[str, int | None]:
    return {"front": front, "back": back}


sides = fn.Flow("sides", inputs=["front", "back"], optional=["back"])
front = sides.step("side-length", inputs={"side": "front"}, name="front-length")
back = sides.step("side-length", inputs={"side": "back"}, name="back-length")
sides.output("both-sides", inputs={"front": front, "back": back})
