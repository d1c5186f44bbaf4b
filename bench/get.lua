-- wrk script: GET with the bench's bearer key (WRK_KEY in the environment; none when empty).
wrk.method = "GET"
local key = os.getenv("WRK_KEY") or ""
if key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
