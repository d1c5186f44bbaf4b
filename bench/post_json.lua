-- wrk script: POST a small JSON body with the bench's bearer key (WRK_KEY in the environment).
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY") or '{"x": 1}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("WRK_KEY") or "")
