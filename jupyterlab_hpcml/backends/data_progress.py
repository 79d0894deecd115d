"""What a staging has sent and has to send, reported through ``DataProgress`` (every
backend's ``stage_data`` keeps one; each adds what it needs to tell per content)."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.job import DataProgress


@dataclass
class StagingCount:
    progress: DataProgress | None
    total_bytes: int = 0
    total_files: int = 0
    sent_bytes: int = 0
    sent_files: int = 0

    def report(self) -> None:
        if self.progress:
            self.progress(self.sent_bytes, self.total_bytes, self.sent_files, self.total_files)
