"""Hyper-parameter checks shared by the modules: refused at construction, with a clear message."""


def check_rate(name: str, rate: float) -> None:
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {rate}")
