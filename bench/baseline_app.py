"""The floor: the same add() (and the suite's no-op, ``{"x": 1}`` back as sent) as a plain Starlette app
under uvicorn, with the same bearer-key check."""

import hashlib
import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

KEY_HASH = hashlib.sha256(b"bench-key").hexdigest()


async def add(request: Request) -> Response:
    key = request.headers.get("authorization", "")[7:]
    if hashlib.sha256(key.encode()).hexdigest() != KEY_HASH:
        return Response("{}", status_code=401)
    body = json.loads(await request.body())
    return Response(json.dumps(body["a"] + body["b"]), media_type="application/json")


async def noop(request: Request) -> Response:
    key = request.headers.get("authorization", "")[7:]
    if hashlib.sha256(key.encode()).hexdigest() != KEY_HASH:
        return Response("{}", status_code=401)
    return Response(json.dumps(json.loads(await request.body())), media_type="application/json")


app = Starlette(routes=[Route("/add", add, methods=["POST"]), Route("/noop", noop, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
