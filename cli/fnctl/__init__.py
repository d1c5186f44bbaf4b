"""fnctl: the command line of the fn platform."""

__all__: list[str] = []
