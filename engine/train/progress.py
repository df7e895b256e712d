"""Progress of long work: a tqdm bar on a terminal, a readable line every 10% elsewhere."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, desc: str, start: int = 0, enabled: bool = True):
        self.total, self.desc, self.count, self.enabled = total, desc, start, enabled
        self.first = start
        self.started, self.samples = time.perf_counter(), 0
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=start, desc=desc, unit="batch", leave=False,
                            dynamic_ncols=True)
        self.next_line = start + max(1, total // 10)

    def update(self, samples: int, **values: float) -> None:
        self.count += 1
        self.samples += samples
        if self.bar is None and not (self.enabled and (self.count >= self.next_line
                                                         or self.count == self.total)):
            return  # nothing to show this step: keep the loop free of formatting work
        rate = self.samples / max(time.perf_counter() - self.started, 1e-9)
        shown = {k: f"{v:.4g}" for k, v in values.items()}
        if self.bar is not None:
            self.bar.set_postfix(**shown, samples_s=f"{rate:.0f}", refresh=False)
            self.bar.update(1)
        elif self.enabled and (self.count >= self.next_line or self.count == self.total):
            text = "  ".join(f"{k} {v}" for k, v in shown.items())
            print(f"{self.desc}  {self.count}/{self.total}  {text}  {rate:.0f} samples/s  "
                  f"eta {self.eta():.0f}s", file=sys.stderr, flush=True)
            self.next_line = self.count + max(1, self.total // 10)

    def eta(self) -> float:
        done = self.count - self.first
        per_batch = (time.perf_counter() - self.started) / max(done, 1)
        return (self.total - self.count) * per_batch

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
