"""Schedules: create, preview times, list, get (with recent firings), pause, resume,
run now, delete (the runs a schedule created stay)."""
from __future__ import annotations

from typing import Any

from ..engine.models import ScheduleView
from ..engine.requests import ScheduleRequest, When
from .base import HpcmlHandler, authenticated


def schedule_json(handler: HpcmlHandler, sched: ScheduleView) -> dict[str, Any]:
    """A schedule as the API shows it: its project relative to the server root, and not the
    root it was created under (a server detail)."""
    data = sched.model_dump(mode="json", exclude={"root"})
    data["project_relpath"] = handler.relative(sched.project_path)
    return data


class SchedulesHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        """Every schedule, with its next times and its latest firing."""
        schedules = await self.engine.list_schedules()
        self.write_json({"schedules": [schedule_json(self, s) for s in schedules]})

    @authenticated
    async def post(self) -> None:
        """Create a schedule, checked like a submission (nothing is stored on bad input)."""
        req = self.body(ScheduleRequest)
        req.project = str(self.resolve_path(req.project))
        sched = await self.engine.create_schedule(req, root=self.root_dir)
        self.write_json(schedule_json(self, sched), status=201)


class SchedulePreviewHandler(HpcmlHandler):
    @authenticated
    async def post(self) -> None:
        """The next five times of a cron expression (or one time) in a zone; creates nothing."""
        self.write_json(await self.engine.preview_schedule(self.body(When)))


class ScheduleHandler(HpcmlHandler):
    @authenticated
    async def get(self, schedule_id: str) -> None:
        self.write_json(schedule_json(self, await self.engine.get_schedule(schedule_id)))

    @authenticated
    async def delete(self, schedule_id: str) -> None:
        sched = await self.engine.get_schedule(schedule_id)  # a prefix or name: its id
        await self.engine.delete_schedule(sched.id)
        self.write_json({"id": sched.id, "deleted": True})


class SchedulePauseHandler(HpcmlHandler):
    @authenticated
    async def post(self, schedule_id: str) -> None:
        self.write_json(schedule_json(self, await self.engine.pause_schedule(schedule_id)))


class ScheduleResumeHandler(HpcmlHandler):
    @authenticated
    async def post(self, schedule_id: str) -> None:
        self.write_json(schedule_json(self, await self.engine.resume_schedule(schedule_id)))


class ScheduleRunNowHandler(HpcmlHandler):
    @authenticated
    async def post(self, schedule_id: str) -> None:
        """Fire once now, whatever the overlap policy: the firing, with its run id."""
        self.write_json(await self.engine.run_schedule_now(schedule_id), status=201)
