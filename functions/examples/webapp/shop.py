"""A web app with business logic around two models: a FastAPI service served as one autoscaling function.

``shop`` is an ordinary FastAPI app: routes with path and query parameters, request validation, a SQLite
product catalogue (built in the replica at start), its own rule on who may post reviews, a streaming
endpoint and a WebSocket. Two models sit behind it as their own functions, called with ``await fn.acall``:
``review-sentiment`` scores a review's text and ``price-model`` suggests a price from a product's features
(a small least-squares fit made in ``setup()``). Both are tiny so the example runs anywhere; swap in real
ones and nothing else changes.

    fnctl deploy functions/examples/webapp
    curl -H "Authorization: Bearer $KEY" http://127.0.0.1:8000/shop/products/2
    curl -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \\
         -d '{"product_id": 2, "author": "ana", "text": "great lamp, love it"}' http://127.0.0.1:8000/shop/reviews
"""


import asyncio
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, Field

import fn

PRODUCTS = [  # id, name, category, weight_kg, rating, price
    (1, "desk", "furniture", 18.0, 4.1, 199.0),
    (2, "lamp", "lighting", 1.2, 4.6, 39.0),
    (3, "chair", "furniture", 7.5, 3.9, 89.0),
    (4, "shelf", "furniture", 12.0, 4.3, 129.0),
    (5, "bulb", "lighting", 0.1, 4.0, 6.0),
]
POSITIVE = {"good", "great", "love", "excellent", "nice", "perfect", "happy", "bright"}
NEGATIVE = {"bad", "broken", "poor", "awful", "hate", "dim", "late", "refund"}


@fn.model(cpus=0.1, name="review-sentiment")
class ReviewSentiment:
    """A lexicon model: the share of known positive words among the known words, from -1 to 1."""

    def setup(self) -> None:
        self.weights = {word: 1.0 for word in POSITIVE} | {word: -1.0 for word in NEGATIVE}

    def __call__(self, text: str) -> dict[str, Any]:
        scores = [self.weights[w] for w in text.lower().replace(",", " ").replace(".", " ").split() if w in self.weights]
        score = sum(scores) / len(scores) if scores else 0.0
        return {"score": round(score, 3), "label": "positive" if score > 0 else "negative" if score < 0 else "neutral"}


@fn.model(cpus=0.1, name="price-model")
class PriceModel:
    """Least squares of price on (1, weight, rating), fitted on the catalogue in setup()."""

    def setup(self) -> None:
        import numpy as np

        features = np.array([[1.0, weight, rating] for _, _, _, weight, rating, _ in PRODUCTS])
        prices = np.array([price for *_, price in PRODUCTS])
        self.coef, *_ = np.linalg.lstsq(features, prices, rcond=None)

    def __call__(self, weight_kg: float, rating: float) -> float:
        return round(float(self.coef[0] + self.coef[1] * weight_kg + self.coef[2] * rating), 2)


class Review(BaseModel):
    """A review as the app accepts it (FastAPI validates the body against it: 422 naming the field)."""

    product_id: int = Field(ge=1)
    author: str = Field(min_length=1, max_length=40)
    text: str = Field(min_length=1, max_length=2000)


def _catalogue() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, weight_kg REAL, "
               "rating REAL, price REAL)")
    db.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?, ?)", PRODUCTS)
    db.row_factory = sqlite3.Row
    return db


@fn.asgi(cpus=0.25, name="shop")
def shop() -> Any:
    from fastapi import FastAPI, Header, HTTPException, Path, Query, WebSocket
    from fastapi.responses import StreamingResponse

    app = FastAPI(title="shop")
    db = _catalogue()

    def product(product_id: int) -> dict[str, Any]:
        row = db.execute("SELECT * FROM products WHERE id = ?", (product_id,)).fetchone()
        if row is None:
            raise HTTPException(status_code=404, detail=f"no product {product_id}")
        return dict(row)

    @app.get("/products")
    def products(category: str | None = Query(default=None, max_length=40),
                 limit: int = Query(default=10, ge=1, le=100)) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM products", ()
        if category is not None:
            sql, args = sql + " WHERE category = ?", (category,)
        return [dict(r) for r in db.execute(sql + " ORDER BY id LIMIT ?", (*args, limit))]

    @app.get("/products/{product_id}")
    async def one(product_id: int = Path(ge=1)) -> dict[str, Any]:
        found = product(product_id)
        suggested = await fn.acall("price-model", weight_kg=found["weight_kg"], rating=found["rating"])
        return {**found, "suggested_price": suggested}

    @app.post("/reviews", status_code=201)
    async def review(body: Review, x_shop_role: str = Header(default="customer")) -> dict[str, Any]:
        if x_shop_role == "banned":  # the app's own rule, after the platform let the request in
            raise HTTPException(status_code=403, detail="this reviewer may not post")
        found = product(body.product_id)
        sentiment = await fn.acall("review-sentiment", text=body.text)
        return {"product": found["name"], "author": body.author, "sentiment": sentiment}

    @app.get("/countdown")
    async def countdown(n: int = Query(default=3, ge=1, le=100), delay_s: float = Query(default=0.0, ge=0, le=2)) -> Any:
        async def lines() -> AsyncIterator[str]:
            for i in range(n, 0, -1):
                yield f"{i}\n"
                await asyncio.sleep(delay_s)

        return StreamingResponse(lines(), media_type="text/plain")

    @app.websocket("/ws")
    async def chat(socket: WebSocket) -> None:
        await socket.accept()
        while True:
            text = await socket.receive_text()
            if text == "bye":
                await socket.close()
                return
            sentiment = await fn.acall("review-sentiment", text=text)
            await socket.send_json({"echo": text, "label": sentiment["label"]})

    return app
