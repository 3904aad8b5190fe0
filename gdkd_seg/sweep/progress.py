"""Progress lines of a sweep: runs done of all, elapsed time and an ETA."""
import math
import statistics
import time
from typing import Callable, List


class Progress:
    """Runs done and to do in the whole sweep (all workers), with an ETA
    from the measured seconds per run shared by the live workers.

    Args:
        total (int): seed runs in the sweep.
        remaining: the seed runs not finished yet (read from the studies).
        workers: how many workers are training now.
        seconds (list[float]): measured seconds of finished runs.
    """

    def __init__(self, total: int, remaining: Callable[[], int],
                 workers: Callable[[], int], seconds: List[float],
                 log: Callable[[str], None]) -> None:
        self.total, self.remaining, self.workers = total, remaining, workers
        self.seconds, self.log = list(seconds), log
        self.start = time.time()

    def finished(self, seconds: float) -> None:
        self.seconds.append(seconds)

    def line(self, message: str) -> None:
        left, workers = self.remaining(), max(1, self.workers())
        eta = (
            statistics.fmean(self.seconds) * left /
            workers if self.seconds else float('nan'))
        self.log(f'[sweep {self.total - left}/{self.total} runs | {workers} '
                 f'worker(s) | elapsed {hms(time.time() - self.start)} | '
                 f'eta {hms(eta) if left else "0:00:00"}] {message}')


def hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return '?'
    seconds = int(round(seconds))
    return f'{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'
