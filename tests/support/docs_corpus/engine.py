"""Diesel engine maintenance schedule."""


def oil_change_interval(hours: int) -> bool:
    # change the engine oil and the fuel filter every 250 running hours
    return hours % 250 == 0
