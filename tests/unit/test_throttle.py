from services.bot.middlewares import Throttle


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_burst_then_rate_per_user_and_one_warning() -> None:
    clock = Clock()
    throttle = Throttle(rate=1.0, burst=3, clock=clock)
    assert [throttle.allow(1) for _ in range(5)] == [(True, False)] * 3 + [(False, True), (False, False)]
    assert throttle.allow(2) == (True, False)  # someone else is not slowed
    clock.t = 1.0
    assert throttle.allow(1) == (True, False)  # one token back after a second
    assert throttle.allow(1) == (False, True)  # a new burst of flooding is told again
