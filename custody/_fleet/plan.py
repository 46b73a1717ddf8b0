"""The fleet's plan: a pool of profiles, and the tasks each worker process runs, with faults
injected where the seed puts them (the same seed gives the same plan, so a run can be told
again)."""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, ConfigDict

Fault = Literal["none", "crash", "prompt", "proxy_mismatch", "expected_failure", "error"]
ACCOUNTS = ("account_shop", "account_ads")
FOREIGN_PROXY = "proxy_eu_west_9"  # what a misconfigured worker asks for
MAX_WORKERS = 16  # each worker may run a Chromium of ~400 MiB


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProfilePlan(Plan):
    profile_id: str
    account_id: str
    proxy_id: str


class Task(Plan):
    run_id: str
    account_id: str
    task_type: str
    fault: Fault


class WorkerPlan(Plan):
    worker_id: str
    tasks: list[Task]


class FleetPlan(Plan):
    seed: int
    ttl_seconds: int
    profiles: list[ProfilePlan]
    workers: list[WorkerPlan]

    def faults(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for worker in self.workers:
            for task in worker.tasks:
                counts[task.fault] = counts.get(task.fault, 0) + 1
        return counts


def make_plan(workers: int, tasks: int, *, seed: int, ttl_seconds: int = 3) -> FleetPlan:
    """``workers`` processes with ``tasks`` tasks each on a pool of ``workers + 2`` profiles
    over two accounts. Faults: a crash (always a worker's last task: its process dies), a
    verification prompt, a worker configured for a foreign proxy, an expected failure and an
    unexpected error, about one in three workers each, as far as the tasks go."""
    rng = random.Random(seed)  # noqa: S311 (where faults fall, told again by the seed)
    profiles = [
        ProfilePlan(
            profile_id=f"profile_{ACCOUNTS[n % 2].split('_')[1]}_{n + 1:02d}",
            account_id=ACCOUNTS[n % 2],
            proxy_id=f"proxy_us_east_{n + 1:02d}",
        )
        for n in range(workers + 2)
    ]
    faults = _faults(workers, tasks, rng)
    plans = []
    for w in range(workers):
        plans.append(
            WorkerPlan(
                worker_id=f"worker_{w + 1:02d}",
                tasks=[
                    Task(
                        run_id=f"run_{w + 1:02d}_{t + 1}",
                        account_id=ACCOUNTS[(w + t) % 2],
                        task_type="submit_order",
                        fault=faults.get((w, t), "none"),
                    )
                    for t in range(tasks)
                ],
            )
        )
    return FleetPlan(seed=seed, ttl_seconds=ttl_seconds, profiles=profiles, workers=plans)


def _faults(workers: int, tasks: int, rng: random.Random) -> dict[tuple[int, int], Fault]:
    share = max(1, workers // 3)
    chosen: dict[tuple[int, int], Fault] = {}
    for w in rng.sample(range(workers), share):  # a crash ends its worker: the last task
        chosen[(w, tasks - 1)] = "crash"
    free = [(w, t) for w in range(workers) for t in range(tasks) if (w, t) not in chosen]
    rng.shuffle(free)
    prompts: list[Fault] = ["prompt"] * share
    mismatches: list[Fault] = ["proxy_mismatch"] * max(1, workers // 4)
    wanted: list[Fault] = [*prompts, *mismatches, "expected_failure", "error"]
    for slot, fault in zip(free, wanted, strict=False):
        chosen[slot] = fault
    return chosen
