"""Ensemble with voting: three classifiers run concurrently, the majority wins.

``vote`` is async and awaits all three with ``fn.acall`` at once, so the ensemble takes as long as
its slowest member, not the sum. The members are small rules standing in for models.
"""

import asyncio
from collections import Counter

import fn


@fn.function(cpus=0.25)
def by_words(text: str) -> str:
    words = set(text.lower().split())
    return "spam" if words & {"winner", "free", "prize", "click"} else "ham"


@fn.function(cpus=0.25)
def by_shouting(text: str) -> str:
    letters = [c for c in text if c.isalpha()]
    upper = sum(c.isupper() for c in letters) / max(len(letters), 1)
    return "spam" if upper > 0.5 or text.count("!") >= 3 else "ham"


@fn.function(cpus=0.25)
def by_links(text: str) -> str:
    return "spam" if text.count("http") >= 2 else "ham"


MEMBERS = ("by-words", "by-shouting", "by-links")


@fn.function(cpus=0.25)
async def vote(text: str) -> dict[str, object]:
    votes = await asyncio.gather(*(fn.acall(name, text=text) for name in MEMBERS))
    winner, count = Counter(votes).most_common(1)[0]
    return {"label": winner, "votes": dict(zip(MEMBERS, votes, strict=True)), "agreement": count / len(MEMBERS)}
