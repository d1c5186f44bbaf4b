"""Dynamic selection: the input decides which model runs.

``route`` looks at the request and calls one of several deployed models by name; only the chosen
one does work (and only it scales up from zero). An error in the chosen model reaches the caller
with its own type and message.
"""

import fn


@fn.function(cpus=0.25)
def arithmetic(expression: str) -> float:
    left, op, right = expression.split()
    a, b = float(left), float(right)
    if op == "/" and b == 0:
        raise ZeroDivisionError("division by zero")
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else 0.0}[op]


@fn.function(cpus=0.25)
def shout(text: str) -> str:
    return text.upper() + "!"


@fn.function(cpus=0.25)
def route(text: str) -> dict[str, object]:
    parts = text.split()
    model = "arithmetic" if len(parts) == 3 and parts[1] in {"+", "-", "*", "/"} else "shout"
    argument = {"expression": text} if model == "arithmetic" else {"text": text}
    return {"model": model, "result": fn.call(model, **argument)}
